"""SQL backends (SQLite, Postgres) and the one migrations runner.

A backend is a connection guarded by a lock, with the few operations a
store needs: `execute` (optionally fetching one row or all), `executemany`
in one transaction, `transaction()` for several statements that commit or
roll back together, and `script` for a migration. A failure is one of two
errors, naming the backend, with any secret of the DSN redacted:

- `StoreUnavailable`: the store cannot be reached, did not answer in time,
  or is busy with a call that did not (retry later: the outbox keeps it);
- `RecordRejected`: the store refused these values (a NUL byte in a Postgres
  TEXT or JSONB value, a number out of range, a NOT NULL or CHECK
  violation): retrying cannot help, so the outbox quarantines the batch
  instead of queueing every later record behind it.

No call waits on the store without a bound: the lock is waited for at most
`lock_wait_s`; Postgres connects within `connect_timeout_s`, runs each
statement under `statement_timeout`, and a watchdog shuts the connection
down when a call outlives that by `grace_s` (a server that stopped answering
altogether, which cannot enforce its own timeout). `text_in` and `json_in`
make a value storable (Postgres: NUL bytes become U+FFFD).

`transaction()` holds the connection for its block: SQLite begins it
IMMEDIATE (the write lock first, so two writers cannot both read and then
collide); Postgres runs the block in pipeline mode, so statements whose rows
are not fetched do not wait for an answer (an append is two round trips:
BEGIN, lock and read; then insert and COMMIT), and `lock_key` takes a
`pg_advisory_xact_lock` released by the COMMIT or ROLLBACK. Each call inside
is bounded as any other; an error inside rolls back everything and is raised.

Migrations are numbered SQL files in a package's own folder,
`<package>/migrations/<dialect>/NNNN_name.sql`, applied in order above the
version the database's `schema_version` table records for that package
(its key is (package, version), so several packages share one database and
schema), each in its own transaction with its row (Postgres: under an
advisory lock, so that two processes starting together apply each file
once). A table from before versions were kept per package (no `package`
column) is converted in place, its rows kept as nobody's (package ''); a
package claims them when it has no rows of its own, every one of them names
one of its own files (number and name), and the tables its first migration
creates exist: the rows were written by the one package whose tables are
there. A service's store, the knowledge schema and the phase ledger all
migrate this way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from sovereign.errors import ExitCode, SovereignError
from sovereign.service.redact import redact, register_dsn

log = logging.getLogger(__name__)

Fetch = Literal["one", "all"] | None
_MIGRATION = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")
_CREATES = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)", re.IGNORECASE)
_CREATE = ("CREATE TABLE {table} (package TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, "
           "applied_at REAL NOT NULL, PRIMARY KEY (package, version))")
_APPLIED = "SELECT 1 FROM schema_version WHERE package = ? AND version = ?"
_RECORD = "INSERT INTO schema_version (package, version, name, applied_at) VALUES (?, ?, ?, ?)"
UNOWNED = ""  # the package of rows from before versions were kept per package, until one claims them
_TABLE_LOCK = zlib.crc32(b"sovereign.service.sql.schema_version")


class StoreUnavailable(SovereignError):
    """The store cannot be reached, did not answer in time, or is busy: retry later."""

    exit_code = ExitCode.STORE_UNAVAILABLE


class RecordRejected(SovereignError):
    """The store refused the values of this call (a data or integrity error):
    retrying the same values cannot succeed."""

    exit_code = ExitCode.STORE_UNAVAILABLE


NUL_REPLACEMENT = "\ufffd"


class Database(ABC):
    """One connection to a SQL database, safe to share between threads."""

    backend = "?"
    ph = "?"
    dialect = "sqlite"

    def __init__(self, lock_wait_s: float = 30.0) -> None:
        self.lock = threading.RLock()
        self.lock_wait_s = lock_wait_s

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The connection's lock, waited for at most `lock_wait_s`."""
        if not self.lock.acquire(timeout=self.lock_wait_s):
            raise StoreUnavailable(f"{self.describe()}: busy for over {self.lock_wait_s:g}s with a call "
                                   "that has not returned")
        try:
            yield
        finally:
            self.lock.release()

    @abstractmethod
    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any: ...

    @abstractmethod
    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    @abstractmethod
    def transaction(self, lock_key: int | None = None) -> contextlib.AbstractContextManager[None]:
        """BEGIN ... COMMIT around the block, ROLLBACK if it raises (Postgres: with
        `pg_advisory_xact_lock(lock_key)` first when given)."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The column names of `table` (empty when there is no such table)."""

    @abstractmethod
    def script(self, sql: str, *, lock_key: int, package: str, version: int, name: str) -> None:
        """Run one migration of `package` and record it, in one transaction."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    def q(self, sql: str) -> str:
        """`?` placeholders in the backend's style."""
        return sql if self.ph == "?" else sql.replace("?", self.ph)

    def text_in(self, value: Any) -> Any:
        """A text value as this backend can hold it (SQLite: as it is)."""
        return value

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

    def __init__(self, path: Path, *, row_factory: Any = None, lock_wait_s: float = 30.0) -> None:
        super().__init__(lock_wait_s)
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

    def _fail(self, exc: Exception) -> SovereignError:
        # A constraint, a value SQLite cannot bind (an integer over 64 bits) or a
        # data error is this record's fault; anything else is the database's.
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError
                      | OverflowError):
            return RecordRejected(f"SQLite database {self.path} rejected the record: {exc}")
        return StoreUnavailable(f"SQLite database {self.path}: {exc}")

    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any:
        with self._held():
            try:
                cur = self._conn.execute(sql, params)
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return cur.lastrowid
            except (sqlite3.Error, OverflowError) as exc:
                raise self._fail(exc) from None

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.transaction():
            try:
                self._conn.executemany(sql, rows)
            except (sqlite3.Error, OverflowError) as exc:
                raise self._fail(exc) from None

    @contextlib.contextmanager
    def transaction(self, lock_key: int | None = None) -> Iterator[None]:
        """BEGIN IMMEDIATE (the database's write lock, waited for as long as the
        connection's busy timeout); inside a transaction already, the block is
        part of it. `lock_key` is for Postgres: the write lock covers it here."""
        with self._held():
            if self._conn.in_transaction:
                yield
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise self._fail(exc) from None

    def columns(self, table: str) -> set[str]:
        name = table.rpartition(".")[2]
        return {row[1] for row in self.execute(f"PRAGMA table_info({name})", fetch="all")}

    def script(self, sql: str, *, lock_key: int, package: str, version: int, name: str) -> None:
        try:
            with self.transaction():
                if self._conn.execute(_APPLIED, (package, version)).fetchone() is None:
                    for statement in _statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute(_RECORD, (package, version, name, time.time()))
        except (sqlite3.Error, SovereignError) as exc:
            message = exc.message if isinstance(exc, SovereignError) else str(exc)
            raise StoreUnavailable(f"SQLite database {self.path}: migration {package} {version:04d}_{name} "
                                   f"failed: {message}") from None

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
    JSON columns are JSONB.

    Bounded: the connection within `connect_timeout_s`, each statement under
    the server's `statement_timeout`, and a watchdog thread that shuts the
    connection's socket down when a call is still waiting `grace_s` after
    that (a stopped or frozen server answers nothing, not even its timeout):
    the call then fails as StoreUnavailable and the next one reconnects."""

    backend = "postgres"
    ph = "%s"
    dialect = "postgres"

    def __init__(self, dsn: SecretStr, connect_timeout_s: float = 3.0, *, statement_timeout_s: float = 10.0,
                 lock_wait_s: float = 2.0, grace_s: float = 2.0) -> None:
        super().__init__(lock_wait_s)
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a runtime dependency
            raise StoreUnavailable("the Postgres backend needs psycopg",
                                   hint="pip install 'psycopg[binary]'") from None
        self._psycopg = psycopg
        self._dsn = dsn
        register_dsn(dsn)
        self._timeout = max(1, round(connect_timeout_s))
        self.statement_timeout_s = statement_timeout_s
        self.grace_s = grace_s
        self._conn: Any = None
        self._deadline: float | None = None
        self._tripped = False
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="postgres-watchdog", daemon=True).start()
        with self._held(), self._bounded():
            self._connect()

    def describe(self) -> str:
        return f"postgres {redact(self._dsn.get_secret_value())}"

    # ------------------------------------------------------------ bounds
    @contextlib.contextmanager
    def _bounded(self, seconds: float | None = None) -> Iterator[None]:
        """Arm the watchdog for one call (the lock is held)."""
        self._tripped = False
        self._deadline = time.monotonic() + (seconds or (self._timeout + self.statement_timeout_s
                                                         + self.grace_s))
        try:
            yield
        finally:
            self._deadline = None

    def _watch(self) -> None:
        while not self._closed.wait(0.2):
            deadline, conn = self._deadline, self._conn
            if deadline is None or conn is None or time.monotonic() < deadline:
                continue
            self._deadline = None
            self._tripped = True
            log.warning("postgres: a call outlived its deadline; shutting the connection down")
            with contextlib.suppress(Exception):
                fd = os.dup(conn.fileno())
                with socket.socket(fileno=fd) as sock:
                    sock.shutdown(socket.SHUT_RDWR)

    def _connect(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = self._psycopg.connect(self._dsn.get_secret_value(), autocommit=True,
                                               connect_timeout=self._timeout)
            self._conn.execute(f"SET statement_timeout = {int(self.statement_timeout_s * 1000)}")
        except self._psycopg.Error as exc:
            self._drop()
            raise StoreUnavailable(f"cannot connect to Postgres: {redact(str(exc)).strip()}",
                                   hint="check the DSN and that the server is up") from None
        return self._conn

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: S110 - a broken connection is dropped either way
            pass
        finally:
            self._conn = None

    def _fail(self, exc: Exception) -> SovereignError:
        errors = self._psycopg.errors
        if self._tripped:
            self._drop()
            return StoreUnavailable(f"Postgres did not answer within "
                                    f"{self.statement_timeout_s + self.grace_s:g}s")
        if isinstance(exc, self._psycopg.DataError | self._psycopg.IntegrityError
                      | errors.CharacterNotInRepertoire | errors.UntranslatableCharacter):
            return RecordRejected(f"Postgres rejected the record: {redact(str(exc)).strip()}")
        if isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            self._drop()
        return StoreUnavailable(f"Postgres: {redact(str(exc)).strip()}")

    # ------------------------------------------------------------ calls
    def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: Fetch = None) -> Any:
        with self._held(), self._bounded():
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
        with self._held(), self._bounded():
            conn = self._connect()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows)
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    @contextlib.contextmanager
    def transaction(self, lock_key: int | None = None) -> Iterator[None]:
        """The block in one transaction, in pipeline mode: a statement whose rows
        are not fetched is sent without waiting, so its error may surface at a
        later fetch or at the COMMIT; either way the whole block rolls back. Each
        round trip is bounded (the lock wait, statement_timeout, the watchdog)."""
        with self._held():
            stack = contextlib.ExitStack()
            with self._bounded():
                conn = self._connect()
                try:
                    stack.enter_context(conn.pipeline())
                    stack.enter_context(conn.transaction())
                    if lock_key is not None:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (int(lock_key),))
                except self._psycopg.Error as exc:
                    self._end(stack, exc)
                    raise self._fail(exc) from None
            try:
                yield
            except BaseException as exc:
                self._end(stack, exc)
                raise
            try:
                with self._bounded():
                    stack.close()  # COMMIT, and the answers of what was sent without waiting
            except self._psycopg.Error as exc:
                self._end(stack, exc)
                raise self._fail(exc) from None

    def _end(self, stack: contextlib.ExitStack, exc: BaseException) -> None:
        """Roll back after `exc`; a connection too broken for that is dropped
        (the server rolls back what it had)."""
        try:
            with self._bounded():
                stack.__exit__(type(exc), exc, exc.__traceback__)
        except Exception:  # the first error is the one raised
            self._drop()

    def columns(self, table: str) -> set[str]:
        """`table` may name its schema (`schema.table`); otherwise the current schema's."""
        schema, _, name = table.rpartition(".")
        rows = self.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                            "AND table_schema = coalesce(nullif(%s, ''), current_schema())",
                            (name, schema), fetch="all")
        return {r[0] for r in rows}

    def script(self, sql: str, *, lock_key: int, package: str, version: int, name: str) -> None:
        # A migration may wait for another process's advisory lock: a longer bound.
        with self._held(), self._bounded(max(60.0, 3 * self.statement_timeout_s)):
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL statement_timeout = 0")
                    conn.execute(f"SELECT pg_advisory_xact_lock({int(lock_key)})")
                    if conn.execute(self.q(_APPLIED), (package, version)).fetchone() is None:
                        conn.execute(sql)
                        conn.execute(self.q(_RECORD), (package, version, name, time.time()))
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def text_in(self, value: Any) -> Any:
        """Postgres TEXT cannot hold a NUL byte: it becomes U+FFFD."""
        return value.replace("\x00", NUL_REPLACEMENT) if isinstance(value, str) else value

    def json_in(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(_without_nul(value))

    def close(self) -> None:
        self._closed.set()
        with self.lock:
            self._drop()


def _without_nul(value: Any) -> Any:
    """A JSON value whose strings (keys too) hold no NUL byte (JSONB refuses \\u0000)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


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


def schema_version(db: Database, package: str | None = None) -> int:
    """The version recorded for `package` (without one: the highest of any), 0
    when none is; reads only (a table of the old form counts as none)."""
    cols = db.columns("schema_version")
    if "package" not in cols:
        return 0
    if package is None:
        row = db.execute("SELECT MAX(version) FROM schema_version", fetch="one")
    else:
        row = db.execute(db.q("SELECT MAX(version) FROM schema_version WHERE package = ?"), (package,),
                         fetch="one")
    return int(row[0] or 0) if row else 0


def _prepare(db: Database, package: str, files: list[tuple[int, str, str]]) -> None:
    """The table in its per-package form (made, or converted from the old form
    with its rows kept as nobody's), and those rows claimed if they are
    `package`'s; under the runner's own lock (Postgres), in one transaction."""
    with db.transaction(lock_key=_TABLE_LOCK):
        cols = db.columns("schema_version")
        if not cols:
            db.execute(_CREATE.format(table="schema_version"))
        elif "package" not in cols:
            _convert(db)
        if db.execute(db.q("SELECT 1 FROM schema_version WHERE package = ? LIMIT 1"), (package,),
                      fetch="one"):
            return
        unowned = db.execute(db.q("SELECT version, name FROM schema_version WHERE package = ?"), (UNOWNED,),
                             fetch="all")
        if unowned and _owns(db, files, {(int(v), n) for v, n in unowned}):
            log.info("%s: %s claims the versions recorded before they were kept per package",
                     db.describe(), package)
            db.execute(db.q("UPDATE schema_version SET package = ? WHERE package = ?"), (package, UNOWNED))


def _convert(db: Database) -> None:
    """An old `schema_version` (keyed by version) keyed by (package, version),
    its rows nobody's. Postgres alters it in place, keeping its grants (the
    key is the `schema_version_pkey` the old runner made); SQLite, which cannot
    change a key, copies it into a new table."""
    log.info("%s: keeping schema_version per package", db.describe())
    if db.dialect == "postgres":
        db.execute(f"ALTER TABLE schema_version ADD COLUMN package TEXT NOT NULL DEFAULT '{UNOWNED}'")
        db.execute("ALTER TABLE schema_version DROP CONSTRAINT schema_version_pkey, "
                   "ADD PRIMARY KEY (package, version), ALTER COLUMN package DROP DEFAULT")
        return
    db.execute(_CREATE.format(table="schema_version_new"))
    db.execute(db.q("INSERT INTO schema_version_new SELECT ?, version, name, applied_at FROM schema_version"),
               (UNOWNED,))
    db.execute("DROP TABLE schema_version")
    db.execute("ALTER TABLE schema_version_new RENAME TO schema_version")


def _owns(db: Database, files: list[tuple[int, str, str]], rows: set[tuple[int, str]]) -> bool:
    """Whether `rows` (version, name) of an old table are those of the package
    of `files`: each names one of its files, and its first file's tables exist."""
    if not files or not rows <= {(v, n) for v, n, _ in files}:
        return False
    tables = _CREATES.findall(files[0][2])
    return bool(tables) and all(db.columns(t) for t in tables)


def migrate(db: Database, package: str,
            adopt: Callable[[Database], int] | None = None) -> int:
    """Apply `package`'s migrations above the version recorded for it; return
    the version.

    `adopt` is for a database made before it had a `schema_version` table: it
    returns the version that database is already at (0 for a new one), and
    the runner records the files up to it as applied without running them."""
    lock_key = zlib.crc32(package.encode())
    with db.lock:
        files = migrations_of(package, db.dialect)
        _prepare(db, package, files)
        current = schema_version(db, package)
        if current == 0 and adopt is not None:
            found = adopt(db)
            for version, name, _ in files:
                if version <= found:
                    db.execute(db.q(_RECORD), (package, version, name, time.time()))
                    current = version
        for version, name, sql in files:
            if version > current:
                log.info("%s (%s): applying migration %04d_%s", package, db.backend, version, name)
                db.script(sql, lock_key=lock_key, package=package, version=version, name=name)
                current = version
        return current
