"""The kit's SQL backends on a real SQLite file and a real Postgres database:
migrations recorded per package (several packages in one database), an
old-form `schema_version` adopted, and `transaction()`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from pg_fixtures import pg_cluster, pg_dsn  # noqa: F401 (fixtures: tests/support/pg_fixtures.py)

from sovereign.service.sql import (
    Database,
    PostgresDatabase,
    RecordRejected,
    SqliteDatabase,
    migrate,
    schema_version,
)

OLD_TABLE = ("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
             "applied_at REAL NOT NULL)")  # as the runner made it before versions were kept per package


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        d: Database = SqliteDatabase(tmp_path / "one.sqlite3")
    else:
        d = PostgresDatabase(SecretStr(request.getfixturevalue("pg_dsn")))
    yield d
    d.close()


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """make_package(tag, {file: sql}): an importable package with those
    migrations for both dialects."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(tag: str, files: dict[str, str]) -> str:
        name = f"kit_{tag}_{tmp_path.name.replace('-', '_')}"
        for dialect in ("sqlite", "postgres"):
            folder = tmp_path / name / "migrations" / dialect
            folder.mkdir(parents=True)
            for file, sql in files.items():
                (folder / file).write_text(sql)
        (tmp_path / name / "__init__.py").write_text("")
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def _two(tag: str) -> dict[str, str]:
    """0001 and 0002 of a package whose tables are named after it (the same
    numbers as every other package's)."""
    return {"0001_init.sql": f"CREATE TABLE {tag}_items (id INTEGER PRIMARY KEY);\n",
            "0002_more.sql": f"CREATE TABLE {tag}_more (id INTEGER PRIMARY KEY);\n"}


def _recorded(db: Database) -> list[tuple[str, int, str, float]]:
    rows = db.execute("SELECT package, version, name, applied_at FROM schema_version "
                      "ORDER BY package, version", fetch="all")
    return [tuple(r) for r in rows]


def _has_table(db: Database, table: str) -> bool:
    return bool(db.columns(table))


def test_two_packages_in_one_database_apply_both_sets(db: Database, make_package: Callable[..., str]) -> None:
    a, b = make_package("a", _two("a")), make_package("b", _two("b"))
    assert migrate(db, a) == 2
    assert migrate(db, b) == 2  # b's 0001 and 0002 are not a's
    assert all(_has_table(db, t) for t in ("a_items", "a_more", "b_items", "b_more"))
    assert (schema_version(db, a), schema_version(db, b)) == (2, 2)
    before = _recorded(db)
    assert [(p, v, n) for p, v, n, _ in before] == [(a, 1, "init"), (a, 2, "more"), (b, 1, "init"),
                                                    (b, 2, "more")]
    assert (migrate(db, a), migrate(db, b)) == (2, 2)
    assert _recorded(db) == before  # re-running applies nothing


def test_an_old_table_is_adopted_by_the_package_that_wrote_it(db: Database,
                                                              make_package: Callable[..., str]) -> None:
    a, b = make_package("a", _two("a")), make_package("b", _two("b"))
    # A database an earlier release migrated for `a`: its tables, and versions without a package.
    for sql in (OLD_TABLE, *(s.strip().rstrip(";") for s in _two("a").values())):
        db.execute(sql)
    for version, name in ((1, "init"), (2, "more")):
        db.execute(db.q("INSERT INTO schema_version VALUES (?, ?, 0)"), (version, name))
    # `b` migrates first: the rows name files it also has, but its tables are not there: not its.
    assert migrate(db, b) == 2
    assert _has_table(db, "b_items") and _has_table(db, "b_more")
    # `a` claims them and applies nothing (its CREATE TABLEs would fail on the tables that exist).
    assert migrate(db, a) == 2
    rows = _recorded(db)
    assert [(p, v) for p, v, _, _ in rows] == [(a, 1), (a, 2), (b, 1), (b, 2)]
    assert [at for p, _, _, at in rows if p == a] == [0, 0]  # the old rows, not new ones
    assert (migrate(db, a), migrate(db, b)) == (2, 2)
    assert _recorded(db) == rows


def test_an_old_postgres_table_keeps_its_grants(pg_dsn: str, make_package: Callable[..., str]) -> None:  # noqa: F811
    """Converted in place: a role granted SELECT on it (the knowledge writer) still reads it."""
    a = make_package("a", _two("a"))
    db = PostgresDatabase(SecretStr(pg_dsn))
    try:
        db.execute(OLD_TABLE)
        db.execute("CREATE ROLE kit_reader LOGIN")
        db.execute("GRANT SELECT ON schema_version TO kit_reader")
        assert migrate(db, a) == 2
        with psycopg.connect(pg_dsn, user="kit_reader", autocommit=True) as reader:
            assert reader.execute("SELECT package, version FROM schema_version ORDER BY version").fetchall() \
                == [(a, 1), (a, 2)]
    finally:
        db.execute("DROP OWNED BY kit_reader")
        db.execute("DROP ROLE kit_reader")
        db.close()


def test_a_failing_statement_in_a_transaction_rolls_back_everything(db: Database) -> None:
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    with pytest.raises(RecordRejected), db.transaction(lock_key=42):
        db.execute(db.q("INSERT INTO t VALUES (?, ?)"), (1, "a"))
        db.executemany(db.q("INSERT INTO t VALUES (?, ?)"), [(2, "b"), (3, "c")])
        db.execute(db.q("INSERT INTO t VALUES (?, ?)"), (1, "again"))  # the key is taken
        db.execute(db.q("INSERT INTO t VALUES (?, ?)"), (4, "d"))
    assert db.execute("SELECT count(*) FROM t", fetch="one")[0] == 0
    with pytest.raises(ZeroDivisionError), db.transaction():  # any error in the block
        db.execute(db.q("INSERT INTO t VALUES (?, ?)"), (5, "e"))
        _ = 1 / 0
    assert db.execute("SELECT count(*) FROM t", fetch="one")[0] == 0
    with db.transaction(lock_key=42):  # the connection is usable, the lock free again
        db.execute(db.q("INSERT INTO t VALUES (?, ?)"), (6, "f"))
        assert db.execute("SELECT count(*) FROM t", fetch="one")[0] == 1
    assert [tuple(r) for r in db.execute("SELECT id, v FROM t", fetch="all")] == [(6, "f")]


def test_the_transaction_lock_is_released_by_the_commit(pg_dsn: str) -> None:  # noqa: F811
    db = PostgresDatabase(SecretStr(pg_dsn))
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            with db.transaction(lock_key=7):
                db.execute("SELECT 1", fetch="one")
                assert other.execute("SELECT pg_try_advisory_lock(7)").fetchone()[0] is False
            assert other.execute("SELECT pg_try_advisory_lock(7)").fetchone()[0] is True
    finally:
        db.close()
