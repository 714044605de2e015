# ruff: noqa: S608  (table and column names come from the two schemas; every value is a bound parameter)
"""Copy a SQLite router store into Postgres, losing nothing.

`copy_store(path, target)` reads the SQLite file read-only (it is never
changed), migrates the Postgres target to this code's schema, and copies
every table of the source, in batches, each batch one transaction:

- a table is copied on its unique key (crystals: `id`; attempts and the
  egress audit: `uid`), and a row whose key the target already holds is not
  written again (and the INSERT says ON CONFLICT DO NOTHING besides), so a
  run that was interrupted completes when it is run again, and a second run
  copies nothing;
- a table's integer row number (attempts.id, egress_audit.id) is not copied:
  the target numbers the rows anew, in the source's order;
- values become what the target's column holds (JSON text → JSONB, 0/1 →
  BOOLEAN, BLOB → BYTEA), through the backend's `text_in`/`json_in` as every
  write of the store (a NUL byte becomes U+FFFD);
- labels and hits are columns of their rows (attempts.label, crystals.hits),
  so they travel with them.

Then `verify` compares, per table, the counts and the keys: every key of the
source must be in the target. It refuses, before writing anything, a source
that is not a router store, a store or target made by newer code, and a
source table the target has no place for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sovereign.errors import ChecksFailed, SovereignError, UsageError
from sovereign.service.redact import redact, register_dsn
from sovereign.service.sql import (
    UNOWNED,
    Database,
    PostgresDatabase,
    StoreUnavailable,
    migrate,
    migrations_of,
    schema_version,
)

PACKAGE = "sovereign.router.store"
# SQLite's own bookkeeping and the migrations runner's: not the store's data.
NOT_DATA = frozenset({"schema_version", "sqlite_sequence"})
BATCH = 500
MISSING_SHOWN = 5

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in the source)


class NotARouterStore(UsageError):
    """The source file is not a router store this code can read."""


class NewerSchema(SovereignError):
    """A store made by newer code: this code does not know what its tables hold."""


@dataclass
class Table:
    name: str
    key: str  # the unique column the copy is idempotent on
    columns: list[str]  # what is copied, the key among them


@dataclass
class TableReport:
    table: str
    key: str
    source: int = 0  # rows in the source
    copied: int = 0  # rows this run wrote
    present: int = 0  # rows the target held already
    target: int = 0  # rows in the target after the copy
    missing: int = 0  # keys of the source not in the target
    missing_keys: list[str] = field(default_factory=list)  # the first few of them

    @property
    def complete(self) -> bool:
        return self.missing == 0 and self.target >= self.source


@dataclass
class CopyReport:
    source: str
    target: str
    source_version: int
    target_version: int
    tables: list[TableReport]

    @property
    def complete(self) -> bool:
        return all(t.complete for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "tables"}, "complete": self.complete,
                "tables": [{**asdict(t), "complete": t.complete} for t in self.tables]}

    def check(self) -> None:
        """Raise ChecksFailed naming every table the target lacks rows of."""
        short = [t for t in self.tables if not t.complete]
        if short:
            raise ChecksFailed(
                f"the copy of {self.source} into {self.target} is incomplete: "
                + "; ".join(f"{t.table}: {t.missing} of {t.source} rows missing (target holds {t.target})"
                            for t in short),
                details=[f"{t.table}.{t.key} missing: {', '.join(map(repr, t.missing_keys))}"
                         for t in short if t.missing_keys],
                hint="run the same command again: rows already copied are not copied twice")


class SqliteSource:
    """A router store's SQLite file, opened read-only (never created, never written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise NotARouterStore(f"{path}: no such file", hint="--from names the router's SQLite store "
                                  "(default <state>/router.sqlite3, or store.path)")
        try:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            self.tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master "
                                                           "WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise NotARouterStore(f"{path} is not a SQLite database ({exc})") from None
        if "schema_version" not in self.tables or "crystals" not in self.tables:
            raise NotARouterStore(f"{path} is not a router store (it has no "
                                  f"{'schema_version' if 'schema_version' not in self.tables else 'crystals'}"
                                  " table)", hint="--from names the router's SQLite store")
        self.version = self._version()

    def _version(self) -> int:
        """The router's schema version in the file: the rows of its package (and those from before
        versions were kept per package: the file is the router's alone)."""
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(schema_version)")}
        if "package" in cols:
            row = self.conn.execute("SELECT MAX(version) FROM schema_version WHERE package IN (?, ?)",
                                    (PACKAGE, UNOWNED)).fetchone()
        else:
            row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def table(self, name: str) -> Table:
        """The table's unique key (its primary key, else its one-column UNIQUE) and the columns
        to copy (all but an INTEGER PRIMARY KEY that is not the key: a row number)."""
        info = self.conn.execute(f'PRAGMA table_info("{name}")').fetchall()
        unique = []
        for _, index, is_unique, origin, _ in self.conn.execute(f'PRAGMA index_list("{name}")'):
            cols = [r[2] for r in self.conn.execute(f'PRAGMA index_info("{index}")')]
            if is_unique and origin in ("pk", "u") and len(cols) == 1:
                unique.append((origin != "pk", cols[0]))
        if not unique:
            raise NotARouterStore(f"{self.path}: table {name} has no one-column unique key to copy it by")
        key = min(unique)[1]
        rownum = [c[1] for c in info if c[5] == 1 and c[2].upper() == "INTEGER" and c[1] != key]
        return Table(name, key, [c[1] for c in info if c[1] not in rownum])

    def count(self, table: str) -> int:
        return int(self.conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])

    def batches(self, table: Table, columns: list[str], size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows (those columns), in the order they were written, `size` at a time."""
        last = -(2**63)
        cols = ", ".join(f'"{c}"' for c in columns)
        while True:
            rows = self.conn.execute(f'SELECT rowid, {cols} FROM "{table.name}" WHERE rowid > ? '
                                     "ORDER BY rowid LIMIT ?", (last, size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1:] for r in rows]

    def close(self) -> None:
        self.conn.close()


def _converter(db: Database, data_type: str) -> Callable[[Any], Any]:
    """A SQLite value as the target column of this type holds it."""
    if data_type in ("json", "jsonb"):
        return lambda v: v if v is None else db.json_in(json.loads(v) if isinstance(v, str | bytes) else v)
    if data_type == "boolean":
        return lambda v: v if v is None else bool(v)
    if data_type == "bytea":
        return lambda v: v if v is None else bytes(v)
    return db.text_in


class StoreCopy:
    """One copy of a SQLite store (read-only) into a Postgres database (the target)."""

    def __init__(self, source: SqliteSource, target: Database, *, batch: int = BATCH,
                 progress: Progress | None = None) -> None:
        self.source, self.target, self.batch = source, target, batch
        self.progress = progress or (lambda table, done, total: None)

    def prepare(self) -> tuple[int, list[Table]]:
        """Refuse what cannot be copied whole, then migrate the target; (its version, the tables)."""
        latest = migrations_of(PACKAGE, self.target.dialect)[-1][0]
        if self.source.version > latest:
            raise NewerSchema(f"{self.source.path}: its schema is version {self.source.version}, newer than "
                              f"this code's ({latest})", hint="copy it with the sovereign that made it")
        found = schema_version(self.target, PACKAGE)
        if found > latest:
            raise NewerSchema(f"{self.target.describe()}: its schema is version {found}, newer than this "
                              f"code's ({latest})", hint="copy with the sovereign that migrated the target")
        version = migrate(self.target, PACKAGE)
        tables = []
        for name in sorted(self.source.tables - NOT_DATA):
            table = self.source.table(name)
            types = self._target_types(name)
            if not types:
                raise NotARouterStore(f"{self.source.path}: table {name} is not a table of the router's "
                                      f"store (the target has no {name})")
            unknown = [c for c in table.columns if c not in types]
            if unknown:
                raise NotARouterStore(f"{self.source.path}: {name}.{', '.join(unknown)}: no such column in "
                                      "the target")
            tables.append(table)
        return version, tables

    def _target_types(self, table: str) -> dict[str, str]:
        sql = ("SELECT column_name, data_type FROM information_schema.columns "
               "WHERE table_schema = current_schema() AND table_name = ?")
        rows = self.target.execute(self.target.q(sql), (table,), fetch="all")
        return {r[0]: r[1] for r in rows}

    def _present(self, table: Table, keys: list[Any]) -> set[Any]:
        """Those of the keys (as the target holds them) that the target holds."""
        rows = self.target.execute(self.target.q(f'SELECT "{table.key}" FROM "{table.name}" '
                                                 f'WHERE "{table.key}" = ANY(?)'), (keys,), fetch="all")
        return {r[0] for r in rows}

    def copy_table(self, table: Table) -> TableReport:
        types = self._target_types(table.name)
        convert = [_converter(self.target, types[c]) for c in table.columns]
        at = table.columns.index(table.key)
        cols = ", ".join(f'"{c}"' for c in table.columns)
        insert = self.target.q(f'INSERT INTO "{table.name}" ({cols}) VALUES '
                               f'({", ".join("?" for _ in table.columns)}) '
                               f'ON CONFLICT ("{table.key}") DO NOTHING')
        report = TableReport(table.name, table.key, source=self.source.count(table.name))
        done = 0
        for rows in self.source.batches(table, table.columns, self.batch):
            values = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
            present = self._present(table, [v[at] for v in values])
            fresh = [v for v in values if v[at] not in present]
            if fresh:
                self.target.executemany(insert, fresh)
            report.copied += len(fresh)
            report.present += len(values) - len(fresh)
            done += len(rows)
            self.progress(table.name, done, report.source)
        return report

    def verify(self, table: Table, report: TableReport) -> None:
        """Counts, and every key of the source in the target."""
        to_key = _converter(self.target, "text")
        report.source = self.source.count(table.name)
        row = self.target.execute(f'SELECT COUNT(*) FROM "{table.name}"', fetch="one")
        report.target = int(row[0])
        report.missing, report.missing_keys = 0, []
        for rows in self.source.batches(table, [table.key], self.batch):
            keys = [to_key(r[0]) for r in rows]
            present = self._present(table, keys)
            gone = [k for k in keys if k not in present]
            report.missing += len(gone)
            report.missing_keys.extend(gone[:MISSING_SHOWN - len(report.missing_keys)])

    def run(self) -> CopyReport:
        version, tables = self.prepare()
        reports = []
        for table in tables:
            report = self.copy_table(table)
            self.verify(table, report)
            reports.append(report)
        return CopyReport(str(self.source.path), self.target.describe(), self.source.version, version,
                          reports)


def where(dsn: str) -> str:
    """host:port/database of a DSN (libpq form or URL), never its password."""
    from psycopg.conninfo import conninfo_to_dict

    register_dsn(dsn)
    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError: not a DSN at all
        raise UsageError(f"--to: not a Postgres DSN ({redact(str(exc)).strip()})",
                         hint="postgresql://USER:PASSWORD@HOST:5432/DB or "
                              "'host=HOST dbname=DB user=USER'") from None
    return (f"{parts.get('host') or 'the local socket'}:{parts.get('port') or 5432}"
            f"/{parts.get('dbname') or parts.get('user') or '?'}")


def open_target(dsn: str, connect_timeout_s: float = 5.0,
                statement_timeout_s: float = 60.0) -> PostgresDatabase:
    """The target Postgres; one that cannot be reached is a StoreUnavailable naming its host and port."""
    place = where(dsn)
    try:
        return PostgresDatabase(SecretStr(dsn), connect_timeout_s, statement_timeout_s=statement_timeout_s)
    except StoreUnavailable as exc:
        raise StoreUnavailable(f"cannot reach the target Postgres at {place}: {exc.message}",
                               hint="check the DSN (--to, else store.dsn) and that the server is "
                                    "up") from None


def copy_store(path: Path, target: Database, *, batch: int = BATCH,
               progress: Progress | None = None) -> CopyReport:
    """Copy the SQLite router store at `path` into `target` (Postgres) and compare them; the source is
    opened read-only. Raises NotARouterStore, NewerSchema, or the backend's StoreUnavailable and
    RecordRejected (a batch the target refused: the batches before it stay copied)."""
    source = SqliteSource(path)
    try:
        return StoreCopy(source, target, batch=batch, progress=progress).run()
    finally:
        source.close()
