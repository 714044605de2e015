"""`sovereign router store migrate`: a real SQLite store, filled through RouterStore,
copied into a real Postgres (tests/support/pg_fixtures.py)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from router_helpers import tiers_config
from testbed import free_port
from typer.testing import CliRunner

from sovereign.cli import render
from sovereign.cli.main import app
from sovereign.router.crystals import exact_key, system_key
from sovereign.router.store import (
    Attempt,
    AuditEntry,
    Crystal,
    CrystalHit,
    Label,
    RecordRejected,
    RouterStore,
)
from sovereign.router.store.copy import copy_store, open_target
from sovereign.service.sql import NUL_REPLACEMENT, migrations_of

N = 240  # of each kind: several batches of BATCH
BATCH = 50
ODD = "naïve 東京 \x00 zero, ☃ and 🚀"  # non-ASCII and a NUL byte, in every text and JSON value


def _crystal(i: int, prompt: str | None = None, answer: str | None = None) -> Crystal:
    prompt = prompt or f"question {i}: {ODD}"
    msgs = [{"role": "system", "content": f"sys {ODD}"}, {"role": "user", "content": prompt}]
    if prompt.startswith("What"):  # the one the router is asked for: a single user message
        msgs = msgs[1:]
    return Crystal(id=uuid.uuid4().hex, created_at=1_700_000_000.0 + i, exact_key=exact_key(msgs),
                   domain="general", single_turn=True, system_key=system_key(msgs), prompt=prompt,
                   messages=msgs, answer=answer or f"answer {i} {ODD}", provider="cloud-standin",
                   model="m", prompt_tokens=i, completion_tokens=2,
                   raw_response={"id": f"r{i}", f"key {ODD}": [ODD, {"n": i, "ok": True}]},
                   embedding=None if i % 7 == 0 else bytes([0, 1, 2, i % 256]) * 96, embedder="test",
                   request_id=f"req-{i}", caller="owner" if i % 2 else None)


def fill(path: Path, extra: list[Crystal] | None = None) -> RouterStore:
    """A SQLite store with N crystals (some hit), N attempts (some labelled), N audit entries."""
    store = RouterStore.sqlite(path)
    store.migrate()
    crystals = [_crystal(i) for i in range(N)] + (extra or [])
    for k in range(0, len(crystals), 100):
        store.put_crystals(crystals[k:k + 100])
    store.record_hits([CrystalHit(id=c.id, at=1_700_100_000.0) for c in crystals[::5]])
    store.put_attempts([Attempt(request_id=f"req-{i // 3}", seq=i % 3, at=1_700_000_000.0 + i,
                                tier="system-1", model="smol", kind="chat", scorer="logprob", raw_score=0.5,
                                score=0.25, calibrated=bool(i % 2), decision="escalate", reason=f"low {ODD}",
                                answer=f"a {ODD}", domain="general", cls="A",
                                features={"words": i, "note": ODD}, caller="owner")
                        for i in range(N)])
    store.label_attempts([Label(request_id=f"req-{i // 3}", seq=i % 3, label=bool(i % 4), source="ref")
                          for i in range(0, N, 4)])
    store.put_audit([AuditEntry(uid=f"audit-{i}", at=1_700_000_000.0 + i, request_id=f"req-{i}",
                                provider="cloud-standin", domain="general", decision="allow",
                                reason=f"ok {ODD}", tokens=i, cost_usd=i / 1000,
                                caller=None if i % 3 else "owner") for i in range(N)])
    return store


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clean(value: Any) -> Any:
    """A value as Postgres holds it: each NUL of its strings (and keys) U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "router.sqlite3"
    fill(path).close()
    return path


@pytest.fixture
def target(pg_dsn: str) -> Any:
    db = open_target(pg_dsn)
    yield db
    db.close()


def sql(dsn: str, statement: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def counts(dsn: str) -> dict[str, int]:
    return {t: sql(dsn, f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("crystals", "attempts", "egress_audit")}


def test_every_row_is_copied_once_and_the_source_is_unchanged(source: Path, target: Any,
                                                               pg_dsn: str) -> None:
    before = sha256(source)
    seen: list[tuple[str, int, int]] = []
    report = copy_store(source, target, batch=BATCH, progress=lambda *a: seen.append(a))
    assert report.complete, report.as_dict()
    by_table = {t.table: t for t in report.tables}
    assert set(by_table) == {"crystals", "attempts", "egress_audit"}
    for t in by_table.values():
        assert (t.source, t.copied, t.present, t.target, t.missing) == (N, N, 0, N, 0)
    assert counts(pg_dsn) == {"crystals": N, "attempts": N, "egress_audit": N}
    assert ("crystals", BATCH, N) in seen and ("crystals", N, N) in seen  # a line per batch
    assert sha256(source) == before

    src, dst = RouterStore.sqlite(source), RouterStore.postgres(SecretStr(pg_dsn))
    try:
        ids = {r[0] for r in src.db.execute("SELECT id FROM crystals", fetch="all")}
        assert {r[0] for r in dst.db.execute("SELECT id FROM crystals", fetch="all")} == ids
        for ident in ids:  # every value, the embedding's bytes, the hits and the callers included
            want = src.get_crystal(ident)
            assert want is not None
            assert dst.get_crystal(ident) == Crystal.model_validate(clean(want.model_dump()))
        # Attempts (with their labels) and the audit, in the source's order.
        assert dst.attempts(limit=10 * N) == [Attempt.model_validate(clean(a.model_dump()))
                                              for a in src.attempts(limit=10 * N)]
        assert sorted(dst.labelled()) == sorted(src.labelled()) and len(src.labelled()) == N // 4
        assert dst.audit(limit=10 * N) == [AuditEntry.model_validate(clean(e.model_dump()))
                                           for e in src.audit(limit=10 * N)]
        # The target numbers rows on from there: the router's next writes go in after them.
        dst.put_attempts([Attempt(request_id="after", seq=0, at=1.0, tier="system-1", decision="accept")])
        dst.put_audit([AuditEntry(uid="after", at=1.0, request_id="after", provider="p", domain=None,
                                  decision="allow", reason="")])
        assert dst.attempts(limit=1)[0].request_id == "after" and dst.audit(limit=1)[0].uid == "after"
    finally:
        src.close()
        dst.close()

    again = copy_store(source, target, batch=BATCH)
    assert again.complete
    assert [(t.table, t.copied, t.present) for t in again.tables] == [
        ("attempts", 0, N), ("crystals", 0, N), ("egress_audit", 0, N)]
    assert counts(pg_dsn) == {"crystals": N, "attempts": N + 1, "egress_audit": N + 1}
    assert sha256(source) == before


def test_a_copy_a_constraint_stops_halfway_completes_when_run_again(source: Path, target: Any,
                                                                    pg_dsn: str) -> None:
    store = RouterStore.postgres(SecretStr(pg_dsn))
    store.migrate()
    store.close()
    # A real constraint refuses the 130th crystal: its batch (the third) is refused whole.
    sql(pg_dsn, "ALTER TABLE crystals ADD CONSTRAINT not_yet CHECK (created_at < 1700000130)")
    with pytest.raises(RecordRejected, match="crystals"):
        copy_store(source, target, batch=BATCH)
    partial = counts(pg_dsn)
    assert partial["attempts"] == N and partial["crystals"] == 2 * BATCH and partial["egress_audit"] == 0
    sql(pg_dsn, "ALTER TABLE crystals DROP CONSTRAINT not_yet")
    report = copy_store(source, target, batch=BATCH)
    assert report.complete
    assert {t.table: (t.copied, t.present) for t in report.tables} == {
        "attempts": (0, N), "crystals": (N - 2 * BATCH, 2 * BATCH), "egress_audit": (N, 0)}
    assert counts(pg_dsn) == {"crystals": N, "attempts": N, "egress_audit": N}


def test_a_killed_copy_completes_when_run_again(source: Path, pg_dsn: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = RouterStore.postgres(SecretStr(pg_dsn))
    store.migrate()
    store.close()
    # Each attempt row takes 10 ms to insert (a real trigger), so the kill lands mid-table.
    sql(pg_dsn, "CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; "
                "END $$ LANGUAGE plpgsql; CREATE TRIGGER slow BEFORE INSERT ON attempts FOR EACH ROW "
                "EXECUTE FUNCTION slow()")
    before = sha256(source)
    proc = subprocess.Popen([sys.executable, "-m", "sovereign", "router", "store", "migrate", "--from",
                             str(source), "--to", pg_dsn, "--batch-size", "20"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and counts(pg_dsn)["attempts"] < 60 and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    killed_at = counts(pg_dsn)["attempts"]
    assert proc.returncode == -signal.SIGKILL and 60 <= killed_at < N
    assert killed_at % 20 == 0  # whole batches only
    sql(pg_dsn, "DROP TRIGGER slow ON attempts")

    monkeypatch.setattr(render.console, "width", 200)
    result = CliRunner().invoke(app, ["router", "store", "migrate", "--from", str(source), "--to", pg_dsn,
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["complete"] is True
    assert {t["table"]: (t["copied"], t["present"]) for t in report["tables"]} == {
        "attempts": (N - killed_at, killed_at), "crystals": (N, 0), "egress_audit": (N, 0)}
    assert counts(pg_dsn) == {"crystals": N, "attempts": N, "egress_audit": N}
    assert sha256(source) == before


def test_rows_missing_after_the_copy_name_their_table(source: Path, target: Any, pg_dsn: str) -> None:
    # A trigger that swallows the audit's inserts: the copy "succeeds", the comparison does not.
    store = RouterStore.postgres(SecretStr(pg_dsn))
    store.migrate()
    store.close()
    sql(pg_dsn, "CREATE FUNCTION swallow() RETURNS trigger AS $$ BEGIN IF NEW.uid LIKE 'audit-1%' THEN "
                "RETURN NULL; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; CREATE TRIGGER swallow BEFORE "
                "INSERT ON egress_audit FOR EACH ROW EXECUTE FUNCTION swallow()")
    report = copy_store(source, target, batch=BATCH)
    assert not report.complete
    short = [t for t in report.tables if not t.complete]
    assert [t.table for t in short] == ["egress_audit"] and short[0].missing == 111  # 1, 10-19, 100-199
    assert short[0].missing_keys[0] == "audit-1"
    result = CliRunner().invoke(app, ["router", "store", "migrate", "--from", str(source), "--to", pg_dsn])
    assert result.exit_code == 4
    assert "egress_audit: 111 of 240 rows missing" in result.output and "'audit-1'" in result.output


def test_the_command_refuses_what_it_cannot_copy_whole(tmp_path: Path, source: Path, pg_dsn: str) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["router", "store", "migrate", *args])

    missing = tmp_path / "nowhere.sqlite3"
    result = run("--from", str(missing), "--to", pg_dsn)
    assert result.exit_code == 2 and f"{missing}: no such file" in result.output and not missing.exists()
    text = tmp_path / "notes.txt"
    text.write_text("not a database, " * 100)
    result = run("--from", str(text), "--to", pg_dsn)
    assert result.exit_code == 2 and "is not a SQLite database" in result.output
    other = tmp_path / "other.sqlite3"
    sql_conn = sqlite3.connect(other)
    sql_conn.execute("CREATE TABLE things (id TEXT PRIMARY KEY)")
    sql_conn.close()
    result = run("--from", str(other), "--to", pg_dsn)
    assert result.exit_code == 2 and "is not a router store (it has no schema_version table)" in result.output

    port = free_port()
    result = run("--from", str(source), "--to", f"postgresql://router:pw-never-shown@127.0.0.1:{port}/r")
    assert result.exit_code == 12, result.output
    assert f"cannot reach the target Postgres at 127.0.0.1:{port}/r" in result.output
    assert "pw-never-shown" not in result.output
    result = run("--from", str(source), "--to", "not a dsn")
    assert result.exit_code == 2 and "--to: not a Postgres DSN" in result.output

    # A target migrated by newer code (its schema_version row for the router's store).
    store = RouterStore.postgres(SecretStr(pg_dsn))
    store.migrate()
    store.close()
    sql(pg_dsn, "INSERT INTO schema_version (package, version, name, applied_at) "
                "VALUES ('sovereign.router.store', 99, 'future', 0)")
    result = run("--from", str(source), "--to", pg_dsn)
    ours = len(migrations_of("sovereign.router.store", "postgres"))
    assert result.exit_code == 1
    assert f"its schema is version 99, newer than this code's ({ours})" in result.output
    assert counts(pg_dsn) == {"crystals": 0, "attempts": 0, "egress_audit": 0}  # nothing copied


def test_the_router_serves_from_postgres_a_crystal_made_in_sqlite(tmp_path: Path, pg_dsn: str, standin: Any,
                                                                  serve_router: Any) -> None:
    from router_helpers import standin_calls

    path = tmp_path / "router.sqlite3"
    made = _crystal(N, prompt="What is the tallest mountain on Mars?", answer="Olympus Mons (from SQLite).")
    fill(path, extra=[made]).close()
    result = CliRunner().invoke(app, ["router", "store", "migrate", "--from", str(path), "--to", pg_dsn])
    assert result.exit_code == 0, result.output
    srv, _ = serve_router(tiers_config(None, None, standin.url, embedding={"backend": "none"},
                                       store={"backend": "postgres", "dsn": pg_dsn}))
    calls = standin_calls(standin)
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                   json={"model": "auto", "max_tokens": 16,
                         "messages": [{"role": "user", "content": "What is the tallest mountain on Mars?"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Olympus Mons (from SQLite)."
    assert body["sovereign"]["crystallized"]["match"] == "exact"
    assert body["sovereign"]["crystallized"]["crystal_id"] == made.id
    assert standin_calls(standin) == calls  # no cloud call
