"""Every role's molecule scenario (podman): converge, idempotence, check mode, verify."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))

pytestmark = pytest.mark.molecule


@pytest.fixture(scope="session")
def rootfs() -> str:
    if os.geteuid() != 0:
        pytest.skip("molecule's podman scenarios run as root here")
    proc = subprocess.run([sys.executable, "-m", "sovereign", "lab", "image"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def test_every_role_has_a_scenario():
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert roles == SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str, rootfs: str):
    env = {**os.environ, "SOVEREIGN_ROOTFS": rootfs,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "molecule/run.sh", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
