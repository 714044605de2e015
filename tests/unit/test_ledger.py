"""The ledger: one SQLite row per host and phase run."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sovereign.engine.ledger import Ledger

CLUSTER = "mimical-lab"
# Above Linux's largest pid_max (2**22): no process can have it.
DEAD_PID = 2**22 + 12345


@pytest.fixture
def book(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "db" / "ledger.sqlite")


def start(book: Ledger, host: str = "mimical-1", phase: int = 2, *, check: bool = False,
          fingerprint: str = "fp-1", run_id: str = "run-1") -> int:
    return book.start(run_id=run_id, cluster=CLUSTER, inventory="/inv/lab", host=host,
                      phase=phase, check_mode=check, git_commit="abc123", fingerprint=fingerprint)


def set_pid(book: Ledger, record_id: int, pid: int | None) -> None:
    with closing(sqlite3.connect(book.path)) as db, db:
        db.execute("UPDATE records SET pid=? WHERE id=?", (pid, record_id))


def test_start_then_finish(book: Ledger) -> None:
    rid = start(book)
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None and row.id == rid
    assert (row.status, row.pid, row.finished, row.check_mode) == ("running", os.getpid(), None,
                                                                    False)
    assert row.effective_status == "running"  # this process is alive
    book.finish(rid, status="applied", changed=3, failed_tasks=0,
                skipped_steps=["kernel_params: update-grub (simulated hardware)"],
                reboot_required=["kernel_params: kernel command line lacks iommu=pt"],
                checks=[{"id": "MEM-TOTAL", "status": "pass"}], artifacts="/runs/x",
                message=None)
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None
    assert (row.status, row.effective_status, row.changed, row.failed_tasks) == (
        "applied", "applied", 3, 0)
    assert row.finished is not None and row.finished >= row.started
    assert row.skipped_steps == ["kernel_params: update-grub (simulated hardware)"]
    assert row.reboot_required == ["kernel_params: kernel command line lacks iommu=pt"]
    assert row.checks == [{"id": "MEM-TOTAL", "status": "pass"}]
    assert (row.git_commit, row.fingerprint, row.artifacts) == ("abc123", "fp-1", "/runs/x")


def test_the_file_survives_a_new_ledger_object(book: Ledger) -> None:
    rid = start(book)
    book.finish(rid, status="applied")
    again = Ledger(book.path)
    row = again.latest(CLUSTER, "mimical-1", 2)
    assert row is not None and row.status == "applied"


def test_latest_is_per_cluster_host_and_phase(book: Ledger) -> None:
    a = start(book, "mimical-1", 1)
    b = start(book, "mimical-2", 1)
    c = start(book, "mimical-1", 2)
    book.finish(a, status="applied")
    book.finish(b, status="failed", message="boom")
    book.finish(c, status="applied")
    one = book.latest(CLUSTER, "mimical-1", 1)
    two = book.latest(CLUSTER, "mimical-2", 1)
    assert one is not None and one.id == a and one.status == "applied"
    assert two is not None and two.id == b and two.message == "boom"
    assert book.latest(CLUSTER, "mimical-2", 2) is None
    assert book.latest("mimical", "mimical-1", 1) is None  # another cluster


def test_last_applied_skips_later_failures(book: Ledger) -> None:
    ok = start(book, run_id="r1")
    book.finish(ok, status="applied", reboot_required=["reboot"])
    bad = start(book, run_id="r2")
    book.finish(bad, status="failed")
    latest = book.latest(CLUSTER, "mimical-1", 2)
    applied = book.last_applied(CLUSTER, "mimical-1", 2)
    assert latest is not None and latest.id == bad
    assert applied is not None and applied.id == ok and applied.reboot_required == ["reboot"]


def test_is_done_needs_the_same_fingerprint_and_applied(book: Ledger) -> None:
    rid = start(book, fingerprint="fp-1")
    assert not book.is_done(CLUSTER, "mimical-1", 2, "fp-1")  # still running
    book.finish(rid, status="applied")
    assert book.is_done(CLUSTER, "mimical-1", 2, "fp-1")
    assert not book.is_done(CLUSTER, "mimical-1", 2, "fp-2")  # the inputs changed
    assert not book.is_done(CLUSTER, "mimical-2", 2, "fp-1")
    assert not book.is_done(CLUSTER, "mimical-1", 1, "fp-1")
    failed = start(book, fingerprint="fp-1")
    book.finish(failed, status="failed")
    assert not book.is_done(CLUSTER, "mimical-1", 2, "fp-1")  # the latest run failed


def test_a_running_row_whose_process_is_gone_reads_interrupted(book: Ledger) -> None:
    rid = start(book)
    set_pid(book, rid, DEAD_PID)
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None
    assert row.status == "running"
    assert row.effective_status == "interrupted"
    assert not book.is_done(CLUSTER, "mimical-1", 2, "fp-1")


def test_a_running_row_without_a_pid_reads_interrupted(book: Ledger) -> None:
    rid = start(book)
    set_pid(book, rid, None)
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None and row.effective_status == "interrupted"


def test_finished_rows_keep_their_status_whatever_the_pid(book: Ledger) -> None:
    rid = start(book)
    book.finish(rid, status="failed")
    set_pid(book, rid, DEAD_PID)
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None and row.effective_status == "failed"


def test_close_if_running_closes_only_running_rows(book: Ledger) -> None:
    open_row = start(book, "mimical-1")
    done_row = start(book, "mimical-2")
    book.finish(done_row, status="applied")
    book.close_if_running(open_row, status="interrupted", message="KeyboardInterrupt()")
    book.close_if_running(done_row, status="failed", message="must not overwrite")
    one = book.latest(CLUSTER, "mimical-1", 2)
    two = book.latest(CLUSTER, "mimical-2", 2)
    assert one is not None and (one.status, one.message) == ("interrupted", "KeyboardInterrupt()")
    assert one.finished is not None
    assert two is not None and (two.status, two.message) == ("applied", None)


def test_reset_forgets_what_was_applied_but_keeps_history(book: Ledger) -> None:
    for host in ("mimical-1", "mimical-2"):
        for phase in (1, 2):
            book.finish(start(book, host, phase), status="applied")
    other = book.start(run_id="r", cluster="mimical", inventory="/inv/prod", host="mimical-1",
                       phase=1, check_mode=False, git_commit=None, fingerprint="fp-1")
    book.finish(other, status="applied")
    book.reset(CLUSTER, ["mimical-1", "mimical-2"], reason="lab down: the nodes were removed")
    for host in ("mimical-1", "mimical-2"):
        for phase in (1, 2):
            assert not book.is_done(CLUSTER, host, phase, "fp-1")
            row = book.latest(CLUSTER, host, phase)
            assert row is not None
            assert (row.status, row.message) == ("reset", "lab down: the nodes were removed")
            applied = book.last_applied(CLUSTER, host, phase)
            assert applied is not None and applied.status == "applied"
    history = book.history(CLUSTER)
    assert [r.status for r in history].count("applied") == 4
    assert [r.status for r in history].count("reset") == 4
    assert len(book.history(CLUSTER, "mimical-2")) == 4
    # Another cluster in the same file is untouched.
    assert book.is_done("mimical", "mimical-1", 1, "fp-1")


def test_history_is_newest_first_and_limited(book: Ledger) -> None:
    ids = [start(book, phase=p) for p in (1, 2, 1)]
    assert [r.id for r in book.history(CLUSTER)] == ids[::-1]
    assert [r.id for r in book.history(CLUSTER, limit=2)] == ids[:0:-1]


def test_check_mode_rows_are_ignored_unless_asked_for(book: Ledger) -> None:
    applied = start(book)
    book.finish(applied, status="applied")
    checked = start(book, check=True)
    book.finish(checked, status="checked", message="check mode: nothing applied")
    row = book.latest(CLUSTER, "mimical-1", 2)
    assert row is not None and row.id == applied
    with_check = book.latest(CLUSTER, "mimical-1", 2, include_check=True)
    assert with_check is not None and with_check.id == checked
    assert with_check.check_mode is True and with_check.status == "checked"
    assert book.is_done(CLUSTER, "mimical-1", 2, "fp-1")  # a dry run changes nothing
    only_check = start(book, "mimical-2", check=True)
    book.finish(only_check, status="checked")
    assert book.latest(CLUSTER, "mimical-2", 2) is None
    last = book.last_applied(CLUSTER, "mimical-2", 2)
    assert last is None


def test_a_ledger_of_the_previous_release_is_adopted(tmp_path: Path) -> None:
    """A ledger made before the schema was versioned (its own CREATE IF NOT EXISTS
    and an ALTER for the warnings column) keeps its rows and gets no second column."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    first = (Path(__file__).resolve().parents[2] / "sovereign" / "engine" / "migrations" / "sqlite"
             / "0001_records_and_benchmarks.sql").read_text()
    with sqlite3.connect(path) as db:
        db.executescript(first)
        db.execute("ALTER TABLE records ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]'")
        db.execute("INSERT INTO records (run_id, cluster, inventory, host, phase, status, started)"
                   " VALUES ('r', 'c', 'i', 'h', 1, 'applied', 1.0)")
    book = Ledger(path)
    assert [r.status for r in book.history("c")] == ["applied"]
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
