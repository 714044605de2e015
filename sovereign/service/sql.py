"""SQL backends (SQLite, Postgres) and the one migrations runner.

A backend is a connection guarded by a lock, with the few operations a
store needs: `execute` (optionally fetching one row or all), `executemany`
in one transaction, and `script` for a migration. Every failure is a
`StoreUnavailable` naming the backend, with any secret of the DSN redacted.

Migrations are numbered SQL files in a package's own folder,
`<package>/migrations/<dialect>/NNNN_name.sql`, applied in order above the
version recorded in the database's `schema_version` table, each in its own
transaction with its row (Postgres: under an advisory lock, so that two
processes starting together apply each file once). A service's store and the
phase ledger both migrate this way.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from sovereign.errors import ExitCode, SovereignError
from sovereign.service.redact import redact, register_dsn

log = logging.getLogger(__name__)

Fetch = Literal["one", "all"] | None
_MIGRATION = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")


class StoreUnavailable(SovereignError):
    """The store cannot be reached or refused the operation."""

    exit_code = ExitCode.STORE_UNAVAILABLE


class Database(ABC):
    """One connection to a SQL database, safe to share between threads."""

    backend = "?"
    ph = "?"
    dialect = "sqlite"

    def __init__(self) -> None:
        self.lock = threading.RLock()

    @abstractmethod
    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any: ...

    @abstractmethod
    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    @abstractmethod
    def script(self, sql: str, *, lock_key: int, version: int, name: str) -> None:
        """Run one migration and record it, in one transaction."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    def q(self, sql: str) -> str:
        """`?` placeholders in the backend's style."""
        return sql if self.ph == "?" else sql.replace("?", self.ph)

    def json_in(self, value: Any) -> Any:
        import json

        return json.dumps(value, ensure_ascii=False)

    def json_out(self, value: Any) -> Any:
        import json

        return json.loads(value) if isinstance(value, str | bytes) else value

    def bool_in(self, value: bool | None) -> Any:
        return value if value is None or self.dialect != "sqlite" else int(value)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode (the embedded default)."""

    backend = "sqlite"
    dialect = "sqlite"

    def __init__(self, path: Path, *, row_factory: Any = None) -> None:
        super().__init__()
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            if row_factory is not None:
                self._conn.row_factory = row_factory
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite database {path}: {exc}",
                                   hint="check the state directory's permissions and free space") from None

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any:
        with self.lock:
            try:
                cur = self._conn.execute(sql, params)
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return cur.lastrowid
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from None

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from None

    def script(self, sql: str, *, lock_key: int, version: int, name: str) -> None:
        with self.lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute("SELECT 1 FROM schema_version WHERE version = ?",
                                         (version,)).fetchone()
                if row is None:
                    for statement in _statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                                       (version, name, time.time()))
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite database {self.path}: migration {version:04d}_{name} "
                                       f"failed: {exc}") from None

    def close(self) -> None:
        with self.lock:
            self._conn.close()


def _statements(sql: str) -> list[str]:
    """A migration's statements (sqlite3 runs one at a time inside our transaction)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


class PostgresDatabase(Database):
    """Postgres by DSN: one connection, reconnected on the next call after a failure.
    JSON columns are JSONB."""

    backend = "postgres"
    ph = "%s"
    dialect = "postgres"

    def __init__(self, dsn: SecretStr, connect_timeout_s: float = 3.0) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a runtime dependency
            raise StoreUnavailable("the Postgres backend needs psycopg",
                                   hint="pip install 'psycopg[binary]'") from None
        self._psycopg = psycopg
        self._dsn = dsn
        register_dsn(dsn)
        self._timeout = max(1, round(connect_timeout_s))
        self._conn: Any = None
        self._connect()

    def describe(self) -> str:
        return f"postgres {redact(self._dsn.get_secret_value())}"

    def _connect(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = self._psycopg.connect(self._dsn.get_secret_value(), autocommit=True,
                                               connect_timeout=self._timeout)
        except self._psycopg.Error as exc:
            self._conn = None
            raise StoreUnavailable(f"cannot connect to Postgres: {redact(str(exc)).strip()}",
                                   hint="check the DSN and that the server is up") from None
        return self._conn

    def _fail(self, exc: Exception) -> StoreUnavailable:
        if isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            try:
                if self._conn is not None:
                    self._conn.close()
            finally:
                self._conn = None
        return StoreUnavailable(f"Postgres: {redact(str(exc)).strip()}")

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any:
        with self.lock:
            conn = self._connect()
            try:
                cur = conn.execute(sql, params)
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return None
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.lock:
            conn = self._connect()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows)
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def script(self, sql: str, *, lock_key: int, version: int, name: str) -> None:
        with self.lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute(f"SELECT pg_advisory_xact_lock({int(lock_key)})")
                    row = conn.execute("SELECT 1 FROM schema_version WHERE version = %s",
                                       (version,)).fetchone()
                    if row is None:
                        conn.execute(sql)
                        conn.execute("INSERT INTO schema_version VALUES (%s, %s, %s)",
                                     (version, name, time.time()))
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def json_in(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# --------------------------------------------------------------------------- migrations


def migrations_of(package: str, dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of `<package>/migrations/<dialect>/NNNN_name.sql`, in order.
    A file whose name is not of that form is an error, not silently skipped."""
    folder = resources.files(package) / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _MIGRATION.match(entry.name)
        if m is None:
            raise SovereignError(f"{package}: migration file {entry.name} is not named NNNN_name.sql")
        out.append((int(m.group(1)), m.group(2), entry.read_text()))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise SovereignError(f"{package}: two {dialect} migrations share a number: {versions}")
    return out


def schema_version(db: Database) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
               "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    row = db.execute("SELECT MAX(version) FROM schema_version", fetch="one")
    value = row[0] if row else None
    return int(value or 0)


def migrate(db: Database, package: str,
            adopt: Callable[[Database], int] | None = None) -> int:
    """Apply `package`'s migrations above the recorded version; return the version.

    `adopt` is for a database made before it had a `schema_version` table: it
    returns the version that database is already at (0 for a new one), and
    the runner records the files up to it as applied without running them."""
    lock_key = zlib.crc32(package.encode())
    with db.lock:
        current = schema_version(db)
        files = migrations_of(package, db.dialect)
        if current == 0 and adopt is not None:
            found = adopt(db)
            for version, name, _ in files:
                if version <= found:
                    db.execute(db.q("INSERT INTO schema_version VALUES (?, ?, ?)"),
                               (version, name, time.time()))
                    current = version
        for version, name, sql in files:
            if version > current:
                log.info("%s (%s): applying migration %04d_%s", package, db.backend, version, name)
                db.script(sql, lock_key=lock_key, version=version, name=name)
                current = version
        return current
