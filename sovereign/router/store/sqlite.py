"""The embedded default store: one SQLite file under the state directory (WAL mode)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from sovereign.router.store.base import SqlStore, StoreUnavailable

log = logging.getLogger(__name__)


class SqliteStore(SqlStore):
    backend = "sqlite"
    ph = "?"
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite store {path}: {exc}",
                                   hint="check the state directory's permissions and free space") from None

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def _execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: str | None = None) -> Any:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                if fetch == "one":
                    return cur.fetchone()
                if fetch == "all":
                    return cur.fetchall()
                return None
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def _script(self, sql: str, version: int) -> None:
        with self._lock:
            try:
                self._conn.executescript(f"BEGIN;\n{sql}\nCOMMIT;")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreUnavailable(f"SQLite store {self.path}: migration {version:04d} failed: "
                                       f"{exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
