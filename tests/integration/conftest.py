"""The lab, shared by the integration tests: brought up once, torn down at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The suite runs with --import-mode=importlib: make lab_helpers importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Cli:
    def __init__(self, state: Path):
        self.env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "sovereign", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=900)
        if check and proc.returncode != 0:
            raise AssertionError(f"sovereign {' '.join(args)} exited {proc.returncode}\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def json(self, *args: str, check: bool = True):
        return json.loads(self(*args, "--json", check=check).stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "sovereign", *args], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)


@pytest.fixture(scope="session")
def cli(tmp_path_factory) -> Cli:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    return Cli(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def lab(cli: Cli):
    cli("lab", "down")
    state = cli.json("lab", "up")
    assert state["up"], state
    yield state
    cli("lab", "down")
