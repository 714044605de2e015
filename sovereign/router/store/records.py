# ruff: noqa: S608  (column lists are module constants; every value is a bound parameter)
"""The store's records and the SQL both backends share.

Three tables (see migrations/): `crystals` (every cloud answer, with the
messages, token counts, model and raw response), `attempts` (the ledger: one
row per tier tried for a request) and `egress_audit` (every decision of the
egress gate). Writes carry a client-made unique id (`uid` / crystal `id`) and
insert with ON CONFLICT DO NOTHING, so replaying the spool twice is harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from importlib import resources
from typing import Any

from pydantic import BaseModel

from sovereign.errors import ExitCode, SovereignError

log = logging.getLogger(__name__)


class StoreUnavailable(SovereignError):
    """The store cannot be reached or refused the operation."""

    exit_code = ExitCode.UNREACHABLE


# --------------------------------------------------------------------------- keys


def normalise_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the exact-match normal form."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def exact_key(messages: list[dict[str, str]]) -> str:
    norm = [[m["role"], normalise_text(m["content"])] for m in messages]
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode()).hexdigest()


def system_key(messages: list[dict[str, str]]) -> str:
    system = "\n".join(normalise_text(m["content"]) for m in messages if m["role"] == "system")
    return hashlib.sha256(system.encode()).hexdigest()[:16] if system else ""


def is_single_turn(messages: list[dict[str, str]]) -> bool:
    """One user message and no assistant turn (system messages allowed)."""
    roles = [m["role"] for m in messages if m["role"] != "system"]
    return roles == ["user"]


_NUM = re.compile(r"\d+(?:[.,]\d+)?")


def numbers_of(text: str) -> tuple[str, ...]:
    """The numbers in a prompt: a semantic match must carry the same ones
    ("2+2" and "2+3" embed within 0.89 of each other)."""
    return tuple(sorted(_NUM.findall(text)))


# --------------------------------------------------------------------------- records


class Crystal(BaseModel):
    id: str
    created_at: float
    exact_key: str
    domain: str
    single_turn: bool
    system_key: str
    prompt: str
    messages: list[dict[str, Any]]
    answer: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    raw_response: dict[str, Any]
    embedding: bytes | None = None
    embedder: str | None = None
    request_id: str | None = None
    hits: int = 0
    last_hit_at: float | None = None


class CrystalSummary(BaseModel):
    id: str
    created_at: float
    domain: str
    provider: str
    model: str
    prompt: str
    answer: str
    hits: int
    tokens: int


class Attempt(BaseModel):
    request_id: str
    seq: int
    at: float
    tier: str
    model: str | None = None
    kind: str | None = None
    scorer: str | None = None
    raw_score: float | None = None
    score: float | None = None
    calibrated: bool = False
    threshold: float | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    decision: str
    reason: str = ""
    answer: str | None = None
    domain: str | None = None
    cls: str | None = None
    label: bool | None = None
    label_source: str | None = None
    features: dict[str, Any] = {}

    @property
    def uid(self) -> str:
        return f"{self.request_id}:{self.seq}"


class AuditEntry(BaseModel):
    uid: str
    at: float
    request_id: str | None
    provider: str
    domain: str | None
    decision: str
    reason: str
    tokens: int = 0
    cost_usd: float = 0.0


class Label(BaseModel):
    request_id: str
    seq: int
    label: bool
    source: str


CRYSTAL_COLS = list(Crystal.model_fields)
ATTEMPT_COLS = [c for c in Attempt.model_fields]
AUDIT_COLS = list(AuditEntry.model_fields)
SUMMARY_SQL = ("SELECT id, created_at, domain, provider, model, prompt, answer, hits, "
               "prompt_tokens + completion_tokens FROM crystals")


class SqlStore(ABC):
    """Shared logic; a backend supplies the connection, placeholders and JSON handling."""

    backend = "?"
    ph = "?"
    dialect = "sqlite"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- backend hooks
    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: str | None = None) -> Any: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    @abstractmethod
    def _script(self, sql: str, version: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    def _json_in(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    def _bool_in(self, value: bool | None) -> Any:
        return None if value is None else int(value)

    def _q(self, sql: str) -> str:
        return sql if self.ph == "?" else sql.replace("?", self.ph)

    # ---------------------------------------------------------------- migrations
    def migrations(self) -> list[tuple[int, str, str]]:
        folder = resources.files("sovereign.router.store") / "migrations" / self.dialect
        out = []
        for entry in folder.iterdir():
            m = re.match(r"^(\d{4})_(.+)\.sql$", entry.name)
            if m:
                out.append((int(m.group(1)), m.group(2), entry.read_text()))
        return sorted(out)

    def schema_version(self) -> int:
        self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                      "name TEXT NOT NULL, applied_at REAL NOT NULL)")
        row = self._execute("SELECT MAX(version) FROM schema_version", fetch="one")
        return int(row[0] or 0) if row else 0

    def migrate(self) -> int:
        """Apply the numbered SQL files above the recorded version; return the version."""
        with self._lock:
            current = self.schema_version()
            for version, name, sql in self.migrations():
                if version > current:
                    log.info("store %s: applying migration %04d_%s", self.backend, version, name)
                    self._script(sql + f"\n;INSERT INTO schema_version VALUES ({version}, '{name}', "
                                 f"{time.time()});", version)
                    current = version
            return current

    # ---------------------------------------------------------------- crystals
    def put_crystal(self, c: Crystal) -> None:
        row = c.model_dump()
        row["messages"] = self._json_in(row["messages"])
        row["raw_response"] = self._json_in(row["raw_response"])
        if self.dialect == "sqlite":
            row["single_turn"] = self._bool_in(row["single_turn"])
        cols = ", ".join(CRYSTAL_COLS)
        marks = ", ".join("?" for _ in CRYSTAL_COLS)
        self._execute(self._q(f"INSERT INTO crystals ({cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"),
                      tuple(row[k] for k in CRYSTAL_COLS))

    def put_crystals(self, crystals: list[Crystal]) -> None:
        rows = []
        for c in crystals:
            row = c.model_dump()
            row["messages"] = self._json_in(row["messages"])
            row["raw_response"] = self._json_in(row["raw_response"])
            if self.dialect == "sqlite":
                row["single_turn"] = int(row["single_turn"])
            rows.append(tuple(row[k] for k in CRYSTAL_COLS))
        cols = ", ".join(CRYSTAL_COLS)
        marks = ", ".join("?" for _ in CRYSTAL_COLS)
        self._executemany(self._q(f"INSERT INTO crystals ({cols}) VALUES ({marks}) "
                                  "ON CONFLICT (id) DO NOTHING"), rows)

    def _crystal(self, row: Any) -> Crystal:
        d = dict(zip(CRYSTAL_COLS, row, strict=True))
        d["messages"] = self._json_out(d["messages"])
        d["raw_response"] = self._json_out(d["raw_response"])
        d["single_turn"] = bool(d["single_turn"])
        if d["embedding"] is not None:
            d["embedding"] = bytes(d["embedding"])
        return Crystal.model_validate(d)

    def find_exact(self, key: str) -> Crystal | None:
        row = self._execute(self._q(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE exact_key = ? "
                                    "ORDER BY created_at DESC LIMIT 1"), (key,), fetch="one")
        return self._crystal(row) if row else None

    def get_crystal(self, ident: str) -> Crystal | None:
        """By id, or by a unique prefix of at least 6 characters."""
        row = self._execute(self._q(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE id = ?"),
                            (ident,), fetch="one")
        if row is None and len(ident) >= 6:
            rows = self._execute(self._q(f"SELECT {', '.join(CRYSTAL_COLS)} FROM crystals WHERE id LIKE ? "
                                         "LIMIT 2"), (ident + "%",), fetch="all")
            row = rows[0] if len(rows) == 1 else None
        return self._crystal(row) if row else None

    def list_crystals(self, limit: int = 50, offset: int = 0,
                      domain: str | None = None) -> list[CrystalSummary]:
        where, params = ("WHERE domain = ?", (domain,)) if domain else ("", ())
        rows = self._execute(self._q(f"{SUMMARY_SQL} {where} ORDER BY created_at DESC LIMIT ? OFFSET ?"),
                             (*params, limit, offset), fetch="all")
        keys = ["id", "created_at", "domain", "provider", "model", "prompt", "answer", "hits", "tokens"]
        return [CrystalSummary.model_validate(dict(zip(keys, r, strict=True))) for r in rows]

    def count_crystals(self) -> int:
        row = self._execute("SELECT COUNT(*) FROM crystals", fetch="one")
        return int(row[0])

    def forget(self, ident: str) -> str | None:
        c = self.get_crystal(ident)
        if c is None:
            return None
        self._execute(self._q("DELETE FROM crystals WHERE id = ?"), (c.id,))
        return c.id

    def record_hit(self, ident: str, at: float) -> None:
        self._execute(self._q("UPDATE crystals SET hits = hits + 1, last_hit_at = ? WHERE id = ?"), (at,
                                                                                                     ident))

    def iter_embeddings(self, embedder: str, batch: int = 5000) -> Iterator[tuple[str, str, str, str, bytes]]:
        """(id, domain, system_key, prompt, embedding) of single-turn crystals embedded by `embedder`."""
        last = ""
        while True:
            rows = self._execute(self._q(
                "SELECT id, domain, system_key, prompt, embedding FROM crystals WHERE embedder = ? "
                "AND embedding IS NOT NULL AND id > ? ORDER BY id LIMIT ?"), (embedder, last,
                                                                              batch), fetch="all")
            if not rows:
                return
            for r in rows:
                if r[0] and bool(r[4]):
                    yield r[0], r[1], r[2], r[3], bytes(r[4])
            last = rows[-1][0]

    # ---------------------------------------------------------------- ledger
    def put_attempts(self, attempts: list[Attempt]) -> None:
        if not attempts:
            return
        cols = ["uid", *ATTEMPT_COLS]
        rows = []
        for a in attempts:
            d = a.model_dump()
            d["uid"] = a.uid
            d["features"] = self._json_in(d["features"])
            if self.dialect == "sqlite":
                d["calibrated"] = int(d["calibrated"])
                d["label"] = self._bool_in(d["label"])
            rows.append(tuple(d[k] for k in cols))
        marks = ", ".join("?" for _ in cols)
        self._executemany(self._q(f"INSERT INTO attempts ({', '.join(cols)}) VALUES ({marks}) "
                                  "ON CONFLICT (uid) DO NOTHING"), rows)

    def label_attempts(self, labels: list[Label]) -> None:
        rows = [(lb.label if self.dialect != "sqlite" else int(lb.label), lb.source,
                 f"{lb.request_id}:{lb.seq}")
                for lb in labels]
        if rows:
            self._executemany(self._q("UPDATE attempts SET label = ?, label_source = ? WHERE uid = ?"), rows)

    def attempts(self, request_id: str | None = None, limit: int = 100) -> list[Attempt]:
        where, params = ("WHERE request_id = ?", (request_id,)) if request_id else ("", ())
        rows = self._execute(self._q(f"SELECT {', '.join(ATTEMPT_COLS)} FROM attempts {where} "
                                     "ORDER BY id DESC LIMIT ?"), (*params, limit), fetch="all")
        out = []
        for r in rows:
            d = dict(zip(ATTEMPT_COLS, r, strict=True))
            d["features"] = self._json_out(d["features"]) or {}
            d["calibrated"] = bool(d["calibrated"])
            d["label"] = None if d["label"] is None else bool(d["label"])
            out.append(Attempt.model_validate(d))
        return out[::-1]

    def labelled(self) -> list[tuple[str, str, float, bool]]:
        rows = self._execute("SELECT tier, scorer, raw_score, label FROM attempts WHERE label IS NOT NULL "
                             "AND raw_score IS NOT NULL AND scorer IS NOT NULL AND scorer <> 'accept'",
                             fetch="all")
        return [(r[0], r[1], float(r[2]), bool(r[3])) for r in rows]

    # ---------------------------------------------------------------- egress audit
    def put_audit(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        rows = [tuple(e.model_dump()[k] for k in AUDIT_COLS) for e in entries]
        marks = ", ".join("?" for _ in AUDIT_COLS)
        self._executemany(self._q(f"INSERT INTO egress_audit ({', '.join(AUDIT_COLS)}) VALUES ({marks}) "
                                  "ON CONFLICT (uid) DO NOTHING"), rows)

    def audit(self, limit: int = 100, since: float | None = None) -> list[AuditEntry]:
        where, params = ("WHERE at >= ?", (since,)) if since is not None else ("", ())
        rows = self._execute(self._q(f"SELECT {', '.join(AUDIT_COLS)} FROM egress_audit {where} "
                                     "ORDER BY id DESC LIMIT ?"), (*params, limit), fetch="all")
        return [AuditEntry.model_validate(dict(zip(AUDIT_COLS, r, strict=True))) for r in rows][::-1]

    def egress_usage_since(self, since: float) -> tuple[int, int, float]:
        row = self._execute(self._q("SELECT COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost_usd), 0) "
                                    "FROM egress_audit WHERE decision = 'allow' AND at >= ?"), (since,),
                                    fetch="one")
        return int(row[0]), int(row[1]), float(row[2])

    def ping(self) -> None:
        self._execute("SELECT 1", fetch="one")
