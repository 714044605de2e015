"""`sovereign status` from a ledger filled by hand."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit_helpers import LAB, PRODUCTION, plain

from sovereign.cli.main import app
from sovereign.engine.ledger import Ledger

CLUSTER = "mimical-lab"
DEAD_PID = 2**22 + 12345
REBOOT = "kernel_params: kernel command line lacks iommu=pt ttm.pages_limit=32505856"
SKIPPED = ["kernel_params: update-grub (simulated hardware)",
           "rocm: install rocm-hip-runtime (simulated hardware)"]


def record(book: Ledger, host: str, phase: int, status: str | None, *, check: bool = False,
           cluster: str = CLUSTER, **finish: object) -> int:
    rid = book.start(run_id="20260101-000000-abcd", cluster=cluster, inventory=str(LAB),
                     host=host, phase=phase, check_mode=check, git_commit="0123456789ab",
                     fingerprint="fp")
    if status is not None:
        book.finish(rid, status=status, **finish)  # type: ignore[arg-type]
    return rid


@pytest.fixture
def book(state_dir: Path) -> Ledger:
    """The ledger `sovereign status` reads (SOVEREIGN_STATE_DIR/ledger.sqlite), filled:

    mimical-1: phase 1 applied; phase 2 applied with a reboot required and
               simulated skips, then a later --check run (ignored).
    mimical-2: phase 1 failed; phase 2 started by a process that is gone.
    """
    book = Ledger(state_dir / "ledger.sqlite")
    record(book, "mimical-1", 1, "applied", changed=4)
    record(book, "mimical-1", 2, "applied", changed=7, skipped_steps=SKIPPED,
           reboot_required=[REBOOT], artifacts="/runs/a")
    record(book, "mimical-1", 2, "checked", check=True)
    record(book, "mimical-2", 1, "failed", message="verify failed")
    gone = record(book, "mimical-2", 2, None)
    with closing(sqlite3.connect(book.path)) as db, db:
        db.execute("UPDATE records SET pid=? WHERE id=?", (DEAD_PID, gone))
    # Another cluster's rows in the same file do not show.
    record(book, "mimical-1", 3, "applied", cluster="mimical")
    return book


def status_json(runner: CliRunner, *args: str) -> dict:
    result = runner.invoke(app, ["status", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cells(data: dict) -> dict[tuple[str, int], dict]:
    return {(h["host"], c["phase"]): c for h in data["hosts"] for c in h["phases"]}


def test_status_json_shape(runner: CliRunner, book: Ledger) -> None:
    data = status_json(runner)
    assert set(data) == {"cluster", "inventory", "hosts"}
    assert data["cluster"] == CLUSTER
    assert data["inventory"] == str(LAB.resolve())
    assert [h["host"] for h in data["hosts"]] == ["mimical-1", "mimical-2"]
    for host in data["hosts"]:
        assert set(host) == {"host", "phases"}
        assert [c["phase"] for c in host["phases"]] == list(range(1, 9))
        for cell in host["phases"]:
            assert {"phase", "status", "when", "git_commit", "changed", "skipped_steps",
                    "reboot_required", "warnings", "message", "run_id", "artifacts"} == set(cell)


def test_status_json_statuses(runner: CliRunner, book: Ledger) -> None:
    got = {key: cell["status"] for key, cell in cells(status_json(runner)).items()}
    assert got == {
        ("mimical-1", 1): "applied", ("mimical-1", 2): "applied",
        ("mimical-2", 1): "failed", ("mimical-2", 2): "interrupted",
        **{(host, n): "not-built" for host in ("mimical-1", "mimical-2") for n in (3, 5, 8)},
        ("mimical-1", 4): "never", ("mimical-2", 4): "never",
        ("mimical-1", 6): "never", ("mimical-2", 6): "never",
        # The router's phase runs on the orchestrator alone.
        ("mimical-1", 7): "never", ("mimical-2", 7): "not-here",
    }


def test_status_json_carries_the_details(runner: CliRunner, book: Ledger) -> None:
    got = cells(status_json(runner))
    applied = got[("mimical-1", 2)]
    assert applied["reboot_required"] == [REBOOT]
    assert applied["skipped_steps"] == SKIPPED
    assert (applied["changed"], applied["git_commit"], applied["artifacts"]) == (
        7, "0123456789ab", "/runs/a")
    assert applied["run_id"] == "20260101-000000-abcd"
    assert isinstance(applied["when"], float)
    assert got[("mimical-2", 1)]["message"] == "verify failed"
    assert got[("mimical-1", 3)]["when"] is None


def test_status_never(runner: CliRunner, state_dir: Path) -> None:
    got = {key: cell["status"] for key, cell in cells(status_json(runner)).items()}
    assert {got[(h, n)] for h in ("mimical-1", "mimical-2") for n in (1, 2)} == {"never"}
    assert (state_dir / "ledger.sqlite").is_file()


def test_status_reset_after_lab_down(runner: CliRunner, book: Ledger) -> None:
    book.reset(CLUSTER, ["mimical-1", "mimical-2"], reason="lab down: the nodes were removed")
    got = cells(status_json(runner))
    assert got[("mimical-1", 1)]["status"] == "reset"
    assert got[("mimical-1", 2)]["reboot_required"] == []


def test_status_of_another_inventory(runner: CliRunner, book: Ledger) -> None:
    data = status_json(runner, "-i", str(PRODUCTION))
    assert data["cluster"] == "mimical"
    got = cells(data)
    assert got[("mimical-1", 1)]["status"] == "never"
    # A row of an unbuilt phase is still shown.
    assert got[("mimical-1", 3)]["status"] == "applied"


def test_status_table(runner: CliRunner, book: Ledger) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert "mimical-lab" in out
    assert "mimical-1" in out and "mimical-2" in out
    assert "reboot required" in out
    assert "2 simulated skips" in out
    assert "✓ applied" in out and "✗ failed" in out and "! interrupted" in out
    assert "not built" in out
    assert "@0123456789ab" in out


def test_status_with_an_invalid_inventory(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "-i", str(tmp_path / "nowhere")])
    assert result.exit_code == 3
