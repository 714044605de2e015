# ruff: noqa: S608  (column lists are module constants; every value is a bound parameter)
"""The behavioral events: an append-only hash chain.

Each row's `hash` is the SHA-256 of the canonical JSON of every other column
(`seq`, `id`, `at`, `source`, `kind`, `subject`, `payload`, `prev_hash`):
keys sorted, no whitespace, UTF-8, the time as an ISO string in UTC with
microseconds, a float that is a whole number written as an integer (JSONB
keeps `1e20` as `100000000000000000000`, so the hash of what was written is
the hash of what is read back). `prev_hash` is the previous row's hash (the
genesis: 64 zeros), so the table is a chain. `append` reads the head and
inserts in one transaction under one advisory lock (`KnowledgeDB.transaction`:
two round trips), so appends from many connections keep one chain and an
append that fails leaves nothing; Postgres itself refuses a row that does not link to the head, and any
UPDATE, DELETE or TRUNCATE (migrations/postgres/0001_init.sql).

`verify` walks the chain in `seq` order and names the first bad row:
*edited* (its hash does not match its content, or the next row's prev_hash
no longer names it: its hash was recomputed), *deleted* (a gap in `seq`, or
the first row does not start from the genesis) or *reordered* (its prev_hash
names a row that is elsewhere in the chain). A table rewritten whole, with a
valid new chain, is found by comparing with a head kept outside Postgres
(`head`, written into each backup and the phase ledger): `verify(head=...)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from sovereign.knowledge.store import KnowledgeDB
from sovereign.service.sql import NUL_REPLACEMENT, RecordRejected

GENESIS = "0" * 64
COLS = ["seq", "id", "at", "source", "kind", "subject", "payload", "prev_hash", "hash"]
SELECT = f"SELECT {', '.join(COLS)} FROM sovereign.behavioral_events"
INSERT = (f"INSERT INTO sovereign.behavioral_events ({', '.join(COLS)}) "
          f"VALUES ({', '.join('%s' for _ in COLS)})")
PAGE = 2000


class NewEvent(BaseModel):
    """What a writer records; `id` (for replays: an id already in the chain is
    not appended twice) and `at` are made when absent."""

    kind: str = Field(min_length=1)
    source: str = Field(min_length=1)
    subject: str = ""
    payload: dict[str, Any] = {}
    id: str | None = None
    at: datetime | None = None


class Event(BaseModel):
    seq: int
    id: str
    at: datetime
    source: str
    kind: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class Head(BaseModel):
    seq: int
    id: str
    at: datetime
    hash: str


class Problem(BaseModel):
    kind: Literal["edited", "deleted", "reordered", "rewritten"]
    seq: int | None
    id: str | None
    message: str


class Verification(BaseModel):
    ok: bool
    rows: int
    head: Head | None
    kept_head: str | None = None
    problem: Problem | None = None


# --------------------------------------------------------------------------- canonical form


def _clean(value: Any, where: str) -> Any:
    """A JSON value as JSONB gives it back: no NUL byte, whole floats as ints."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordRejected(f"event payload {where}: {value} is not a JSON number")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {_clean(str(k), where): _clean(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise RecordRejected(f"event payload {where}: a {type(value).__name__} is not a JSON value")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes the hash covers: every column but `hash`."""
    body = {k: row[k] for k in COLS if k != "hash"}
    body["at"] = _iso(body["at"])
    body["payload"] = _clean(body["payload"], "payload")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


# --------------------------------------------------------------------------- writing


def _event(row: Any) -> Event:
    return Event.model_validate(dict(zip(COLS, row, strict=True)))


def _row(new: NewEvent, seq: int, prev_hash: str) -> dict[str, Any]:
    at = (new.at or datetime.now(UTC)).astimezone(UTC)
    row = {"seq": seq, "id": new.id or uuid.uuid4().hex, "at": at,
           "source": _clean(new.source, "source"), "kind": _clean(new.kind, "kind"),
           "subject": _clean(new.subject, "subject"), "payload": _clean(new.payload, "payload"),
           "prev_hash": prev_hash}
    row["hash"] = row_hash(row)
    return row


def head(kdb: KnowledgeDB) -> Head | None:
    row = kdb.run("SELECT seq, id, at, hash FROM sovereign.behavioral_events ORDER BY seq DESC LIMIT 1",
                  fetch="one")
    return Head(seq=row[0], id=row[1], at=row[2], hash=row[3]) if row else None


def append_many(kdb: KnowledgeDB, events: list[NewEvent]) -> list[Event]:
    """Append `events` in order, in one transaction, under the chain's lock.
    An event whose id is already in the chain is returned as it was stored."""
    from psycopg.types.json import Jsonb

    if not events:
        return []
    with kdb.transaction("chain"):
        ids = [e.id for e in events if e.id]
        found = kdb.run(f"{SELECT} WHERE id = ANY(%s)", (ids,), "all") if ids else []
        known = {r[1]: _event(r) for r in found}
        top = head(kdb)
        seq, prev = (top.seq, top.hash) if top else (0, GENESIS)
        rows, out = [], []
        for new in events:
            if new.id in known:
                out.append(known[new.id])
                continue
            seq += 1
            row = _row(new, seq, prev)
            prev = row["hash"]
            rows.append(row)
            out.append(Event.model_validate(row))
        values = [tuple(Jsonb(r[k]) if k == "payload" else r[k] for k in COLS) for r in rows]
        if len(values) == 1:
            kdb.run(INSERT, values[0])
        elif values:
            kdb.db.executemany(INSERT, values)
    return out


def append(kdb: KnowledgeDB, event: NewEvent) -> Event:
    return append_many(kdb, [event])[0]


# --------------------------------------------------------------------------- reading


def list_events(kdb: KnowledgeDB, *, limit: int = 50, kind: str | None = None,
                source: str | None = None) -> list[Event]:
    """The newest events first."""
    where, params = [], []
    for col, value in (("kind", kind), ("source", source)):
        if value is not None:
            where.append(f"{col} = %s")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = kdb.run(f"{SELECT} {clause} ORDER BY seq DESC LIMIT %s", (*params, limit), "all")
    return [_event(r) for r in rows]


def get_event(kdb: KnowledgeDB, ident: str) -> Event | None:
    """By seq (a number) or id."""
    if ident.isdigit():
        row = kdb.run(f"{SELECT} WHERE seq = %s", (int(ident),), "one")
    else:
        row = kdb.run(f"{SELECT} WHERE id = %s", (ident,), "one")
    return _event(row) if row else None


def _walk(kdb: KnowledgeDB) -> Iterator[Event]:
    last = 0
    while True:
        rows = kdb.run(f"{SELECT} WHERE seq > %s ORDER BY seq LIMIT %s", (last, PAGE), "all")
        for r in rows:
            yield _event(r)
        if len(rows) < PAGE:
            return
        last = rows[-1][0]


def _find_hash(kdb: KnowledgeDB, value: str) -> tuple[int, str] | None:
    row = kdb.run("SELECT seq, id FROM sovereign.behavioral_events WHERE hash = %s", (value,), "one")
    return (row[0], row[1]) if row else None


def _link_problem(kdb: KnowledgeDB, ev: Event, prev: Event | None) -> Problem:
    """Why `ev`'s prev_hash does not name the row before it."""
    elsewhere = _find_hash(kdb, ev.prev_hash)
    if elsewhere is not None:
        return Problem(kind="reordered", seq=ev.seq, id=ev.id,
                       message=f"seq {ev.seq} (id {ev.id}) is out of order: it follows seq {elsewhere[0]} "
                               f"(id {elsewhere[1]}), not the row before it")
    if prev is None:
        return Problem(kind="deleted", seq=ev.seq, id=ev.id,
                       message=f"seq {ev.seq} (id {ev.id}) does not start from the genesis: the rows "
                               "before it were deleted")
    return Problem(kind="edited", seq=prev.seq, id=prev.id,
                   message=f"seq {prev.seq} (id {prev.id}) was edited and its hash recomputed: "
                           f"seq {ev.seq}'s prev_hash names a row that is not in the chain")


def _problem(kdb: KnowledgeDB, ev: Event, prev: Event | None) -> Problem | None:
    want = prev.seq + 1 if prev else 1
    if ev.seq != want:
        gap = f"seq {want}" if ev.seq == want + 1 else f"seq {want}..{ev.seq - 1}"
        return Problem(kind="deleted", seq=ev.seq, id=ev.id,
                       message=f"{gap} before seq {ev.seq} (id {ev.id}) was deleted")
    if ev.prev_hash != (prev.hash if prev else GENESIS):
        return _link_problem(kdb, ev, prev)
    if row_hash(ev.model_dump()) != ev.hash:
        return Problem(kind="edited", seq=ev.seq, id=ev.id,
                       message=f"seq {ev.seq} (id {ev.id}) was edited: its hash does not match its content")
    return None


def verify(kdb: KnowledgeDB, kept_head: str | None = None) -> Verification:
    """Walk the chain; the first bad row, or with `kept_head` (a head written
    outside Postgres earlier) whether that head is still in the chain."""
    prev: Event | None = None
    rows, seen_kept = 0, False
    for ev in _walk(kdb):
        problem = _problem(kdb, ev, prev)
        if problem is not None:
            return Verification(ok=False, rows=rows, head=head(kdb), kept_head=kept_head, problem=problem)
        rows += 1
        seen_kept = seen_kept or ev.hash == kept_head
        prev = ev
    top = Head(seq=prev.seq, id=prev.id, at=prev.at, hash=prev.hash) if prev else None
    if kept_head is not None and not seen_kept:
        return Verification(ok=False, rows=rows, head=top, kept_head=kept_head, problem=Problem(
            kind="rewritten", seq=None, id=None,
            message=f"the kept head {kept_head} is not in the chain: the table was rewritten (or restored "
                    "from before that head)"))
    return Verification(ok=True, rows=rows, head=top, kept_head=kept_head)
