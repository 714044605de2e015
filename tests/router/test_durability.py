"""A cloud answer's crystal and audit row are durable before the answer is
released, and a stop loses no attempt: the router in a process of its own
(`sovereign router serve`), real Postgres (stopped, or frozen by SIGSTOP),
the cloud stand-in (simulated; the local tiers are down, so every question
climbs to it). Counts of crystals, audit rows and attempts in Postgres before
and after each stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from router_helpers import LAB, STANDIN_KEY, standin_calls
from test_store_failures import _config, _counts, _pids, _signal
from test_store_failures import own_pg as own_pg  # the fixture: a Postgres cluster of the test's own
from testbed import PostgresCluster, free_port

from sovereign.router.config import load_settings
from sovereign.router.service import Router
from sovereign.router.store import RouterStore

# `sovereign router serve -i INVENTORY --config FILE --port N` without the CLI around it: the
# settings from the lab inventory and the file, then the one serve path (sovereign/router/app.py).
SERVE = """
import sys
from pathlib import Path
from sovereign.router.app import serve
from sovereign.router.config import load_settings
settings = load_settings(Path(sys.argv[1]), Path(sys.argv[2]))
settings.listen.port = int(sys.argv[3])
serve(settings)
"""


class RouterProcess:
    """The router in a process of its own on a free port, its state in `state`."""

    def __init__(self, cfg: dict[str, Any], state: Path, name: str) -> None:
        self.state, self.name = state, name
        self.config = state.parent / f"{name}.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.settings = load_settings(LAB, self.config)
        self.port = free_port()
        self.log = state.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> RouterProcess:
        env = {**os.environ, "SOVEREIGN_STATE_DIR": str(self.state),
               "SOVEREIGN_CLOUD_STANDIN_KEY": STANDIN_KEY}
        cmd = [sys.executable, "-c", SERVE, str(LAB), str(self.config), str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")

    def ask(self, text: str, stream: bool = False) -> dict[str, Any]:
        """The answer (a stream read to its end and put together in the same shape)."""
        body = {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": text}],
                "stream": stream}
        if not stream:
            r = httpx.post(self.url + "/v1/chat/completions", timeout=30, json=body)
            assert r.status_code == 200, r.text
            return dict(r.json())
        with httpx.stream("POST", self.url + "/v1/chat/completions", timeout=30, json=body) as r:
            assert r.status_code == 200
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        return {"id": chunks[0]["id"], "choices": [{"message": {"content": text}}],
                "sovereign": next(c["sovereign"] for c in chunks if "sovereign" in c)}

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/health", timeout=10).json())

    def stop(self, sig: signal.Signals, timeout: float = 60.0) -> float:
        """Send `sig`; the seconds until the process is gone."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[list[RouterProcess]]:
    started: list[RouterProcess] = []
    yield started
    for r in started:
        r.kill()


def _start(routers: list[RouterProcess], cfg: dict[str, Any], state: Path, name: str) -> RouterProcess:
    r = RouterProcess(cfg, state, name)
    routers.append(r)
    return r.start()


def _spooled(state: Path) -> list[dict[str, Any]]:
    """The outbox's lines as they are on disk (kind, payload)."""
    spool = state / "router" / "spool"
    return [json.loads(line) for seg in sorted(spool.glob("spool-*.jsonl"))
            for line in seg.read_text().splitlines() if line.strip()]


def _migrated(pg: PostgresCluster) -> None:
    store = RouterStore.postgres(SecretStr(pg.dsn))
    store.migrate()
    store.close()


def _until(what: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := what():
            return got
        time.sleep(0.3)
    return what()


class PgStop:
    """The two ways the store goes away: stopped (pg_ctl) or frozen (SIGSTOP)."""

    def __init__(self, pg: PostgresCluster, how: str) -> None:
        self.pg, self.how = pg, how
        self.pids: list[int] = []

    def __enter__(self) -> PgStop:
        if self.how == "frozen":
            self.pids = _pids(self.pg)
            for pid in self.pids:
                _signal(pid, signal.SIGSTOP)
        else:
            self.pg.stop("fast")  # (fast: the test cluster runs with fsync off)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.how == "frozen":
            for pid in self.pids:
                _signal(pid, signal.SIGCONT)
        else:
            self.pg.start()


@pytest.mark.parametrize(("how", "stream"), [("stopped", False), ("frozen", False), ("frozen", True)])
def test_a_router_killed_right_after_a_cloud_answer_keeps_its_crystal_and_audit_row(
        how: str, stream: bool, own_pg: PostgresCluster, standin: Any, routers: list[RouterProcess],
        tmp_path: Path) -> None:
    _migrated(own_pg)
    cfg = _config(standin, own_pg, statement_timeout_s=10, write_timeout_s=10)
    state = tmp_path / "state"
    first = _start(routers, cfg, state, "first")
    settings = first.settings
    before = _counts(settings)
    assert before == (0, 0, 0)
    calls = standin_calls(standin)
    with PgStop(own_pg, how):
        answer = first.ask("What is the capital of France?", stream)
        first.stop(signal.SIGKILL)  # the moment the answer is in: no shutdown, no background write
        assert answer["choices"][0]["message"]["content"] == "Paris."
        assert answer["sovereign"]["egress"]["decision"] == "allow"
        assert standin_calls(standin) == calls + 1
        kinds = [line["kind"] for line in _spooled(state)]
        assert "crystal" in kinds and "audit" in kinds  # fsynced in the outbox before the answer left
    assert _counts(settings)[0::2] == (0, 0)  # the store never got them from the first router

    second = _start(routers, cfg, state, "second")  # its start replays the outbox
    assert _until(lambda: _counts(settings)[0::2] == (1, 1))  # the crystal and its audit row
    store = RouterStore.postgres(settings.store.dsn)
    try:
        [row] = store.audit()
        assert row.request_id == answer["id"] and row.decision == "allow"
        assert store.get_crystal(answer["sovereign"]["crystal_id"]) is not None
    finally:
        store.close()
    assert _until(lambda: second.health()["crystals_indexed"] == 1)
    again = second.ask("What is the capital of France?")
    assert again["choices"][0]["message"]["content"] == "Paris."
    assert again["sovereign"]["crystallized"]["crystal_id"] == answer["sovereign"]["crystal_id"]
    assert standin_calls(standin) == calls + 1  # a crystal hit, not a second cloud call


def test_sigterm_with_a_frozen_store_ends_within_its_bound_and_keeps_the_attempts(
        own_pg: PostgresCluster, standin: Any, routers: list[RouterProcess], tmp_path: Path) -> None:
    _migrated(own_pg)
    # A frozen server holds each call for connect + statement_timeout + grace (1 + 10 + 2 s):
    # far beyond the bound of the shutdown.
    cfg = _config(standin, own_pg, statement_timeout_s=10, write_timeout_s=3)
    state = tmp_path / "state"
    first = _start(routers, cfg, state, "first")
    settings = first.settings
    warm = first.ask("What is 12 + 30?")  # with the store up: written as usual
    assert _until(lambda: _counts(settings)[1] > 0)
    crystals0, attempts0, audit0 = _counts(settings)
    assert (crystals0, audit0) == (1, 1) and attempts0 >= 1
    per_request = attempts0
    bound = Router.close_bound_s(settings)
    with PgStop(own_pg, "frozen"):
        answered = [first.ask(q) for q in ("How many legs does a spider have?",
                                           "What is the capital of Italy?")]
        took = first.stop(signal.SIGTERM)
        assert took < bound + 3.0, f"SIGTERM took {took:.1f}s (bound {bound:g}s): {first.log.read_text()}"
        spooled = {a["request_id"] for line in _spooled(state) if line["kind"] == "attempts"
                   for a in line["payload"]}
        assert {r["id"] for r in answered} <= spooled  # the answered requests' attempts are in the outbox
    assert warm["id"] not in spooled

    _start(routers, cfg, state, "second")  # Postgres runs again: the outbox is replayed
    assert _until(lambda: not _spooled(state))
    crystals1, attempts1, audit1 = _counts(settings)
    assert (crystals1, audit1) == (crystals0 + 2, audit0 + 2)
    assert attempts1 == attempts0 + 2 * per_request
    store = RouterStore.postgres(settings.store.dsn)
    try:
        for r in answered:
            assert len(store.attempts(r["id"])) == per_request
    finally:
        store.close()
