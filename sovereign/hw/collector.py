#!/usr/bin/env python3
"""Hardware capture collector: runs on a node and writes a capture bundle.

Standalone on purpose (standard library only, Python 3.9+): the same file is
run locally by `sovereign hw collect --local`, piped to `python3 -` over SSH
by `sovereign hw collect --host`, and shipped by Ansible's `script` module in
playbooks/collect.yml. One collector, three transports.

A bundle is a directory with one file per source and `manifest.json`
recording, per file, the command, its exit code and stderr. A source whose
tool or file is absent is recorded as missing, not as an error.

Simulated hardware (`--simulated`, the lab): a container shares the host's
kernel and has none of the silicon, so its kernel state is not the node's.
Identity sources then come from a recorded profile (`--profile DIR`, real
output of a real machine) and are marked simulated; kernel sources are not
collected at all; node configuration files are collected for real.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

COLLECTOR_VERSION = 1
TIMEOUT_S = 60

_PSQL = "runuser -u postgres -- psql -XAtq"
# A fixed query: nothing in it comes from outside.
POSTGRES_PROBE = (
    "cd /; echo '# pg_lsclusters'; pg_lsclusters --no-header;"  # noqa: S608
    " echo '# settings'; " + _PSQL + " -c \"SELECT name || '=' || setting FROM pg_settings WHERE name IN"
    " ('ssl', 'listen_addresses', 'port', 'password_encryption', 'ssl_min_protocol_version',"
    " 'server_version')"
    " ORDER BY name\";"
    " echo '# pg_hba_file_rules'; " + _PSQL + " -F '|' -c \"SELECT line_number, type,"
    " array_to_string(database, ','), array_to_string(user_name, ','), coalesce(address, ''),"
    " coalesce(netmask, ''), auth_method, coalesce(error, '') FROM pg_hba_file_rules ORDER BY line_number\";"
    " for port in $(pg_lsclusters --no-header | awk '$4 == \"online\" {print $3}'); do"
    " for a in $(hostname -I) 127.0.0.1; do echo \"# tls $a:$port\";"
    " openssl s_client -starttls postgres -connect \"$a:$port\" -CAfile /etc/sovereign/pki/ca.crt"
    " -verify_ip \"$a\" -verify_return_error -brief </dev/null 2>&1 | head -8; done; done; true"
)

# kind: identity = what the machine is (recorded profile on simulated hardware);
#       kernel   = the running kernel's state (not the node's own in a container);
#       config   = files on the node;  tool = output of an installed tool.
# (file name, kind, what must exist for the source to be collectable, shell command)
SOURCES: list[tuple[str, str, str, str]] = [
    ("os-release.txt", "config", "/etc/os-release", "cat /etc/os-release"),
    ("proc-cpuinfo.txt", "identity", "/proc/cpuinfo", "cat /proc/cpuinfo"),
    ("lscpu.txt", "identity", "lscpu", "lscpu"),
    ("proc-meminfo.txt", "identity", "/proc/meminfo", "cat /proc/meminfo"),
    ("free.txt", "identity", "free", "free -b"),
    ("lspci-nnk.txt", "identity", "lspci", "lspci -nnk"),
    ("nvme-list.txt", "identity", "nvme", "nvme list"),
    ("sensors.txt", "identity", "sensors", "sensors"),
    ("proc-cmdline.txt", "kernel", "/proc/cmdline", "cat /proc/cmdline"),
    ("etc-default-grub.txt", "config", "/etc/default",
     'for f in /etc/default/grub /etc/default/grub.d/*.cfg; do '
     '[ -f "$f" ] && { echo "# $f"; cat "$f"; }; done; true'),
    ("modprobe-d.txt", "config", "/etc/modprobe.d",
     'for f in /etc/modprobe.d/*.conf; do [ -f "$f" ] && { echo "# $f"; cat "$f"; }; done; true'),
    ("sys-module-ttm.txt", "kernel", "/sys/module",
     "grep -r . /sys/module/ttm/parameters /sys/module/amdttm/parameters 2>/dev/null; true"),
    ("dmesg.txt", "kernel", "dmesg", "dmesg"),
    ("lsmod.txt", "kernel", "lsmod", "lsmod"),
    ("iommu-groups.txt", "kernel", "/sys/kernel/iommu_groups",
     "find /sys/kernel/iommu_groups/ -type l | sort -V"),
    ("sys-drm-mem-info.txt", "kernel", "/sys/class/drm",
     "grep -H . /sys/class/drm/card*/device/mem_info_gtt_total "
     "/sys/class/drm/card*/device/mem_info_vram_total 2>/dev/null; true"),
    ("accel.txt", "kernel", "/dev/accel", "ls -l /dev/accel"),
    ("rocminfo.txt", "tool", "rocminfo", "rocminfo"),
    ("rocm-version.txt", "tool", "/opt/rocm/.info/version", "cat /opt/rocm/.info/version"),
    ("rocm-smi.txt", "tool", "rocm-smi", "rocm-smi --showproductname --showmeminfo vram gtt"),
    ("amd-smi.txt", "tool", "amd-smi", "amd-smi static"),
    ("xrt-smi-examine.txt", "tool", "xrt-smi", "xrt-smi examine"),
    ("ibv_devinfo.txt", "tool", "ibv_devinfo", "ibv_devinfo"),
    ("ibv_devices.txt", "tool", "ibv_devices", "ibv_devices"),
    ("ibstat.txt", "tool", "ibstat", "ibstat"),
    ("rdma-link.txt", "tool", "rdma", "rdma link show"),
    ("show_gids.txt", "tool", "show_gids", "show_gids"),
    ("ethtool.txt", "tool", "ethtool",
     'for i in $(ls /sys/class/net); do [ "$i" = lo ] || ethtool "$i"; done'),
    ("mst-status.txt", "tool", "mst", "mst status -v"),
    ("mlxconfig.txt", "tool", "mlxconfig",
     'for d in /dev/mst/*; do [ -e "$d" ] && mlxconfig -d "$d" q; done; true'),
    ("bf-info.txt", "tool", "bfver", "bfver"),
    ("llama-bench.txt", "config", "/var/lib/sovereign/llama-bench.txt",
     "cat /var/lib/sovereign/llama-bench.txt"),
    ("llama-server.log", "tool", "systemctl",
     "for u in $(systemctl list-units --all --plain --no-legend 'sovereign-llm-*.service'"
     " | awk '{print $1}'); do echo \"# unit: $u $(systemctl is-active $u)\";"
     ' journalctl -u "$u" -b -o cat --no-pager -n 600; done; true'),
    ("rpc-server.log", "tool", "journalctl",
     "journalctl -u sovereign-rpc-server --no-pager -o cat -n 200"),
    # Phase 6's database: its clusters, settings and pg_hba rules as the server
    # reads them, and a TLS handshake on each of its ports and the node's
    # addresses, verified against the cluster CA (a certificate for that address).
    ("postgres.txt", "tool", "pg_lsclusters", POSTGRES_PROBE),
]

KERNEL_SIMULATED = "simulated hardware: the lab's nodes share the host kernel, so its state is not theirs"
NOT_IN_PROFILE = "simulated hardware: not in the recorded profile"


def _present(requirement: str) -> bool:
    if requirement.startswith("/"):
        return os.path.exists(requirement)
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(requirement, path=path) is not None


def _run(command: str) -> tuple[int, str, str]:
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin:/usr/local/sbin"
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command], capture_output=True, timeout=TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {TIMEOUT_S} s"
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode(
        "utf-8", "replace"
    )


def collect(out: Path, simulated: bool = False, profile: Path | None = None,
            host: str | None = None, only: list[str] | None = None) -> dict:
    """Write a bundle into `out` and return its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "host": host or socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "collector_version": COLLECTOR_VERSION,
        "simulated": simulated,
        "profile": str(profile) if profile else None,
        "files": {},
    }
    for name, kind, requirement, command in SOURCES:
        if only and name not in only:
            continue
        entry: dict = {"command": command, "kind": kind, "simulated": False}
        if simulated and kind == "identity":
            recorded = profile / name if profile else None
            if recorded and recorded.is_file():
                shutil.copyfile(recorded, out / name)
                entry.update(command=f"recorded profile: {recorded}", exit_code=0, stderr="",
                             status="ok", simulated=True)
            else:
                entry.update(exit_code=None, stderr="", status="missing", reason=NOT_IN_PROFILE)
        elif simulated and kind == "kernel":
            entry.update(exit_code=None, stderr="", status="missing", reason=KERNEL_SIMULATED)
        elif not _present(requirement):
            entry.update(exit_code=None, stderr="", status="missing",
                         reason=f"{requirement} not found on the node")
        else:
            code, stdout, stderr = _run(command)
            (out / name).write_text(stdout)
            entry.update(exit_code=code, stderr=stderr[-4000:], status="ok" if code == 0 else "failed")
        manifest["files"][name] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _tar(directory: Path, stream) -> None:
    with tarfile.open(fileobj=stream, mode="w:gz") as tar:
        for item in sorted(directory.iterdir()):
            tar.add(str(item), arcname=item.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Collect a sovereign hardware capture bundle.")
    parser.add_argument("--out", help="bundle directory to write")
    parser.add_argument("--tar", help="also write the bundle as a .tar.gz here ('-' for stdout)")
    parser.add_argument("--host", help="host name to record in the manifest")
    parser.add_argument("--simulated", action="store_true", help="the node is simulated (lab)")
    parser.add_argument("--profile", help="recorded hardware profile directory (with --simulated)")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sovereign-bundle-") as scratch:
        out = Path(args.out) if args.out else Path(scratch) / "bundle"
        collect(out, simulated=args.simulated, profile=Path(args.profile) if args.profile else None,
                host=args.host)
        if args.tar == "-":
            buffer = io.BytesIO()
            _tar(out, buffer)
            sys.stdout.buffer.write(buffer.getvalue())
        elif args.tar:
            with open(args.tar, "wb") as handle:
                _tar(out, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
