"""What the lab's integration tests share: the nodes, reached over real SSH
as root with the lab's own key and known hosts (written by `sovereign lab
up`), and the results of a `provision --json` run."""

from __future__ import annotations

import subprocess
from pathlib import Path

LAB_DIR = Path("/var/lib/sovereign-lab")
MGMT = {"mimical-1": "10.213.77.11", "mimical-2": "10.213.77.12"}
SSH = ["ssh", "-i", str(LAB_DIR / "ssh/id_ed25519"),
       "-o", f"UserKnownHostsFile={LAB_DIR / 'ssh/known_hosts'}",
       "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]


def on_node(host: str, command: str, *, check: bool = True, timeout: float = 120) -> str:
    """The stdout of `command` on a lab node, named or given by its management
    address; with `check`, a failing command fails the test with its stderr."""
    proc = subprocess.run([*SSH, f"root@{MGMT.get(host, host)}", command], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{host}: {command}: exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


def by_host(payload: dict, phase: int) -> dict[str, dict]:
    """One phase's results of a `provision --json` run, by host."""
    return {r["host"]: r for r in payload["results"] if r["phase"] == phase}
