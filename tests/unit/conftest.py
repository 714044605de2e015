"""Shared fixtures of the unit tests: no root, no network, no Ansible run, no lab.

Every test runs with its own state directory (SOVEREIGN_STATE_DIR) and with
SOVEREIGN_HOME / SOVEREIGN_INVENTORY unset, so the project tree is this
checkout and the default inventory is its inventory/lab.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

# The suite runs with --import-mode=importlib: make unit_helpers importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from unit_helpers import LAB, make_bundle_at

from sovereign.cli import render

BundleFactory = Callable[..., Path]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory and no overrides of the project tree."""
    state = tmp_path / "state"
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(state))
    for var in ("SOVEREIGN_HOME", "SOVEREIGN_INVENTORY"):
        monkeypatch.delenv(var, raising=False)
    # The consoles pick their width at import time; pin it so that a run with
    # `-s` in a terminal wraps tables and messages as it does in CI.
    monkeypatch.setattr(render.console, "width", 150)
    monkeypatch.setattr(render.err_console, "width", 150)
    return state


@pytest.fixture
def state_dir(_isolated: Path) -> Path:
    """This test's SOVEREIGN_STATE_DIR (the code creates it on first use)."""
    return _isolated


@pytest.fixture
def runner() -> CliRunner:
    # click >= 8.2 keeps the streams apart: result.stdout, result.stderr, and
    # result.output (both, interleaved).
    return CliRunner()


@pytest.fixture
def lab_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of inventory/lab at tmp_path/lab. The working directory is
    tmp_path, so problems name files as `lab/host_vars/...`."""
    target = tmp_path / "lab"
    shutil.copytree(LAB, target)
    monkeypatch.chdir(tmp_path)
    return target


@pytest.fixture
def make_bundle(tmp_path: Path) -> BundleFactory:
    """`make_bundle(files, manifest=None, name=None) -> Path`, a new bundle directory
    under tmp_path/bundles (see unit_helpers.make_bundle_at). Without a manifest
    the directory's name is the bundle's host."""
    root = tmp_path / "bundles"
    made: list[Path] = []

    def factory(files: dict[str, str], manifest: dict[str, Any] | None = None,
                name: str | None = None) -> Path:
        path = make_bundle_at(root / str(len(made)), files, manifest, name or "bundle")
        made.append(path)
        return path

    return factory
