"""Nothing is lost when the store fails: real Postgres refusing a record,
frozen (SIGSTOP), and down at start-up; the router over the cloud stand-in
(its local tiers are down: every question climbs to the stand-in)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from router_helpers import LAB, standin_calls, tiers_config
from testbed import PostgresCluster, find_pg_bin
from typer.testing import CliRunner

from sovereign.cli import render
from sovereign.cli.main import app
from sovereign.router.config import load_settings
from sovereign.router.crystals import exact_key, system_key
from sovereign.router.store import ATTEMPTS, CRYSTALS, KINDS, Attempt, Crystal, RecordRejected, RouterStore
from sovereign.service.outbox import Outbox, Writer
from sovereign.service.sql import NUL_REPLACEMENT, PostgresDatabase

TOO_BIG = 2**40  # for an INTEGER column: "integer out of range", whatever is sanitised


def crystal(prompt: str = "What is the capital of France?", **kw: Any) -> Crystal:
    msgs = [{"role": "user", "content": prompt}]
    base: dict[str, Any] = dict(
        id=uuid.uuid4().hex, created_at=time.time(), exact_key=exact_key(msgs), domain="general",
        single_turn=True, system_key=system_key(msgs), prompt=prompt, messages=msgs, answer="Paris.",
        provider="cloud-standin", model="m", raw_response={"choices": [{"message": {"content": prompt}}]})
    base.update(kw)
    return Crystal(**base)


def attempt(rid: str, **kw: Any) -> Attempt:
    return Attempt(request_id=rid, seq=1, at=time.time(), tier="t", decision="accepted", **kw)


@pytest.fixture
def pg_store(pg_dsn: str) -> Iterator[RouterStore]:
    s = RouterStore.postgres(SecretStr(pg_dsn))
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def own_pg() -> Iterator[PostgresCluster]:
    """A cluster of this test's own (it is stopped, frozen and restarted)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not installed")
    root = Path(tempfile.mkdtemp(prefix="sovereign-pg-fail-"))
    pg = PostgresCluster(bin_dir, root).start()
    yield pg
    for pid in _pids(pg):  # never leave it frozen
        _signal(pid, signal.SIGCONT)
    pg.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


def _pids(pg: PostgresCluster) -> list[int]:
    """The postmaster and its children (the backends serving the connections)."""
    pidfile = pg.data / "postmaster.pid"
    if not pidfile.exists():
        return []
    main = int(pidfile.read_text().split()[0])
    children = Path(f"/proc/{main}/task/{main}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [main, *kids]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# --------------------------------------------------------------------------- the kit's two errors


def test_postgres_tells_a_rejected_record_from_an_outage(pg_dsn: str) -> None:
    db = PostgresDatabase(SecretStr(pg_dsn))
    db.execute("CREATE TABLE t (n INTEGER NOT NULL, s TEXT)")
    with pytest.raises(RecordRejected, match="NUL"):  # refused before it leaves (psycopg)
        db.execute("INSERT INTO t VALUES (%s, %s)", (1, "a\x00b"))
    with pytest.raises(RecordRejected, match="out of range"):
        db.executemany("INSERT INTO t VALUES (%s, %s)", [(2, "ok"), (TOO_BIG, "big")])
    with pytest.raises(RecordRejected, match="null value"):
        db.execute("INSERT INTO t VALUES (%s, %s)", (None, "x"))
    db.execute("INSERT INTO t VALUES (%s, %s)", (3, db.text_in("a\x00b")))  # the connection is fine
    assert db.execute("SELECT n, s FROM t", fetch="all") == [(3, f"a{NUL_REPLACEMENT}b")]
    db.close()


def test_a_call_to_a_frozen_postgres_gives_up_and_the_next_reconnects(own_pg: PostgresCluster) -> None:
    from sovereign.service.sql import StoreUnavailable

    db = PostgresDatabase(SecretStr(own_pg.dsn), connect_timeout_s=1, statement_timeout_s=1, grace_s=1,
                          lock_wait_s=1)
    assert db.execute("SELECT 1", fetch="one") == (1,)
    pids = _pids(own_pg)
    for pid in pids:
        _signal(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer"):  # the watchdog cut it off
            db.execute("SELECT 2", fetch="one")
        assert time.monotonic() - t0 < 5.0
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable):  # a new connection: the connect timeout
            db.execute("SELECT 3", fetch="one")
        assert time.monotonic() - t0 < 5.0
    finally:
        for pid in pids:
            _signal(pid, signal.SIGCONT)
    assert db.execute("SELECT 4", fetch="one") == (4,)
    db.close()


def test_a_nul_byte_is_stored_sanitised(pg_store: RouterStore) -> None:
    c = crystal("What is\x00 the capital of France?", raw_response={"k\x00": ["v\x00"]})
    pg_store.put_crystal(c)
    pg_store.put_attempts([attempt("r-nul", answer="a\x00", reason="\x00")])
    got = pg_store.get_crystal(c.id)
    assert got is not None and got.prompt == f"What is{NUL_REPLACEMENT} the capital of France?"
    assert got.messages[0]["content"] == got.prompt and got.raw_response == {f"k{NUL_REPLACEMENT}":
                                                                            [f"v{NUL_REPLACEMENT}"]}
    assert pg_store.attempts("r-nul")[0].answer == f"a{NUL_REPLACEMENT}"


# --------------------------------------------------------------------------- the quarantine


def test_a_rejected_batch_is_quarantined_and_the_records_after_it_replay(
        pg_store: RouterStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "width", 200)
    spool = load_settings(LAB).spool_dir()
    box = Outbox(spool, KINDS)
    box.append(ATTEMPTS, [attempt("r0")])
    box.append(ATTEMPTS, [attempt("r1"), attempt("r1-bad", prompt_tokens=TOO_BIG), attempt("r1b")])
    box.append(CRYSTALS, [crystal(prompt_tokens=TOO_BIG)])
    box.append(ATTEMPTS, [attempt("r2")])
    assert box.pending() == 4
    assert box.replay(pg_store) == (4, 0)  # nothing waits behind the refused records
    assert {a.request_id for a in pg_store.attempts()} == {"r0", "r1", "r1b", "r2"}
    assert pg_store.count_crystals() == 0
    q = box.quarantined()
    assert [(x.kind, len(x.records)) for x in q] == [("attempts", 1), ("crystal", 1)]
    assert q[0].records[0]["request_id"] == "r1-bad" and "out of range" in q[0].reason
    assert q[0].queued_at is not None and q[0].at >= q[0].queued_at
    assert box.replay(pg_store) == (0, 0) and box.quarantine_count() == 2  # never retried

    result = CliRunner().invoke(app, ["router", "quarantine", "--json"])
    assert result.exit_code == 0, result.output
    assert [x["kind"] for x in json.loads(result.output)] == ["attempts", "crystal"]
    result = CliRunner().invoke(app, ["router", "quarantine"])
    assert result.exit_code == 0 and "out of range" in result.output and "crystal" in result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_writer_quarantines_a_direct_write_the_store_rejects(backend: str, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    import asyncio

    store = (RouterStore.sqlite(tmp_path / "r.sqlite3") if backend == "sqlite"
             else RouterStore.postgres(SecretStr(request.getfixturevalue("pg_dsn"))))
    store.migrate()
    box = Outbox(tmp_path / "spool", KINDS)
    reasons: list[str] = []
    writer = Writer(box, lambda: store, reasons.append)
    too_big = 2**70 if backend == "sqlite" else TOO_BIG  # (SQLite: over 64 bits)
    good = crystal()

    async def go() -> None:
        writer.submit(CRYSTALS, [crystal(prompt_tokens=too_big)])
        writer.submit(CRYSTALS, [good])
        await writer.drain()

    asyncio.run(go())
    assert reasons == [] and box.pending() == 0  # not an outage
    assert box.quarantine_count() == 1 and store.count_crystals() == 1 and store.get_crystal(good.id)
    store.close()


# --------------------------------------------------------------------------- the router


def _config(standin: Any, pg: PostgresCluster, **store: Any) -> dict[str, Any]:
    return tiers_config(None, None, standin.url, store={"backend": "postgres", "dsn": pg.dsn,
                                                        "connect_timeout_s": 1, **store})


def _ask(srv: Any, text: str, timeout: float = 30.0) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=timeout,
                   json={"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r.json(), time.monotonic() - t0


def _counts(settings: Any) -> tuple[int, int, int]:
    store = RouterStore.postgres(settings.store.dsn)
    try:
        n_att = store.db.execute("SELECT COUNT(*) FROM attempts", fetch="one")[0]
        n_aud = store.db.execute("SELECT COUNT(*) FROM egress_audit", fetch="one")[0]
        return store.count_crystals(), int(n_att), int(n_aud)
    finally:
        store.close()


def test_a_frozen_store_delays_no_answer_and_loses_no_record(own_pg: PostgresCluster, standin: Any,
                                                             serve_router: Any) -> None:
    from router_helpers import router_of

    srv, settings = serve_router(_config(standin, own_pg, statement_timeout_s=2, write_timeout_s=3))
    router = router_of(srv)
    first, _ = _ask(srv, "What is the capital of France?")
    assert first["choices"][0]["message"]["content"] == "Paris."
    srv.call(router.drain())
    crystals0, attempts0, audit0 = _counts(settings)
    assert (crystals0, audit0) == (1, 1) and attempts0 >= 1
    per_cloud_request = attempts0
    pids = _pids(own_pg)
    for pid in pids:
        _signal(pid, signal.SIGSTOP)
    try:
        hit, took = _ask(srv, "What is the capital of France?")
        assert hit["sovereign"]["crystallized"]["served_from"] == "index" and took < 3.0
        assert hit["choices"][0]["message"]["content"] == "Paris."
        second, took = _ask(srv, "How many legs does a spider have?")
        assert second["choices"][0]["message"]["content"] == "Eight." and took < 5.0
        t0 = time.monotonic()
        health = httpx.get(srv.url + "/health", timeout=10).json()
        assert time.monotonic() - t0 < 3.0 and health["store"]["ok"] is False
        srv.call(router.drain())  # the writes give up on the frozen store: to the outbox
        assert router.outbox.pending() >= 4  # the hit, its attempts, the new crystal, attempts, audit
    finally:
        for pid in pids:
            _signal(pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    pending = -1
    while time.monotonic() < deadline:
        _, pending = srv.call(router.replay_outbox())
        if pending == 0:
            break
        time.sleep(0.5)
    assert pending == 0 and router.outbox.quarantine_count() == 0
    crystals1, attempts1, audit1 = _counts(settings)
    assert (crystals1, audit1) == (2, 2)
    assert attempts1 >= attempts0 + per_cloud_request  # the second cloud request's (and the hit's)
    store = RouterStore.postgres(settings.store.dsn)
    assert len(store.attempts(second["id"])) == per_cloud_request
    assert store.get_crystal(hit["sovereign"]["crystallized"]["crystal_id"]).hits >= 1
    store.close()
    assert httpx.get(srv.url + "/health", timeout=10).json()["store"]["ok"] is True


def test_a_router_started_with_the_store_down_finds_it_back(own_pg: PostgresCluster, standin: Any,
                                                            serve_router: Any) -> None:
    from router_helpers import router_of

    cfg = _config(standin, own_pg)
    first, settings = serve_router(cfg, name="first")
    answer, _ = _ask(first, "What is 12 + 30?")
    assert answer["choices"][0]["message"]["content"] == "42."
    nul, _ = _ask(first, "What is the capital\x00 of Italy?")  # stored sanitised, not refused
    assert "no recorded answer" in nul["choices"][0]["message"]["content"]
    first.call(router_of(first).drain())
    assert router_of(first).outbox.quarantine_count() == 0 and router_of(first).outbox.pending() == 0
    first.stop()
    store = RouterStore.postgres(settings.store.dsn)
    prompts = {c.prompt for c in store.list_crystals()}
    assert prompts == {"What is 12 + 30?", f"What is the capital{NUL_REPLACEMENT} of Italy?"}
    store.close()

    own_pg.stop("fast")  # (fast: the test cluster runs with fsync off)
    second, _ = serve_router(cfg, name="second")
    health = httpx.get(second.url + "/health", timeout=10).json()
    assert health["store"]["ok"] is False and health["crystals_indexed"] == 0
    own_pg.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        health = httpx.get(second.url + "/health", timeout=10).json()
        if health["store"]["ok"] and health["crystals_indexed"] == 2:
            break
        time.sleep(0.5)
    assert health["store"]["ok"] is True and health["crystals_indexed"] == 2
    calls = standin_calls(standin)
    again, _ = _ask(second, "What is 12 + 30?")
    assert again["choices"][0]["message"]["content"] == "42."
    assert again["sovereign"]["crystallized"]["served_from"] == "store"
    assert standin_calls(standin) == calls  # answered from the crystal, no cloud call
