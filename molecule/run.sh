#!/usr/bin/env bash
# Run the roles' molecule scenarios under rootful podman.
#
#   bash molecule/run.sh                 # every scenario under molecule/
#   bash molecule/run.sh rocm baseline   # only those
#
# The caller provides the tools on PATH (molecule, ansible, podman); the
# Makefile puts .venv/bin first. Environment knobs:
#   SOVEREIGN_ROOTFS        Debian 12 rootfs to import as the node image
#                           (default /var/cache/sovereign/rootfs/bookworm)
#   SOVEREIGN_PODMAN_DIR    podman storage and config (default /var/cache/sovereign/podman)
#   SOVEREIGN_NODE_IMAGE    image name (default localhost/sovereign-node:bookworm)
#   MOLECULE_ARGS           extra arguments for `molecule test` (e.g. --destroy=never)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

rootfs="${SOVEREIGN_ROOTFS:-/var/cache/sovereign/rootfs/bookworm}"
podman_dir="${SOVEREIGN_PODMAN_DIR:-/var/cache/sovereign/podman}"
image="${SOVEREIGN_NODE_IMAGE:-localhost/sovereign-node:bookworm}"

for tool in podman molecule ansible-playbook; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not on PATH (activate the venv: . .venv/bin/activate)" >&2; exit 2; }
done

# Podman's configuration, written before the first podman call:
# - default_ulimits: the sandbox's hard limits are lower than podman's
#   defaults, and the OCI runtime fails setrlimit without these;
# - runtime runc: crun refuses the host's hybrid cgroup layout.
# Storage lives in a scratch directory so that nothing touches the host's
# default podman store.
mkdir -p "$podman_dir/storage" "$podman_dir/run"
cat > "$podman_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
cat > "$podman_dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$podman_dir/storage"
runroot = "$podman_dir/run"
CONF
export CONTAINERS_CONF="$podman_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$podman_dir/storage.conf"

# The node image: a debootstrap rootfs (Debian 12 minbase with python3,
# python3-apt, systemd, dbus, sudo, iproute2, ...) imported once. There is no
# registry to pull from.
if ! podman image exists "$image"; then
    [ -d "$rootfs/etc" ] || { echo "run.sh: no rootfs at $rootfs (set SOVEREIGN_ROOTFS)" >&2; exit 2; }
    echo "run.sh: importing $rootfs as $image"
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
fi

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    for f in "$here"/*/molecule.yml; do
        scenarios+=("$(basename "$(dirname "$f")")")
    done
fi

args=()
for s in "${scenarios[@]}"; do
    args+=(-s "$s")
done

cd "$repo"
start=$SECONDS
# Molecule logs "'molecule/default/molecule.yml' glob failed" while it looks
# for a default scenario to share state with: harmless, there is none.
# shellcheck disable=SC2086
molecule --base-config "$here/base.yml" test "${args[@]}" ${MOLECULE_ARGS:-}
echo "run.sh: ${scenarios[*]} passed in $((SECONDS - start)) s"
