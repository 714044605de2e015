"""The lab: two systemd-booted nodes on this machine, reached over real SSH.

Each node is a `systemd-nspawn --boot` container on an overlay of the cached
Debian root filesystem, in its own network namespace with two links: the
management network (SSH, Ansible) and the fabric (the stand-in for the RoCE
link). The only way out is a relay to the Debian mirror, so that roles can
install packages. `lab down` removes every process, mount, link and namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from sovereign.errors import EnvironmentProblem, HostUnreachable
from sovereign.hw.bundle import PROFILES_DIR
from sovereign.inventory import load_inventory
from sovereign.lab import system
from sovereign.lab.rootfs import CACHE, ensure_rootfs
from sovereign.paths import project_root
from sovereign.process import pid_alive

LAB_DIR = Path(os.environ.get("SOVEREIGN_LAB_DIR", "/var/lib/sovereign-lab"))
MGMT_BRIDGE, FABRIC_BRIDGE = "sov-mgmt", "sov-fab"
MGMT_GATEWAY = "10.213.77.1/24"
FABRIC_PREFIX = 24
MIRROR_HOST = "deb.debian.org"
BOOT_TIMEOUT_S = 90
# Shared by both nodes (and molecule's containers): the second build of
# llama.cpp, and every rebuild, hits the compiler cache of the first.
CCACHE_HOST = CACHE / "ccache"
CCACHE_NODE = "/var/cache/ccache"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int
    mgmt_ip: str
    fabric_ip: str

    @property
    def netns(self) -> str:
        return f"sov-{self.name}"

    @property
    def veths(self) -> tuple[str, str]:
        return f"sv{self.index}m", f"sv{self.index}f"


class NodeState(BaseModel):
    name: str
    mgmt_ip: str
    fabric_ip: str
    netns: str
    pid: int | None = None
    netns_present: bool = False
    running: bool = False
    ssh: bool = False


class LabState(BaseModel):
    up: bool
    nodes: list[NodeState]
    relay_pid: int | None = None
    ssh_key: str


def lab_nodes(inventory: Path | None = None) -> list[NodeSpec]:
    """The lab's nodes and addresses, read from the lab inventory."""
    inv = load_inventory(inventory or project_root() / "inventory" / "lab")
    specs = []
    for i, name in enumerate(inv.nodes(), start=1):
        host = inv.hosts[name]
        assert host.node is not None
        specs.append(NodeSpec(name=name, index=i, mgmt_ip=str(host.vars["ansible_host"]),
                              fabric_ip=str(host.node.sovereign_fabric_address)))
    return specs


def _state_file() -> Path:
    return LAB_DIR / "lab.json"


def _saved() -> dict:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return {}


def _save(data: dict) -> None:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps(data, indent=2) + "\n")


def _ssh_open(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1) as sock:
            return sock.recv(4).startswith(b"SSH")
    except OSError:
        return False


def _bridge(name: str, address: str | None) -> None:
    if not system.link_exists(name):
        system.run("ip", "link", "add", name, "type", "bridge")
    if address:
        system.run("ip", "addr", "replace", address, "dev", name)
    system.run("ip", "link", "set", name, "up")


def _wire(node: NodeSpec) -> None:
    if not system.netns_exists(node.netns):
        system.run("ip", "netns", "add", node.netns)
    ns = ("ip", "netns", "exec", node.netns)
    for host_end, inner, bridge, ip in ((node.veths[0], "mgmt0", MGMT_BRIDGE, node.mgmt_ip),
                                        (node.veths[1], "fab0", FABRIC_BRIDGE, node.fabric_ip)):
        if not system.link_exists(host_end):
            system.run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner,
                       "netns", node.netns)
        system.run("ip", "link", "set", host_end, "master", bridge, "up")
        prefix = 24 if bridge == MGMT_BRIDGE else FABRIC_PREFIX
        system.run(*ns, "ip", "addr", "replace", f"{ip}/{prefix}", "dev", inner)
        system.run(*ns, "ip", "link", "set", inner, "up")
    system.run(*ns, "ip", "link", "set", "lo", "up")


def _keys() -> tuple[Path, str]:
    ssh_dir = LAB_DIR / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ssh_dir / "id_ed25519"
    if not key.is_file():
        system.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sovereign-lab",
                   "-f", str(key))
    return key, (ssh_dir / "id_ed25519.pub").read_text().strip()


def _prepare_root(node: NodeSpec, nodes: list[NodeSpec], root: Path, pubkey: str) -> list[str]:
    """Identity, names, keys and the recorded profile; return the host key line."""
    etc = root / "etc"
    (etc / "hostname").write_text(node.name + "\n")
    relay_ip = MGMT_GATEWAY.split("/")[0]
    hosts = ["127.0.0.1 localhost", f"127.0.1.1 {node.name}", f"{relay_ip} {MIRROR_HOST}"]
    hosts += [f"{n.mgmt_ip} {n.name}" for n in nodes]
    (etc / "hosts").write_text("\n".join(hosts) + "\n")
    # No DNS in the lab: an unreachable resolver stalls fact gathering.
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    ssh_root = root / "root" / ".ssh"
    ssh_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh_root / "authorized_keys").write_text(pubkey + "\n")
    hostkey = etc / "ssh" / "ssh_host_ed25519_key"
    if not hostkey.is_file():
        system.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.name,
                   "-f", str(hostkey))
    _netns_sysfs_unit(etc)
    profiles = root / "usr" / "share" / "sovereign" / "hw-profiles"
    shutil.rmtree(profiles, ignore_errors=True)
    shutil.copytree(PROFILES_DIR, profiles)
    return hostkey.with_suffix(".pub").read_text().split(" ")[0:2]


# nspawn joins the node to its network namespace but mounts the host's view
# of /sys, so /sys/class/net lists the host's links and not the node's (and
# Ansible, which enumerates interfaces there, finds no address at all). A
# sysfs mounted from inside the namespace shows the node's own links: bind
# those two directories over the host's, as a real node sees them.
NETNS_SYSFS_UNIT = """[Unit]
Description=Lab: this node's network links in /sys (its own network namespace)
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
# At boot, under load, systemd can fail to set up the unit's cgroup (status
# 219/CGROUP): try again rather than leave the node without its links.
Restart=on-failure
RestartSec=1
ExecStartPre=-/bin/umount /sys/devices/virtual/net
ExecStartPre=-/bin/umount /sys/class/net
ExecStartPre=-/bin/umount /run/sovereign-lab/sys
ExecStart=/bin/mkdir -p /run/sovereign-lab/sys
ExecStart=/bin/mount -t sysfs -o ro sysfs /run/sovereign-lab/sys
ExecStart=/bin/mount --bind /run/sovereign-lab/sys/class/net /sys/class/net
ExecStart=/bin/mount --bind /run/sovereign-lab/sys/devices/virtual/net /sys/devices/virtual/net

[Install]
WantedBy=sysinit.target
"""

# Run on a node once SSH answers: its own links visible in /sys, else the unit
# started again (and a failure named).
LINKS_VISIBLE = ("for i in $(seq 1 20); do "
                 "test -e /sys/class/net/mgmt0 && test -e /sys/class/net/fab0 && exit 0; "
                 "systemctl restart sovereign-lab-netns-sysfs.service; sleep 1; done; exit 1")


def _netns_sysfs_unit(etc: Path) -> None:
    unit = etc / "systemd/system/sovereign-lab-netns-sysfs.service"
    unit.write_text(NETNS_SYSFS_UNIT)
    wants = etc / "systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit.name
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit.name}")


def _mount(node: NodeSpec, rootfs: Path) -> Path:
    base = LAB_DIR / "nodes" / node.name
    upper, work, merged = base / "upper", base / "work", base / "root"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    if not system.is_mounted(str(merged)):
        system.run("mount", "-t", "overlay", "overlay", "-o",
                   f"lowerdir={rootfs},upperdir={upper},workdir={work}", str(merged))
    return merged


def _boot(node: NodeSpec, root: Path) -> int:
    CCACHE_HOST.mkdir(parents=True, exist_ok=True)
    log = (LAB_DIR / "logs").joinpath(f"{node.name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
             f"--machine={node.name}", f"--directory={root}", "--console=read-only",
             f"--bind={CCACHE_HOST}:{CCACHE_NODE}",
             f"--network-namespace-path=/run/netns/{node.netns}",
             # nspawn drops CAP_NET_ADMIN by default; the node needs it inside
             # its own network namespace for nftables (the rpc-server's firewall).
             "--capability=CAP_NET_ADMIN"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def _relay() -> int:
    """Relay port 80 on the management gateway to the Debian mirror only."""
    relay_ip = MGMT_GATEWAY.split("/")[0]
    try:
        mirror_ip = socket.gethostbyname(MIRROR_HOST)
    except OSError:
        mirror_ip = MIRROR_HOST
    log = (LAB_DIR / "logs" / "relay.log").open("ab")
    proc = subprocess.Popen(
        ["socat", f"TCP-LISTEN:80,bind={relay_ip},fork,reuseaddr", f"TCP:{mirror_ip}:80"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc.pid


def up(log: Callable[[str], None] = print) -> LabState:
    system.require_root()
    system.require_tools()
    nodes = lab_nodes()
    rootfs = ensure_rootfs(log)
    saved = _saved()
    _, pubkey = _keys()
    _bridge(MGMT_BRIDGE, MGMT_GATEWAY)
    _bridge(FABRIC_BRIDGE, None)
    known_hosts = []
    pids = saved.get("pids", {})
    for node in nodes:
        _wire(node)
        root = _mount(node, rootfs)
        keytype, keydata = _prepare_root(node, nodes, root, pubkey)
        known_hosts.append(f"{node.mgmt_ip} {keytype} {keydata}")
        if not pid_alive(pids.get(node.name)):
            log(f"booting {node.name} ({node.mgmt_ip}, fabric {node.fabric_ip})")
            pids[node.name] = _boot(node, root)
    (LAB_DIR / "ssh" / "known_hosts").write_text("\n".join(known_hosts) + "\n")
    relay = saved.get("relay_pid")
    if not pid_alive(relay):
        relay = _relay()
    _save({"pids": pids, "relay_pid": relay})
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    pending = {n.name: n for n in nodes}
    while pending and time.monotonic() < deadline:
        for name, node in list(pending.items()):
            if not pid_alive(pids[name]):
                raise EnvironmentProblem(f"lab node {name} stopped while booting",
                                         hint=f"see {LAB_DIR / 'logs' / (name + '.log')}")
            if _ssh_open(node.mgmt_ip):
                del pending[name]
        time.sleep(0.3)
    if pending:
        raise HostUnreachable(
            f"lab node(s) {', '.join(pending)} did not answer SSH within {BOOT_TIMEOUT_S} s",
            hint=f"see {LAB_DIR / 'logs'}; `sovereign lab down` cleans up")
    for node in nodes:
        _ensure_links_visible(node)
    return status()


def _ensure_links_visible(node: NodeSpec) -> None:
    """The node's /sys/class/net shows its own links (NETNS_SYSFS_UNIT ran), as
    Ansible's facts need: the unit is started again if it failed at boot."""
    ssh_dir = LAB_DIR / "ssh"
    proc = subprocess.run(
        ["ssh", "-i", str(ssh_dir / "id_ed25519"), "-o", f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"root@{node.mgmt_ip}", LINKS_VISIBLE],
        capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"lab node {node.name} does not see its own network links in /sys/class/net",
            hint=f"`ssh root@{node.mgmt_ip} systemctl status sovereign-lab-netns-sysfs` says why; "
                 "`sovereign lab down` and up again")


def _stop(pid: int | None, timeout: float = 15) -> None:
    if not pid_alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def down(log: Callable[[str], None] = print) -> LabState:
    system.require_root()
    saved = _saved()
    nodes = lab_nodes()
    for node in nodes:
        if pid_alive(saved.get("pids", {}).get(node.name)):
            log(f"stopping {node.name}")
        _stop(saved.get("pids", {}).get(node.name))
    _stop(saved.get("relay_pid"), timeout=2)
    for node in nodes:
        merged = LAB_DIR / "nodes" / node.name / "root"
        if system.is_mounted(str(merged)):
            system.run("umount", str(merged))
        for link in node.veths:
            if system.link_exists(link):
                system.run("ip", "link", "del", link)
        if system.netns_exists(node.netns):
            system.run("ip", "netns", "del", node.netns)
    for bridge in (MGMT_BRIDGE, FABRIC_BRIDGE):
        if system.link_exists(bridge):
            system.run("ip", "link", "del", bridge)
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    return status()


def status() -> LabState:
    saved = _saved()
    pids = saved.get("pids", {})
    states = []
    for node in lab_nodes():
        pid = pids.get(node.name)
        running = pid_alive(pid)
        states.append(NodeState(name=node.name, mgmt_ip=node.mgmt_ip, fabric_ip=node.fabric_ip,
                                netns=node.netns, pid=pid if running else None,
                                netns_present=system.netns_exists(node.netns), running=running,
                                ssh=running and _ssh_open(node.mgmt_ip)))
    return LabState(up=bool(states) and all(s.ssh for s in states), nodes=states,
                    relay_pid=saved.get("relay_pid") if pid_alive(saved.get("relay_pid"))
                    else None, ssh_key=str(LAB_DIR / "ssh" / "id_ed25519"))
