"""The ledger: per host and phase, what was applied, when, from which commit,
with what result. SQLite, one committed row per step, so a run killed at any
moment loses nothing already written and is seen as interrupted. The schema is
migrations/sqlite/NNNN_*.sql, applied by the runner every store uses
(sovereign.service.sql)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sovereign.process import pid_alive
from sovereign.service.sql import Database, SqliteDatabase, migrate

BENCH_COLUMNS = ("prompt_tps", "gen_tps", "gen_stddev", "bandwidth_gbps", "bandwidth_source",
                 "roofline_tps", "min_tps", "backend", "build")
_INSERT_BENCHMARK = (
    "INSERT INTO benchmarks (run_id, cluster, host, model, at, prompt_tps, gen_tps, gen_stddev,"
    " bandwidth_gbps, bandwidth_source, roofline_tps, min_tps, backend, build)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

# Statuses: running (in progress or interrupted), applied, failed, checked (--check).
DONE = "applied"


class Record(BaseModel):
    id: int
    run_id: str
    cluster: str
    inventory: str
    host: str
    phase: int
    status: str
    check_mode: bool
    started: float
    finished: float | None
    pid: int | None
    git_commit: str | None
    fingerprint: str | None
    changed: int | None
    failed_tasks: int | None
    skipped_steps: list[str]
    reboot_required: list[str]
    warnings: list[str] = []
    checks: list[dict[str, Any]]
    artifacts: str | None
    message: str | None

    @property
    def effective_status(self) -> str:
        """`running` rows whose process is gone were interrupted."""
        if self.status == "running" and not pid_alive(self.pid):
            return "interrupted"
        return self.status


def _adopt(db: Database) -> int:
    """The version of a ledger made before it recorded one: 2 with the
    warnings column, 1 without, 0 when there is no ledger yet."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)", fetch="all")}
    if not columns:
        return 0
    return 2 if "warnings" in columns else 1


class Ledger:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase(path)
        try:
            migrate(db, "sovereign.engine", adopt=_adopt)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.row_factory = sqlite3.Row
        return db

    def start(self, *, run_id: str, cluster: str, inventory: str, host: str, phase: int,
              check_mode: bool, git_commit: str | None, fingerprint: str | None) -> int:
        with closing(self._connect()) as db, db:
            cur = db.execute(
                "INSERT INTO records (run_id, cluster, inventory, host, phase, status, check_mode,"
                " started, pid, git_commit, fingerprint) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, cluster, inventory, host, phase, "running", int(check_mode), time.time(),
                 os.getpid(), git_commit, fingerprint),
            )
            return int(cur.lastrowid or 0)

    def finish(self, record_id: int, *, status: str, changed: int | None = None,
               failed_tasks: int | None = None, skipped_steps: list[str] | None = None,
               reboot_required: list[str] | None = None, warnings: list[str] | None = None,
               checks: list[dict[str, Any]] | None = None,
               artifacts: str | None = None, message: str | None = None) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "UPDATE records SET status=?, finished=?, changed=?, failed_tasks=?,"
                " skipped_steps=?, reboot_required=?, warnings=?, checks=?, artifacts=?, message=?"
                " WHERE id=?",
                (status, time.time(), changed, failed_tasks, json.dumps(skipped_steps or []),
                 json.dumps(reboot_required or []), json.dumps(warnings or []),
                 json.dumps(checks or []), artifacts, message, record_id),
            )

    def reset(self, cluster: str, hosts: list[str], reason: str) -> None:
        """Forget what was applied (the nodes were rebuilt): a `reset` row per
        host and recorded phase, so history stays and resume starts over."""
        now = time.time()
        with closing(self._connect()) as db, db:
            phases = [r[0] for r in db.execute(
                "SELECT DISTINCT phase FROM records WHERE cluster=?", (cluster,))]
            for host in hosts:
                for phase in phases:
                    db.execute(
                        "INSERT INTO records (run_id, cluster, inventory, host, phase, status,"
                        " started, finished, message) VALUES (?,?,?,?,?,?,?,?,?)",
                        ("reset", cluster, "", host, phase, "reset", now, now, reason))

    def close_if_running(self, record_id: int, *, status: str, message: str) -> None:
        """Mark a row that no step finished (the run stopped under it)."""
        with closing(self._connect()) as db, db:
            db.execute("UPDATE records SET status=?, finished=?, message=? WHERE id=? AND"
                       " status='running'", (status, time.time(), message, record_id))

    def _rows(self, query: str, args: tuple[Any, ...]) -> list[Record]:
        with closing(self._connect()) as db:
            rows = db.execute(query, args).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            for key in ("skipped_steps", "reboot_required", "warnings", "checks"):
                data[key] = json.loads(data[key] or "[]")
            data["check_mode"] = bool(data["check_mode"])
            out.append(Record.model_validate(data))
        return out

    def latest(self, cluster: str, host: str, phase: int, *, include_check: bool = False
               ) -> Record | None:
        rows = self._rows(
            "SELECT * FROM records WHERE cluster=? AND host=? AND phase=? AND check_mode<=?"
            " ORDER BY id DESC LIMIT 1",
            (cluster, host, phase, int(include_check)),
        )
        return rows[0] if rows else None

    def last_applied(self, cluster: str, host: str, phase: int) -> Record | None:
        rows = self._rows(
            "SELECT * FROM records WHERE cluster=? AND host=? AND phase=? AND status=?"
            " AND check_mode=0 ORDER BY id DESC LIMIT 1", (cluster, host, phase, DONE))
        return rows[0] if rows else None

    def history(self, cluster: str, host: str | None = None, limit: int = 50) -> list[Record]:
        if host:
            return self._rows("SELECT * FROM records WHERE cluster=? AND host=? ORDER BY id DESC"
                              " LIMIT ?", (cluster, host, limit))
        return self._rows("SELECT * FROM records WHERE cluster=? ORDER BY id DESC LIMIT ?",
                          (cluster, limit))

    def add_benchmark(self, *, run_id: str, cluster: str, host: str, model: str,
                      **figures: Any) -> None:
        """One llama-bench result (`sovereign bench`); extra keys are ignored."""
        values = [figures.get(c) for c in BENCH_COLUMNS]
        with closing(self._connect()) as db, db:
            db.execute(_INSERT_BENCHMARK, (run_id, cluster, host, model, time.time(), *values))

    def benchmarks(self, cluster: str, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent benchmark results, newest first."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM benchmarks WHERE cluster=? ORDER BY id DESC LIMIT ?",
                              (cluster, limit)).fetchall()
        return [dict(r) for r in rows]

    def is_done(self, cluster: str, host: str, phase: int, fingerprint: str) -> bool:
        last = self.latest(cluster, host, phase)
        return last is not None and last.status == DONE and last.fingerprint == fingerprint
