"""The knowledge database: a Postgres connection in the `sovereign` schema,
migrated by the kit's runner, and the transactions its writers run under a
named advisory lock.

The connection's search_path is `sovereign` (set in the DSN's options, so a
reconnection keeps it): the runner's `schema_version` (keyed by package, so
other packages may record theirs in the same table) lives beside the tables,
where the writer role is granted SELECT on it.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

from pydantic import SecretStr

from sovereign.knowledge.settings import KnowledgeSettings
from sovereign.service.settings import ServiceConfigError
from sovereign.service.sql import PostgresDatabase, StoreUnavailable, migrate, migrations_of, schema_version

PACKAGE = "sovereign.knowledge"
SCHEMA = "sovereign"


def _conninfo(dsn: str) -> tuple[str, str]:
    """(the DSN with search_path=sovereign, `host H port P database D user U` to name it).
    A DSN that does not parse is a settings error that never echoes it."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(dsn)
    except ProgrammingError:
        raise ServiceConfigError("the knowledge DSN is not a valid Postgres connection string",
                                 hint="e.g. postgresql://USER@HOST:5432/DB or 'host=H dbname=D user=U' "
                                      "(--dsn, SOVEREIGN_KNOWLEDGE_DSN or `dsn:` in --config)") from None
    where = " ".join(f"{label} {parts[key]}" for key, label in
                     (("host", "host"), ("port", "port"), ("dbname", "database"), ("user", "user"))
                     if parts.get(key))
    options = f"{parts.get('options', '')} -c search_path={SCHEMA}".strip()
    return make_conninfo(dsn, options=options), where or "the default host"


class KnowledgeDB:
    """One connection to the knowledge database (safe to share between threads)."""

    def __init__(self, db: PostgresDatabase, where: str) -> None:
        self.db = db
        self.where = where

    @classmethod
    def connect(cls, dsn: SecretStr, *, connect_timeout_s: float = 3.0,
                statement_timeout_s: float = 10.0) -> KnowledgeDB:
        conninfo, where = _conninfo(dsn.get_secret_value())
        try:
            db = PostgresDatabase(SecretStr(conninfo), connect_timeout_s,
                                  statement_timeout_s=statement_timeout_s)
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"cannot reach the knowledge database at {where}: {exc.message}",
                                   hint=exc.hint) from None
        return cls(db, where)

    def run(self, sql: str, params: tuple[Any, ...] = (), fetch: Any = None) -> Any:
        return self.db.execute(sql, params, fetch=fetch)

    def migrate(self) -> int:
        """Bring the schema up to date; a writer (no DDL rights) finds it so and changes nothing."""
        latest = migrations_of(PACKAGE, "postgres")[-1][0]
        current = schema_version(self.db, PACKAGE)
        if current >= latest:
            return current
        self.run(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        return migrate(self.db, PACKAGE)

    def transaction(self, lock: str) -> contextlib.AbstractContextManager[None]:
        """The block in one transaction, under the advisory lock named `lock`
        (`pg_advisory_xact_lock`: released by the COMMIT or the ROLLBACK, or with
        the session if the connection drops)."""
        return self.db.transaction(lock_key=zlib.crc32(f"{PACKAGE}.{lock}".encode()))

    def close(self) -> None:
        self.db.close()


def open_knowledge(settings: KnowledgeSettings, *, migrate_schema: bool = True) -> KnowledgeDB:
    """The database of `settings`, migrated (unless `migrate_schema` is false)."""
    assert settings.dsn is not None  # knowledge_settings() requires it
    kdb = KnowledgeDB.connect(settings.dsn, connect_timeout_s=settings.connect_timeout_s,
                              statement_timeout_s=settings.statement_timeout_s)
    if migrate_schema:
        try:
            kdb.migrate()
        except BaseException:
            kdb.close()
            raise
    return kdb
