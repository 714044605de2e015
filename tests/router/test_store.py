"""Both stores for real: SQLite (a file) and Postgres (a private cluster)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from sovereign.router.crystals import exact_key, is_single_turn, numbers_of, system_key
from sovereign.router.store import (
    ATTEMPTS,
    AUDIT,
    CRYSTALS,
    KINDS,
    Attempt,
    AuditEntry,
    Crystal,
    CrystalHit,
    Label,
    RouterStore,
    StoreUnavailable,
)
from sovereign.service.outbox import Outbox
from sovereign.service.sql import migrations_of, schema_version


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouterStore]:
    if request.param == "sqlite":
        s = RouterStore.sqlite(tmp_path / "r.sqlite3")
    else:
        s = RouterStore.postgres(SecretStr(request.getfixturevalue("pg_dsn")))
    s.migrate()
    yield s
    s.close()


def crystal(prompt: str = "What is the capital of France?", answer: str = "Paris.", **kw) -> Crystal:
    msgs = [{"role": "user", "content": prompt}]
    vec = np.arange(4, dtype="<f4")
    base = dict(id=uuid.uuid4().hex, created_at=time.time(), exact_key=exact_key(msgs), domain="general",
                single_turn=True, system_key=system_key(msgs), prompt=prompt, messages=msgs, answer=answer,
                provider="cloud-standin", model="m", prompt_tokens=7, completion_tokens=2,
                raw_response={"id": "x", "choices": [{"message": {"content": answer}}],
                              "nested": {"ok": True}},
                embedding=vec.tobytes(), embedder="test")
    base.update(kw)
    return Crystal(**base)


def test_keys() -> None:
    a = [{"role": "user", "content": "What  is THE capital\nof France?"}]
    b = [{"role": "user", "content": "what is the capital of france?"}]
    assert exact_key(a) == exact_key(b)
    assert exact_key(a) != exact_key([{"role": "system", "content": "x"}, *b])
    assert is_single_turn([{"role": "system", "content": "s"}, *a])
    assert not is_single_turn([*a, {"role": "assistant", "content": "Paris"}, *b])
    assert system_key(a) == "" and system_key([{"role": "system", "content": "Be brief"}])
    assert numbers_of("What is 2+2, or 3.5?") == ("2", "2", "3.5")


def test_migrations_are_numbered_and_idempotent(store: RouterStore) -> None:
    files = migrations_of("sovereign.router.store", store.db.dialect)
    assert [v for v, _, _ in files] == list(range(1, len(files) + 1))
    assert schema_version(store.db) == len(files)
    assert store.migrate() == len(files)  # nothing applied twice
    rows = store.db.execute("SELECT version, name FROM schema_version ORDER BY version", fetch="all")
    assert [tuple(r) for r in rows] == [(v, n) for v, n, _ in files]


def test_crystal_round_trip(store: RouterStore) -> None:
    c = crystal()
    store.put_crystal(c)
    store.put_crystal(c)  # idempotent (the spool may replay it)
    assert store.count_crystals() == 1
    got = store.find_exact(c.exact_key)
    assert got is not None and got.id == c.id and got.answer == "Paris."
    assert got.raw_response == c.raw_response and got.messages == c.messages
    assert got.embedding == c.embedding and got.single_turn is True
    assert store.get_crystal(c.id[:8]) is not None and store.get_crystal("zzzzzzzz") is None
    store.record_hits([CrystalHit(id=c.id, at=time.time())])
    [summary] = store.list_crystals()
    assert summary.hits == 1 and summary.tokens == 9
    assert next(iter(store.iter_embeddings("test")))[0] == c.id
    assert store.forget(c.id[:10]) == c.id and store.count_crystals() == 0 and store.forget(c.id) is None


def test_postgres_keeps_json_as_jsonb(pg_dsn: str) -> None:
    s = RouterStore.postgres(SecretStr(pg_dsn))
    s.migrate()
    s.put_crystal(crystal())
    row = s.db.execute("SELECT jsonb_typeof(raw_response), raw_response->'nested'->>'ok', "
                     "pg_typeof(raw_response)::text, jsonb_typeof(messages) FROM crystals", fetch="one")
    assert tuple(row) == ("object", "true", "jsonb", "array")
    s.close()


def test_attempt_labels_and_audit(store: RouterStore) -> None:
    now = time.time()
    atts = [Attempt(request_id="r1", seq=1, at=now, tier="system-1", model="m", kind="local",
                    scorer="logprob",
                    raw_score=0.4, score=0.4, latency_ms=12.5, prompt_tokens=10, completion_tokens=3,
                    decision="below-threshold", reason="0.4 < 0.85", answer="Lyon", features={"n_tokens": 3}),
            Attempt(request_id="r1", seq=2, at=now, tier="cloud", kind="cloud", scorer="accept",
                    raw_score=1.0,
                    score=1.0, decision="accepted", reason="policy", answer="Paris")]
    store.put_attempts(atts)
    store.put_attempts(atts)  # idempotent
    store.label_attempts([Label(request_id="r1", seq=1, label=False, source="cloud")])
    got = store.attempts("r1")
    assert [a.seq for a in got] == [1, 2] and got[0].features == {"n_tokens": 3}
    assert got[0].label is False and got[0].label_source == "cloud"
    assert store.labelled() == [("system-1", "logprob", 0.4, False)]  # accept-scored rows are not evidence
    store.put_audit([AuditEntry(uid="a1", at=now, request_id="r1", provider="p", domain="general",
                                decision="allow", reason="ok", tokens=50, cost_usd=0.01),
                     AuditEntry(uid="a2", at=now, request_id="r2", provider="p", domain="financial",
                                decision="deny", reason="never leaves")])
    assert store.egress_usage_since(now - 1) == (1, 50, pytest.approx(0.01))
    assert [e.decision for e in store.audit()] == ["allow", "deny"]


def test_spool_replays_into_the_store_once(store: RouterStore, tmp_path: Path) -> None:
    spool = Outbox(tmp_path / "spool", KINDS)
    c = crystal()
    spool.append(CRYSTALS, [c])
    spool.append(ATTEMPTS, [Attempt(request_id="r9", seq=1, at=time.time(), tier="cloud",
                                    decision="accepted")])
    spool.append(AUDIT, [AuditEntry(uid="u9", at=time.time(), request_id="r9", provider="p", domain="general",
                                    decision="allow", reason="ok")])
    assert spool.pending() == 3
    assert spool.replay(store) == (3, 0)
    assert spool.pending() == 0 and store.get_crystal(c.id) is not None
    assert store.get_crystal(c.id).embedding == c.embedding  # base64 through the spool
    assert len(store.attempts("r9")) == 1 and len(store.audit()) == 1


class _Flaky(RouterStore):
    fail_after = 1

    def put_attempts(self, attempts):  # type: ignore[no-untyped-def]
        if self.fail_after <= 0:
            raise StoreUnavailable("down again")
        self.fail_after -= 1
        super().put_attempts(attempts)


def test_spool_keeps_what_did_not_make_it(tmp_path: Path) -> None:
    spool = Outbox(tmp_path / "spool", KINDS)
    for i in range(3):
        spool.append(ATTEMPTS, [Attempt(request_id=f"r{i}", seq=1, at=time.time(), tier="t",
                                        decision="accepted")])
    flaky = _Flaky.sqlite(tmp_path / "f.sqlite3")
    flaky.migrate()
    assert spool.replay(flaky) == (1, 2)
    flaky.fail_after = 10
    assert spool.replay(flaky) == (2, 0)
    assert {a.request_id for a in flaky.attempts()} == {"r0", "r1", "r2"}


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    from testbed import free_port

    dsn = f"postgresql://router:pw-never-shown@127.0.0.1:{free_port()}/x"
    with pytest.raises(StoreUnavailable) as exc:
        RouterStore.postgres(SecretStr(dsn), connect_timeout_s=1)
    assert "pw-never-shown" not in exc.value.message
    assert exc.value.exit_code == 12  # the store is unavailable (docs/cli.md)
