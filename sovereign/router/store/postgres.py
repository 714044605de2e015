"""The Postgres store, selected by a DSN (`store.backend: postgres`, `store.dsn`).

One connection guarded by a lock (the router's writes are small and brief;
reads are an indexed lookup), reconnected on the next call after a failure.
JSON columns are JSONB; embeddings are BYTEA (float32, little-endian).
Migrations run under an advisory lock, so two routers starting together apply
each file once.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import SecretStr

from sovereign.router.redact import redact, register_dsn
from sovereign.router.store.base import SqlStore, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x50BE7E16  # pg_advisory_xact_lock key of the router's migrations


class PostgresStore(SqlStore):
    backend = "postgres"
    ph = "%s"
    dialect = "postgres"

    def __init__(self, dsn: SecretStr, connect_timeout_s: float = 3.0) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a dependency
            raise StoreUnavailable("the Postgres store needs psycopg",
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
            raise StoreUnavailable(f"cannot connect to the Postgres store: {redact(str(exc)).strip()}",
                                   hint="check store.dsn and that the server is up") from None
        return self._conn

    def _fail(self, exc: Exception) -> StoreUnavailable:
        if isinstance(exc, self._psycopg.OperationalError | self._psycopg.InterfaceError):
            try:
                if self._conn is not None:
                    self._conn.close()
            finally:
                self._conn = None
        return StoreUnavailable(f"Postgres store: {redact(str(exc)).strip()}")

    def _execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: str | None = None) -> Any:
        with self._lock:
            conn = self._connect()
            try:
                cur = conn.execute(sql, self._adapt(params))
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return None
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            conn = self._connect()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, [self._adapt(r) for r in rows])
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def _script(self, sql: str, version: int) -> None:
        with self._lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                    row = conn.execute("SELECT 1 FROM schema_version WHERE version = %s",
                                       (version,)).fetchone()
                    if row is None:
                        conn.execute(sql)
            except self._psycopg.Error as exc:
                raise self._fail(exc) from None

    def _adapt(self, params: tuple[Any, ...]) -> tuple[Any, ...]:
        return params

    def _json_in(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
