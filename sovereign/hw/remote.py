"""Run the collector on a node: locally, or over SSH with paramiko using the
inventory's connection settings."""

from __future__ import annotations

import io
import shlex
import socket
import tarfile
from pathlib import Path

import paramiko

from sovereign.errors import EnvironmentProblem, HostUnreachable
from sovereign.hw import collector
from sovereign.inventory.loader import Host

PROFILES_ON_NODE = "/usr/share/sovereign/hw-profiles"
COLLECT_TIMEOUT_S = 300


def collector_args(host: Host) -> list[str]:
    args = ["--host", host.name, "--tar", "-"]
    if host.node and host.node.sovereign_simulated_hardware:
        args.append("--simulated")
        if host.node.sovereign_hw_profile:
            args += ["--profile", f"{PROFILES_ON_NODE}/{host.node.sovereign_hw_profile}"]
    return args


def collect_local(out: Path) -> dict:
    return collector.collect(out, host=socket.gethostname())


def _known_hosts(common_args: str) -> str | None:
    parts = shlex.split(common_args or "")
    for i, part in enumerate(parts):
        if part.startswith("UserKnownHostsFile="):
            return part.split("=", 1)[1]
        if part == "-o" and i + 1 < len(parts) and parts[i + 1].startswith("UserKnownHostsFile="):
            return parts[i + 1].split("=", 1)[1]
    return None


def collect_ssh(host: Host, out: Path) -> None:
    """Pipe the collector to `python3 -` on the node and unpack its bundle."""
    v = host.vars
    address = str(v.get("ansible_host", host.name))
    client = paramiko.SSHClient()
    known = _known_hosts(str(v.get("ansible_ssh_common_args", "")))
    if known:
        client.load_host_keys(known)
    else:
        client.load_system_host_keys()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, port=int(v.get("ansible_port", 22)),
                       username=str(v.get("ansible_user", "root")),
                       key_filename=v.get("ansible_ssh_private_key_file"), timeout=10,
                       allow_agent=True, look_for_keys=True)
    except (OSError, paramiko.SSHException) as exc:
        raise HostUnreachable(f"{host.name} ({address}): {exc}",
                              hint="check ansible_host/ansible_user in the inventory; for the lab, "
                                   "`sovereign lab up`") from exc
    try:
        sudo = "sudo -n " if v.get("ansible_become") and v.get("ansible_user") != "root" else ""
        command = sudo + "python3 - " + " ".join(shlex.quote(a) for a in collector_args(host))
        stdin, stdout, stderr = client.exec_command(command, timeout=COLLECT_TIMEOUT_S)
        stdin.write(Path(collector.__file__).read_bytes())
        stdin.channel.shutdown_write()
        data = stdout.read()
        code = stdout.channel.recv_exit_status()
        if code != 0:
            raise EnvironmentProblem(f"{host.name}: the collector failed (exit {code}): "
                                     f"{stderr.read().decode(errors='replace').strip()[-300:]}")
    finally:
        client.close()
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
