"""The lab's base root filesystem: Debian 12 from debootstrap, built once and
cached (the lab's nodes and molecule's podman image are overlays of it)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sovereign.lab.system import run

CACHE = Path(os.environ.get("SOVEREIGN_CACHE", "/var/cache/sovereign"))
SUITE = "bookworm"
PACKAGES = [
    "python3", "python3-apt", "systemd", "systemd-sysv", "dbus", "sudo", "iproute2", "procps",
    "openssh-server", "kmod", "pciutils", "ca-certificates",
]
STAMP = ".sovereign-rootfs"


def rootfs_path() -> Path:
    return CACHE / "rootfs" / SUITE


def debian_mirror() -> str:
    """The mirror this machine's apt already uses (the lab must use the same)."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if source.is_file():
            match = re.search(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b", source.read_text())
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def ensure_rootfs(log=print) -> Path:
    """Build the rootfs unless a complete one is cached; return its path."""
    path = rootfs_path()
    wanted = " ".join(PACKAGES)
    stamp = path / STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return path
    log(f"building the lab's Debian {SUITE} root filesystem in {path} (about a minute, once)")
    scratch = path.with_name(path.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
        str(scratch), debian_mirror())
    # Nodes get their own host keys at `lab up`; never share the build's.
    for key in (scratch / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (scratch / STAMP).write_text(wanted + "\n")
    shutil.rmtree(path, ignore_errors=True)
    scratch.rename(path)
    return path
