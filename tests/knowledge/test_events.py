"""The event chain against a real Postgres: append and verify, the triggers and
the maintenance switch, tampering found and named, concurrent appends, the
writers' role."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from sovereign.knowledge import KnowledgeDB, KnowledgeSettings, open_knowledge
from sovereign.knowledge.events import (
    GENESIS,
    NewEvent,
    append,
    append_many,
    get_event,
    head,
    list_events,
    row_hash,
    verify,
)
from sovereign.service.sql import RecordRejected, StoreUnavailable


def _fill(kdb: KnowledgeDB, n: int = 6) -> list[str]:
    evs = append_many(kdb, [NewEvent(kind="deploy", source="test", subject=f"node-{i}",
                                     payload={"i": i, "ratio": 0.25, "big": 1e20, "text": "é\x00"})
                            for i in range(n)])
    return [e.id for e in evs]


@pytest.fixture
def raw(pg_dsn: str) -> Iterator[psycopg.Connection]:
    """A plain connection of the owner (the cluster's superuser), as a person at psql would have."""
    conn = psycopg.connect(pg_dsn, autocommit=True)
    yield conn
    conn.close()


def _maintenance(conn: psycopg.Connection) -> None:
    conn.execute("SET sovereign.maintenance = 'on'")


def test_appends_make_one_chain_that_verifies(kdb: KnowledgeDB) -> None:
    first = append(kdb, NewEvent(kind="boot", source="test", payload={"n": 1.0}))
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    ids = _fill(kdb)
    evs = sorted(list_events(kdb, limit=100), key=lambda e: e.seq)
    assert [e.seq for e in evs] == list(range(1, 8))
    for before, after in itertools.pairwise(evs):
        assert after.prev_hash == before.hash
        assert row_hash(after.model_dump()) == after.hash
    stored = get_event(kdb, ids[2])
    assert stored is not None and stored.payload["text"] == "é\ufffd" and stored.payload["big"] == 10**20
    result = verify(kdb)
    assert result.ok and result.rows == 7 and result.head is not None
    assert result.head.hash == evs[-1].hash == head(kdb).hash  # type: ignore[union-attr]


def test_an_id_already_in_the_chain_is_not_appended_twice(kdb: KnowledgeDB) -> None:
    one = append(kdb, NewEvent(id="replayed", kind="k", source="test"))
    again = append(kdb, NewEvent(id="replayed", kind="k", source="test", payload={"other": 1}))
    assert again == one and verify(kdb).rows == 1


def test_a_value_json_cannot_hold_is_rejected(kdb: KnowledgeDB) -> None:
    with pytest.raises(RecordRejected, match=r"payload\.x"):
        append(kdb, NewEvent(kind="k", source="test", payload={"x": float("nan")}))


def test_postgres_refuses_a_row_that_does_not_link_to_the_head(kdb: KnowledgeDB,
                                                              raw: psycopg.Connection) -> None:
    _fill(kdb, 2)
    with pytest.raises(psycopg.errors.CheckViolation, match="prev_hash is not the hash of seq 2"):
        raw.execute("INSERT INTO sovereign.behavioral_events "
                    "VALUES (3, 'x', now(), 's', 'k', '', '{}', %s, %s)", (GENESIS, "a" * 64))


@pytest.mark.parametrize("statement", ["UPDATE sovereign.behavioral_events SET kind = 'x' WHERE seq = 1",
                                       "DELETE FROM sovereign.behavioral_events WHERE seq = 1",
                                       "TRUNCATE sovereign.behavioral_events"],
                         ids=["update", "delete", "truncate"])
def test_the_trigger_refuses_the_owner_unless_the_maintenance_switch_is_on(
        kdb: KnowledgeDB, raw: psycopg.Connection, statement: str) -> None:
    _fill(kdb, 2)
    before = verify(kdb)
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        raw.execute(statement)
    assert verify(kdb) == before and before.ok and before.rows == 2
    _maintenance(raw)
    raw.execute(statement)
    assert verify(kdb) != before


def test_an_edited_row_is_named(kdb: KnowledgeDB, raw: psycopg.Connection) -> None:
    ids = _fill(kdb)
    _maintenance(raw)
    raw.execute("UPDATE sovereign.behavioral_events SET payload = '{\"i\": 99}' WHERE seq = 3")
    result = verify(kdb)
    assert not result.ok and result.problem is not None
    assert (result.problem.kind, result.problem.seq, result.problem.id) == ("edited", 3, ids[2])
    assert result.rows == 2


def test_an_edit_that_recomputed_its_hash_is_named_by_the_next_row(kdb: KnowledgeDB,
                                                                    raw: psycopg.Connection) -> None:
    ids = _fill(kdb)
    forged = get_event(kdb, "3")
    assert forged is not None
    forged.subject = "someone else"
    _maintenance(raw)
    raw.execute("UPDATE sovereign.behavioral_events SET subject = %s, hash = %s WHERE seq = 3",
                (forged.subject, row_hash(forged.model_dump())))
    problem = verify(kdb).problem
    assert problem is not None and (problem.kind, problem.seq, problem.id) == ("edited", 3, ids[2])


def test_a_deleted_row_is_named(kdb: KnowledgeDB, raw: psycopg.Connection) -> None:
    ids = _fill(kdb)
    _maintenance(raw)
    raw.execute("DELETE FROM sovereign.behavioral_events WHERE seq = 3")
    problem = verify(kdb).problem
    assert problem is not None and (problem.kind, problem.seq, problem.id) == ("deleted", 4, ids[3])
    assert "seq 3 before seq 4" in problem.message


def test_the_first_rows_deleted_are_found(kdb: KnowledgeDB, raw: psycopg.Connection) -> None:
    _fill(kdb)
    _maintenance(raw)
    raw.execute("DELETE FROM sovereign.behavioral_events WHERE seq <= 2")
    problem = verify(kdb).problem
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 3)


def test_two_rows_swapped_are_named(kdb: KnowledgeDB, raw: psycopg.Connection) -> None:
    ids = _fill(kdb)
    _maintenance(raw)
    for sql in ("UPDATE sovereign.behavioral_events SET seq = 1000 WHERE seq = 3",
                "UPDATE sovereign.behavioral_events SET seq = 3 WHERE seq = 4",
                "UPDATE sovereign.behavioral_events SET seq = 4 WHERE seq = 1000"):
        raw.execute(sql)
    problem = verify(kdb).problem
    assert problem is not None and (problem.kind, problem.seq, problem.id) == ("reordered", 3, ids[3])
    assert "it follows seq 4" in problem.message


def test_a_rewritten_chain_is_found_by_the_head_kept_outside(kdb: KnowledgeDB,
                                                             raw: psycopg.Connection) -> None:
    _fill(kdb)
    kept = head(kdb)
    assert kept is not None and verify(kdb, kept.hash).ok
    _maintenance(raw)
    raw.execute("DELETE FROM sovereign.behavioral_events")
    append_many(kdb, [NewEvent(kind="deploy", source="test", subject="forged", payload={"i": i})
                      for i in range(6)])
    assert verify(kdb).ok  # a valid new chain on its own...
    result = verify(kdb, kept.hash)  # ...but not the one whose head was kept
    assert not result.ok and result.problem is not None and result.problem.kind == "rewritten"
    assert kept.hash in result.problem.message


def test_a_kept_head_stays_valid_as_the_chain_grows(kdb: KnowledgeDB) -> None:
    _fill(kdb, 3)
    kept = head(kdb)
    _fill(kdb, 3)
    assert kept is not None and verify(kdb, kept.hash).ok


def test_concurrent_appends_from_several_connections_keep_one_chain(pg_dsn: str, kdb: KnowledgeDB) -> None:
    writers, each = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        own = KnowledgeDB.connect(KnowledgeSettings(dsn=pg_dsn).dsn)  # type: ignore[arg-type]
        try:
            start.wait()
            for i in range(each):
                append(own, NewEvent(kind="tick", source=f"writer-{n}", payload={"i": i}))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    result = verify(kdb)
    assert result.ok and result.rows == writers * each


@pytest.fixture
def writer(pg_dsn: str, kdb: KnowledgeDB, raw: psycopg.Connection) -> Iterator[KnowledgeDB]:
    """A login that holds only the writers' group role (as phase 6 grants it)."""
    role = "w_" + uuid.uuid4().hex[:10]
    raw.execute(f"CREATE ROLE {role} LOGIN IN ROLE sovereign_knowledge_writer")
    db = open_knowledge(KnowledgeSettings(dsn=pg_dsn.replace("user=postgres", f"user={role}")))
    yield db
    db.close()
    raw.execute(f"DROP OWNED BY {role}")
    raw.execute(f"DROP ROLE {role}")


def test_the_writer_role_appends_but_cannot_update_or_delete(writer: KnowledgeDB, kdb: KnowledgeDB) -> None:
    append(writer, NewEvent(kind="k", source="writer"))
    append(writer, NewEvent(kind="k", source="writer", at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert verify(writer).ok and verify(writer).rows == 2
    for sql in ("UPDATE sovereign.behavioral_events SET kind = 'x'",
                "DELETE FROM sovereign.behavioral_events",
                "TRUNCATE sovereign.behavioral_events",
                "UPDATE sovereign.methodology_rules SET statement = 'x'"):
        writer.run("SET sovereign.maintenance = 'on'")  # the switch does not grant what the role lacks
        with pytest.raises(StoreUnavailable, match="permission denied for table"):
            writer.run(sql)
    assert verify(kdb).rows == 2
