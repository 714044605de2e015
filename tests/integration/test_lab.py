"""Phases 1-2 on the lab, over real SSH: apply, re-run with zero changes,
resume after a kill, the ledger and the status table, then a clean teardown.
(Phase 4 has its own module, test_lab_inference.py.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from lab_helpers import LAB_DIR, on_node

pytestmark = pytest.mark.lab

PAGES = 124 * 262144
ONLY = ("--only", "1,2")


def results(payload: dict) -> dict[tuple[str, int], dict]:
    return {(r["host"], r["phase"]): r for r in payload["results"]}


@pytest.fixture(scope="module")
def first_run(cli, lab):
    return cli.json("provision", "all", *ONLY)


def test_first_run_applies_phases_1_and_2(first_run, lab):
    got = results(first_run)
    hosts = [n["name"] for n in lab["nodes"]]
    assert set(got) == {(h, p) for h in hosts for p in (1, 2)}
    for (_host, phase), r in got.items():
        assert r["status"] == "applied", r
        ids = {c["id"]: c for c in r["checks"]}
        if phase == 2:
            assert ids["GRUB-CMDLINE"]["status"] == "pass"
            assert ids["MODPROBE-TTM"]["status"] == "pass"
            # The lab's nodes share the host kernel: honest skips, never passes.
            assert ids["KERNEL-CMDLINE"]["status"] == "skip"
            assert ids["ROCM-GFX1151"]["status"] == "skip"
            assert any("update-grub" in s for s in r["skipped_steps"])
            assert any("install rocm" in s.lower() for s in r["skipped_steps"])
        else:
            assert ids["CPU-MODEL"]["status"] == "pass" and ids["CPU-MODEL"]["simulated"]


def test_configuration_is_really_on_the_nodes(first_run, lab):
    for node in lab["nodes"]:
        ip = node["mgmt_ip"]
        grub = on_node(ip, "cat /etc/default/grub.d/90-sovereign.cfg")
        assert f"ttm.pages_limit={PAGES}" in grub and "iommu=pt" in grub
        assert "gttsize" not in grub
        assert f"pages_limit={PAGES}" in on_node(ip, "cat /etc/modprobe.d/90-sovereign-ttm.conf")
        assert "Enabled: no" in on_node(ip, "cat /etc/apt/sources.list.d/rocm.sources")
        groups = on_node(ip, "id -nG sovereign").split()
        assert {"render", "video"} <= set(groups)
        assert "HSA_OVERRIDE_GFX_VERSION" not in on_node(ip, "cat /etc/environment || true")


def test_second_run_changes_nothing(first_run, cli):
    again = results(cli.json("provision", "all", *ONLY, "--force"))
    assert len(again) == 4
    for key, r in again.items():
        assert r["status"] == "applied", r
        assert r["changed"] == 0, f"{key} changed {r['changed']} task(s) on the second run"


def test_all_resumes_and_skips_what_is_applied(first_run, cli):
    resumed = results(cli.json("provision", "all", *ONLY))
    assert {r["status"] for r in resumed.values()} == {"up-to-date"}


def test_check_mode_on_a_converged_node_reports_no_change(first_run, cli):
    checked = results(cli.json("provision", "phase-2", "--check", "--limit", "mimical-2"))
    assert list(checked) == [("mimical-2", 2)]
    assert checked[("mimical-2", 2)]["status"] == "checked"
    assert checked[("mimical-2", 2)]["changed"] == 0


def test_status_shows_the_ledger(first_run, cli):
    status = cli.json("status")
    assert status["cluster"] == "mimical-lab"
    for host in status["hosts"]:
        cells = {c["phase"]: c for c in host["phases"]}
        assert cells[1]["status"] == "applied" and cells[2]["status"] == "applied"
        assert cells[2]["skipped_steps"]
        assert cells[4]["status"] == "never" and cells[6]["status"] == "never"
        assert cells[7]["status"] == ("never" if host["host"] == "mimical-1" else "not-here")
        assert all(cells[p]["status"] == "not-built" for p in (3, 5, 8))
    table = cli("status").stdout
    assert "applied" in table and "not built" in table


def _phase_running(db: Path, phase: int) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM records WHERE phase=? AND status='running'",
                           (phase,)).fetchone()
    return bool(row and row[0])


def test_a_run_killed_halfway_resumes(first_run, cli):
    state = Path(cli.env["SOVEREIGN_STATE_DIR"])
    proc = cli.popen("provision", "all", *ONLY, "--force")
    deadline = time.monotonic() + 300
    while not _phase_running(state / "ledger.sqlite", 2):
        assert proc.poll() is None, "the run ended before phase 2 started"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)  # inside phase 2: preflight or apply
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    status = {h["host"]: {c["phase"]: c for c in h["phases"]} for h in cli.json("status")["hosts"]}
    for cells in status.values():
        assert cells[1]["status"] == "applied"
        assert cells[2]["status"] == "interrupted"
    resumed = results(cli.json("provision", "all", *ONLY))
    for host in status:
        assert resumed[(host, 1)]["status"] == "up-to-date"
        assert resumed[(host, 2)]["status"] == "applied"


def test_unreachable_host_is_named(lab, cli, tmp_path):
    import shutil

    inv = tmp_path / "inventory"
    shutil.copytree(Path(__file__).resolve().parents[2] / "inventory" / "lab", inv)
    host_vars = inv / "host_vars" / "mimical-1.yml"
    # The management gateway is this machine, where nothing listens on port 22.
    host_vars.write_text(host_vars.read_text().replace("10.213.77.11", "10.213.77.1"))
    proc = cli("provision", "phase-1", "-i", str(inv), "--limit", "mimical-1", check=False)
    assert proc.returncode == 6, proc.stderr
    assert "mimical-1" in proc.stderr and "10.213.77.1" in proc.stderr


def test_hw_collect_over_ssh(lab, cli, tmp_path):
    out = tmp_path / "bundle"
    cli("hw", "collect", "--host", "mimical-2", "--out", str(out))
    report = cli.json("hw", "check", "--bundle", str(out), "--phase", "1", "-i", "inventory/lab",
                      check=False)
    assert report["host"] == "mimical-2"
    assert report["facts"]["cpu.model"].startswith("AMD RYZEN AI MAX+ 395")
    checks = {c["id"]: c["status"] for c in report["checks"]}
    assert checks["CPU-MODEL"] == "pass" and checks["OS-SUPPORTED"] == "pass"


def _validate(inventory: Path, phase: int) -> subprocess.CompletedProcess:
    import sys

    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
         "playbooks/validate.yml", "-e", f"sovereign_validate_phase={phase}",
         "-e", f"sovereign_bundle_dir={inventory.parent / 'bundles'}"],
        cwd=root, capture_output=True, text=True, timeout=300)


def test_awx_validate_playbook_judges_with_the_same_checks(lab, tmp_path):
    import shutil

    inv = tmp_path / "inventory"
    shutil.copytree(Path(__file__).resolve().parents[2] / "inventory" / "lab", inv)
    ok = _validate(inv, 1)
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert "CPU-MODEL" in ok.stdout
    # A node that is not the machine the inventory names fails the job, with the fix.
    host_vars = inv / "host_vars" / "mimical-2.yml"
    host_vars.write_text(host_vars.read_text().replace("MAX+ 395", "MAX+ 390"))
    bad = _validate(inv, 1)
    # ansible-playbook's code for "a host failed" (the fail task), not an error of its own.
    assert bad.returncode == 2, bad.stdout[-3000:] + bad.stderr[-2000:]
    assert "CPU-MODEL: found 'AMD RYZEN AI MAX+ 395 w/ Radeon 8060S'" in bad.stdout
    assert "fix: check that the inventory's ansible_host for mimical-2" in bad.stdout


def test_lab_down_leaves_nothing_behind(lab, cli):
    cli("lab", "down")
    # `ip netns` lists what `ip netns add` made (the lab's sov-* namespaces).
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert [n for n in netns.split() if n.startswith("sov-")] == [], netns
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(LAB_DIR) not in mounts
    assert not LAB_DIR.exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "sov-mgmt" not in links and "sov-fab" not in links and "sv1m" not in links
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "systemd-nspawn" not in procs and "bind=10.213.77.1" not in procs
    # Bring it back for any test that runs after (the fixture tears down at the end).
    assert cli.json("lab", "up")["up"]
