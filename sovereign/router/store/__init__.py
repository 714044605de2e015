"""Crystallization and the ledger: SQLite (embedded default) or Postgres (by DSN)."""

from __future__ import annotations

from sovereign.router.config import RouterSettings
from sovereign.router.store.base import (
    Attempt,
    AuditEntry,
    Crystal,
    CrystalSummary,
    Label,
    SqlStore,
    StoreUnavailable,
    exact_key,
    is_single_turn,
    normalise_text,
    numbers_of,
    system_key,
)

__all__ = ["Attempt", "AuditEntry", "Crystal", "CrystalSummary", "Label", "SqlStore", "StoreUnavailable",
           "exact_key", "is_single_turn", "normalise_text", "numbers_of", "open_store", "system_key"]


def open_store(settings: RouterSettings, migrate: bool = True) -> SqlStore:
    """The configured store, migrated to the latest schema."""
    store: SqlStore
    if settings.store.backend == "postgres":
        from sovereign.router.store.postgres import PostgresStore

        assert settings.store.dsn is not None
        store = PostgresStore(settings.store.dsn, settings.store.connect_timeout_s)
    else:
        from sovereign.router.store.sqlite import SqliteStore

        store = SqliteStore(settings.sqlite_path())
    if migrate:
        store.migrate()
    return store
