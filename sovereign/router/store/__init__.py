# ruff: noqa: S608  (column lists are module constants; every value is a bound parameter)
"""The router's store: every SQL statement of the router, over the kit's
SQLite (embedded default) or Postgres (by DSN) backend.

Three tables (see migrations/, applied by the kit's runner): `crystals`
(every cloud answer), `attempts` (one row per tier tried for a request) and
`egress_audit` (every decision of the egress gate), each naming its caller. Writes insert with ON
CONFLICT DO NOTHING on a client-made id, so the outbox may replay them twice.
Every text value is written through the backend's `text_in` and every JSON
value through its `json_in` (Postgres: a NUL byte becomes U+FFFD), so that a
prompt holding one is stored, not refused; what the store still refuses
(`RecordRejected`) is quarantined by the outbox. The outbox's record kinds are
declared here, beside their writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from sovereign.router.store.records import Attempt, AuditEntry, Crystal, CrystalHit, CrystalSummary, Label
from sovereign.service.outbox import RecordKind
from sovereign.service.sql import (
    Database,
    PostgresDatabase,
    RecordRejected,
    SqliteDatabase,
    StoreUnavailable,
    migrate,
)

if TYPE_CHECKING:
    from sovereign.router.config import RouterSettings

__all__ = ["KINDS", "Attempt", "AuditEntry", "Crystal", "CrystalHit", "CrystalSummary", "Label",
           "RecordRejected", "RouterStore", "StoreUnavailable", "open_store"]

CRYSTAL_COLS = list(Crystal.model_fields)
ATTEMPT_COLS = list(Attempt.model_fields)
AUDIT_COLS = list(AuditEntry.model_fields)
SUMMARY_COLS = ["id", "created_at", "domain", "provider", "model", "prompt", "answer", "hits", "tokens"]
SUMMARY_SQL = ("SELECT id, created_at, domain, provider, model, prompt, answer, hits, "
               "prompt_tokens + completion_tokens FROM crystals")
INDEX_COLS = ["id", "exact_key", "domain", "single_turn", "system_key", "prompt", "answer", "provider",
              "model", "created_at", "embedding", "embedder", "caller"]


class RouterStore:
    """Crystals, attempts and the egress audit in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def sqlite(cls, path: Path) -> RouterStore:
        return cls(SqliteDatabase(path))

    @classmethod
    def postgres(cls, dsn: SecretStr, connect_timeout_s: float = 3.0,
                 statement_timeout_s: float = 10.0) -> RouterStore:
        return cls(PostgresDatabase(dsn, connect_timeout_s, statement_timeout_s=statement_timeout_s))

    @property
    def backend(self) -> str:
        return self.db.backend

    def migrate(self) -> int:
        return migrate(self.db, __name__)

    def describe(self) -> str:
        return self.db.describe()

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        self.db.execute("SELECT 1", fetch="one")

    def _run(self, sql: str, params: tuple[Any, ...] = (), fetch: Any = None) -> Any:
        return self.db.execute(self.db.q(sql), params, fetch=fetch)

    def _storable(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """Every text value of a row as the backend can hold it."""
        return tuple(self.db.text_in(v) for v in row)

    # ---------------------------------------------------------------- crystals
    def _crystal_row(self, c: Crystal) -> tuple[Any, ...]:
        row = c.model_dump()
        row["messages"] = self.db.json_in(row["messages"])
        row["raw_response"] = self.db.json_in(row["raw_response"])
        row["single_turn"] = self.db.bool_in(row["single_turn"])
        return self._storable(tuple(row[k] for k in CRYSTAL_COLS))

    def put_crystal(self, c: Crystal) -> None:
        self.put_crystals([c])

    def put_crystals(self, crystals: list[Crystal]) -> None:
        if not crystals:
            return
        marks = ", ".join("?" for _ in CRYSTAL_COLS)
        sql = f"INSERT INTO crystals ({', '.join(CRYSTAL_COLS)}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
        self.db.executemany(self.db.q(sql), [self._crystal_row(c) for c in crystals])

    def _crystal(self, row: Any) -> Crystal:
        d = dict(zip(CRYSTAL_COLS, row, strict=True))
        d["messages"] = self.db.json_out(d["messages"])
        d["raw_response"] = self.db.json_out(d["raw_response"])
        d["single_turn"] = bool(d["single_turn"])
        if d["embedding"] is not None:
            d["embedding"] = bytes(d["embedding"])
        return Crystal.model_validate(d)

    def find_exact(self, key: str) -> Crystal | None:
        row = self._run(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE exact_key = ? "
                        "ORDER BY created_at DESC LIMIT 1", (key,), "one")
        return self._crystal(row) if row else None

    def get_crystal(self, ident: str) -> Crystal | None:
        """By id, or by a unique prefix of at least 6 characters."""
        row = self._run(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE id = ?", (ident,), "one")
        if row is None and len(ident) >= 6:
            rows = self._run(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE id LIKE ? LIMIT 2",
                             (ident + "%",), "all")
            row = rows[0] if len(rows) == 1 else None
        return self._crystal(row) if row else None

    def list_crystals(self, limit: int = 50, offset: int = 0,
                      domain: str | None = None) -> list[CrystalSummary]:
        where, params = ("WHERE domain = ?", (domain,)) if domain else ("", ())
        rows = self._run(f"{SUMMARY_SQL} {where} ORDER BY created_at DESC LIMIT ? OFFSET ?",
                         (*params, limit, offset), "all")
        return [CrystalSummary.model_validate(dict(zip(SUMMARY_COLS, r, strict=True))) for r in rows]

    def count_crystals(self) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM crystals", fetch="one")
        return int(row[0])

    def forget(self, ident: str) -> str | None:
        c = self.get_crystal(ident)
        if c is None:
            return None
        self._run("DELETE FROM crystals WHERE id = ?", (c.id,))
        return c.id

    def record_hits(self, hits: list[CrystalHit]) -> None:
        rows = [(h.at, h.id) for h in hits]
        if rows:
            sql = "UPDATE crystals SET hits = hits + 1, last_hit_at = ? WHERE id = ?"
            self.db.executemany(self.db.q(sql), rows)

    def index_rows(self) -> list[tuple[Crystal, bytes | None, str | None]]:
        """Every crystal without its messages and raw response (the semantic
        index's entries), with its embedding and embedder."""
        rows = self.db.execute(f"SELECT {', '.join(INDEX_COLS)} FROM crystals", fetch="all")
        out = []
        for r in rows:
            d = dict(zip(INDEX_COLS, r, strict=True))
            embedding, embedder = d.pop("embedding"), d.pop("embedder")
            d["single_turn"] = bool(d["single_turn"])
            out.append((Crystal(messages=[], raw_response={}, **d),
                        None if embedding is None else bytes(embedding), embedder))
        return out

    def iter_embeddings(self, embedder: str, batch: int = 5000) -> Iterator[tuple[str, str, str, str, bytes]]:
        """(id, domain, system_key, prompt, embedding) of single-turn crystals embedded by `embedder`."""
        last = ""
        while True:
            rows = self._run("SELECT id, domain, system_key, prompt, embedding FROM crystals "
                             "WHERE embedder = ? AND embedding IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
                             (embedder, last, batch), "all")
            if not rows:
                return
            for r in rows:
                if r[0] and bool(r[4]):
                    yield r[0], r[1], r[2], r[3], bytes(r[4])
            last = rows[-1][0]

    # ---------------------------------------------------------------- attempts
    def put_attempts(self, attempts: list[Attempt]) -> None:
        if not attempts:
            return
        cols = ["uid", *ATTEMPT_COLS]
        rows = []
        for a in attempts:
            d = a.model_dump()
            d["uid"] = a.uid
            d["features"] = self.db.json_in(d["features"])
            d["chunks"] = self.db.json_in(d["chunks"]) if d["chunks"] else None
            d["calibrated"] = self.db.bool_in(d["calibrated"])
            d["label"] = self.db.bool_in(d["label"])
            rows.append(self._storable(tuple(d[k] for k in cols)))
        marks = ", ".join("?" for _ in cols)
        self.db.executemany(self.db.q(f"INSERT INTO attempts ({', '.join(cols)}) VALUES ({marks}) "
                                      "ON CONFLICT (uid) DO NOTHING"), rows)

    def label_attempts(self, labels: list[Label]) -> None:
        rows = [self._storable((self.db.bool_in(lb.label), lb.source, f"{lb.request_id}:{lb.seq}"))
                for lb in labels]
        if rows:
            self.db.executemany(self.db.q("UPDATE attempts SET label = ?, label_source = ? WHERE uid = ?"),
                                rows)

    def attempts(self, request_id: str | None = None, limit: int = 100) -> list[Attempt]:
        where, params = ("WHERE request_id = ?", (request_id,)) if request_id else ("", ())
        rows = self._run(f"SELECT {', '.join(ATTEMPT_COLS)} FROM attempts {where} ORDER BY id DESC LIMIT ?",
                         (*params, limit), "all")
        out = []
        for r in rows:
            d = dict(zip(ATTEMPT_COLS, r, strict=True))
            d["features"] = self.db.json_out(d["features"]) or {}
            d["chunks"] = self.db.json_out(d["chunks"]) or []
            d["calibrated"] = bool(d["calibrated"])
            d["label"] = None if d["label"] is None else bool(d["label"])
            out.append(Attempt.model_validate(d))
        return out[::-1]

    def labelled(self) -> list[tuple[str, str, float, bool]]:
        rows = self.db.execute("SELECT tier, scorer, raw_score, label FROM attempts WHERE label IS NOT NULL "
                               "AND raw_score IS NOT NULL AND scorer IS NOT NULL AND scorer <> 'accept'",
                               fetch="all")
        return [(r[0], r[1], float(r[2]), bool(r[3])) for r in rows]

    # ---------------------------------------------------------------- egress audit
    def put_audit(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        rows = [self._storable(tuple(e.model_dump()[k] for k in AUDIT_COLS)) for e in entries]
        marks = ", ".join("?" for _ in AUDIT_COLS)
        self.db.executemany(self.db.q(f"INSERT INTO egress_audit ({', '.join(AUDIT_COLS)}) VALUES ({marks}) "
                                      "ON CONFLICT (uid) DO NOTHING"), rows)

    def audit(self, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        where, params = ("WHERE at >= ?", (since,)) if since is not None else ("", ())
        rows = self._run(f"SELECT {', '.join(AUDIT_COLS)} FROM egress_audit {where} ORDER BY id DESC LIMIT ?",
                         (*params, limit), "all")
        return [AuditEntry.model_validate(dict(zip(AUDIT_COLS, r, strict=True))) for r in rows][::-1]

    def egress_usage_since(self, since: float) -> tuple[int, int, float]:
        row = self._run("SELECT COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost_usd), 0) "
                        "FROM egress_audit WHERE decision = 'allow' AND at >= ?", (since,), "one")
        return int(row[0]), int(row[1]), float(row[2])

    def egress_usage_by_caller(self, since: float) -> dict[str, tuple[int, int, float]]:
        rows = self._run("SELECT caller, COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost_usd), 0) "
                         "FROM egress_audit WHERE decision = 'allow' AND at >= ? AND caller IS NOT NULL "
                         "GROUP BY caller", (since,), "all")
        return {r[0]: (int(r[1]), int(r[2]), float(r[3])) for r in rows}


# The outbox's record kinds: what a write that failed is kept as, and how it is replayed.
CRYSTALS: RecordKind[Crystal] = RecordKind("crystal", Crystal, lambda s, rs: s.put_crystals(rs))
ATTEMPTS: RecordKind[Attempt] = RecordKind("attempts", Attempt, lambda s, rs: s.put_attempts(rs))
LABELS: RecordKind[Label] = RecordKind("labels", Label, lambda s, rs: s.label_attempts(rs))
AUDIT: RecordKind[AuditEntry] = RecordKind("audit", AuditEntry, lambda s, rs: s.put_audit(rs))
HITS: RecordKind[CrystalHit] = RecordKind("hit", CrystalHit, lambda s, rs: s.record_hits(rs))
KINDS = (CRYSTALS, ATTEMPTS, LABELS, AUDIT, HITS)


def open_store(settings: RouterSettings, migrate: bool = True) -> RouterStore:
    """The configured store, migrated to the latest schema."""
    if settings.store.backend == "postgres":
        assert settings.store.dsn is not None
        store = RouterStore.postgres(settings.store.dsn, settings.store.connect_timeout_s,
                                     settings.store.statement_timeout_s)
    else:
        store = RouterStore.sqlite(settings.sqlite_path())
    if migrate:
        store.migrate()
    return store
