"""Thin wrappers over the host commands the lab needs (ip, mount, nspawn)."""

from __future__ import annotations

import os
import shutil
import subprocess

from sovereign.errors import EnvironmentProblem

REQUIRED_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ip": "iproute2",
    "socat": "socat",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the lab needs root: it creates network namespaces, overlay mounts and "
            "systemd-nspawn containers",
            hint="run it as root, e.g. `sudo .venv/bin/sovereign lab up`",
        )


def require_tools() -> None:
    missing = {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None}
    if missing:
        raise EnvironmentProblem(
            f"the lab needs {', '.join(missing)}, not found on this machine",
            hint=f"`make setup` installs them (apt-get install {' '.join(sorted(set(missing.values())))})",
        )


def run(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, input=input_text, check=False)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise EnvironmentProblem(f"`{' '.join(args)}` failed: {detail[0]}")
    return proc


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", name, check=False).returncode == 0


def is_mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as handle:
        return any(line.split()[4] == path for line in handle)


