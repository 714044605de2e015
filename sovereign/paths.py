"""Where things live: the project tree (playbooks, roles, inventories), the
state directory (ledger, run artifacts) and the download cache."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The tree holding playbooks/ and roles/ (SOVEREIGN_HOME overrides)."""
    env = os.environ.get("SOVEREIGN_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def default_inventory() -> Path:
    """The embedded default is the lab (SOVEREIGN_INVENTORY overrides)."""
    env = os.environ.get("SOVEREIGN_INVENTORY")
    return Path(env) if env else project_root() / "inventory" / "lab"


def state_dir() -> Path:
    """Ledger and run artifacts (SOVEREIGN_STATE_DIR overrides)."""
    env = os.environ.get("SOVEREIGN_STATE_DIR")
    if env:
        path = Path(env)
    elif os.geteuid() == 0:
        path = Path("/var/lib/sovereign")
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "sovereign"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_root() -> Path:
    """The download cache (SOVEREIGN_ARTIFACTS overrides): sovereign/downloads.py fills it."""
    env = os.environ.get("SOVEREIGN_ARTIFACTS")
    return Path(env) if env else Path("/var/cache/sovereign/artifacts")
