"""The outbox: records a store could not take, kept on disk and replayed later.

A service declares its record kinds once: a name, the pydantic model of one
record, and how a batch is written to its store. `Outbox.append(kind,
records)` writes one JSON line (`{"kind", "at", "payload": [record, ...]}`)
to a segment file and fsyncs it before returning, so a crash after an answer
loses nothing. `replay(store)` applies the segments in order through each
kind's writer; a segment is deleted only once every record of it is in the
store (writers must be idempotent: a segment replayed twice is harmless). A
line of a kind the service no longer declares, or one that does not
validate, moves its segment aside as `.bad` and is logged, never dropped.

Two failures, two fates. `StoreUnavailable` (the store is away) stops the
replay and keeps the rest, in order, for the next one. `RecordRejected` (the
store refused these values: retrying cannot help) quarantines what was
refused: the batch is retried record by record, the records the store takes
are written, and the refused ones go to `quarantine/` beside the segments,
one JSON file per batch (`kind`, `records`, `reason`, `at`, `queued_at`),
never in front of the records after them. `quarantined(folder)` lists them
(`sovereign router quarantine`); an operator fixes and replays or deletes
them by hand.

A replay never blocks an append: it first closes the segment being appended
to, then works on closed segments only, so a store that hangs delays no
answer's record on its way to disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from sovereign.service.sql import RecordRejected, StoreUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class RecordKind(Generic[R]):
    """One kind of record: its name on disk, its model, and its writer."""

    name: str
    model: type[R]
    write: Callable[[Any, list[R]], None]

    def dump(self, records: Sequence[R]) -> list[Any]:
        return [json.loads(r.model_dump_json()) for r in records]

    def load(self, payload: Any) -> list[R]:
        items = payload if isinstance(payload, list) else [payload]
        return [self.model.model_validate_json(json.dumps(item)) for item in items]


QUARANTINE = "quarantine"


class Quarantined(BaseModel):
    """One batch the store refused, as kept in `quarantine/`."""

    file: str
    kind: str
    records: list[Any]
    reason: str
    at: float
    queued_at: float | None = None


def quarantined(folder: Path) -> list[Quarantined]:
    """The batches quarantined under an outbox folder, oldest first (an unreadable
    file is listed with its error as the reason)."""
    out = []
    for path in sorted((folder / QUARANTINE).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            out.append(Quarantined(file=path.name, **data))
        except (OSError, ValueError, TypeError) as exc:
            out.append(Quarantined(file=path.name, kind="?", records=[], reason=f"unreadable: {exc}",
                                   at=path.stat().st_mtime if path.exists() else 0.0))
    return out


class Outbox:
    PREFIX = "spool-"

    def __init__(self, folder: Path, kinds: Iterable[RecordKind[Any]]) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kinds = {k.name: k for k in kinds}
        self._lock = threading.Lock()  # the segment being appended to
        self._replaying = threading.Lock()  # one replay at a time
        self._segment = self._new_segment()
        self._seq = 0

    @property
    def quarantine_dir(self) -> Path:
        return self.folder / QUARANTINE

    def _new_segment(self) -> Path:
        return self.folder / f"{self.PREFIX}{time.time_ns()}-{os.getpid()}.jsonl"

    def append(self, kind: RecordKind[R], records: Sequence[R]) -> None:
        if self.kinds.get(kind.name) is not kind:
            raise ValueError(f"record kind {kind.name!r} is not declared for this outbox")
        line = json.dumps({"kind": kind.name, "at": time.time(), "payload": kind.dump(records)},
                          ensure_ascii=False)
        with self._lock:
            fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        log.warning("store unavailable: %d %s record(s) kept in the outbox %s", len(records), kind.name,
                    self._segment.name)

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.PREFIX}*.jsonl"))

    # ---------------------------------------------------------------- quarantine
    def quarantine(self, kind: RecordKind[R], records: Sequence[R], reason: str,
                   queued_at: float | None = None) -> Path:
        """Keep a batch the store refused, fsynced, out of the replay's way."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._seq += 1
            path = self.quarantine_dir / f"{time.time_ns()}-{os.getpid()}-{self._seq}.json"
        body = json.dumps({"kind": kind.name, "records": kind.dump(records), "reason": reason,
                           "at": time.time(), "queued_at": queued_at}, ensure_ascii=False, indent=1)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        log.error("store rejected %d %s record(s): %s; quarantined as %s", len(records), kind.name, reason,
                  path.name)
        return path

    def quarantined(self) -> list[Quarantined]:
        return quarantined(self.folder)

    def quarantine_count(self) -> int:
        return len(list(self.quarantine_dir.glob("*.json"))) if self.quarantine_dir.exists() else 0

    def write(self, kind: RecordKind[R], store: Any, records: Sequence[R],
              queued_at: float | None = None) -> int:
        """Write a batch to the store; what it rejects is retried record by record
        and the records still rejected are quarantined. Returns how many were
        quarantined; raises StoreUnavailable (nothing is quarantined then)."""
        batch = list(records)
        try:
            kind.write(store, batch)
            return 0
        except RecordRejected as exc:
            if len(batch) == 1:
                self.quarantine(kind, batch, exc.message, queued_at)
                return 1
        refused: list[R] = []
        reason = ""
        for record in batch:
            try:
                kind.write(store, [record])
            except RecordRejected as exc:
                refused.append(record)
                reason = exc.message
        if refused:
            self.quarantine(kind, refused, reason, queued_at)
        return len(refused)

    def pending(self) -> int:
        """Lines waiting (one line is one batch of records)."""
        total = 0
        for seg in self.segments():
            try:
                with seg.open("rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            except OSError:
                continue
        return total

    def _apply(self, store: Any, line: str) -> None:
        rec = json.loads(line)
        kind = self.kinds.get(rec["kind"])
        if kind is None:
            raise KeyError(f"unknown record kind {rec['kind']!r}")
        self.write(kind, store, kind.load(rec["payload"]), rec.get("at"))

    def replay(self, store: Any) -> tuple[int, int]:
        """Apply what is kept; return (lines applied, lines still pending). Stops
        at the first StoreUnavailable (the store went away again) and keeps the rest;
        records the store rejects are quarantined (and their line counts as applied)."""
        applied = 0
        with self._replaying:
            with self._lock:  # close the segment being appended to: appends go on to a new one
                if self._segment.exists():
                    self._segment = self._new_segment()
                closed = [seg for seg in self.segments() if seg != self._segment]
            for seg in closed:
                lines = [ln for ln in seg.read_text().splitlines() if ln.strip()]
                done = 0
                try:
                    for line in lines:
                        self._apply(store, line)
                        done += 1
                except StoreUnavailable as exc:
                    tmp = seg.with_suffix(".tmp")
                    tmp.write_text("".join(ln + "\n" for ln in lines[done:]))
                    tmp.replace(seg)
                    applied += done
                    log.info("outbox replay stopped after %d record(s): %s", applied, exc.message)
                    return applied, self.pending()
                except (ValueError, KeyError, ValidationError) as exc:
                    bad = seg.with_suffix(".bad")
                    seg.replace(bad)
                    log.error("outbox segment %s is unreadable (%s); kept as %s", seg.name, exc, bad.name)
                    continue
                applied += done
                seg.unlink()
        if applied:
            log.info("outbox replayed: %d record(s) written to the store", applied)
        return applied, self.pending()


class Writer:
    """Writes records to the store in the background, never delaying an
    answer; a batch the store cannot take goes to the outbox instead, one it
    rejects to the quarantine (record by record: the rest is written).

    `store` returns the current store (None while there is none); `failed` is
    told the reason each time a batch goes to the outbox. A write that has not
    returned within `timeout_s` goes to the outbox too (its thread may still
    finish it: the writers are idempotent)."""

    def __init__(self, outbox: Outbox, store: Callable[[], Any | None],
                 failed: Callable[[str], None] = lambda reason: None, *, timeout_s: float = 10.0) -> None:
        self.outbox = outbox
        self._store = store
        self._failed = failed
        self.timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, kind: RecordKind[R], records: Sequence[R]) -> None:
        if not records:
            return
        batch = list(records)

        async def run() -> None:
            try:
                store = self._store()
                if store is None:
                    raise StoreUnavailable("no store")
                await asyncio.wait_for(asyncio.to_thread(self.outbox.write, kind, store, batch),
                                       self.timeout_s)
            except StoreUnavailable as exc:
                self._failed(exc.message)
                await asyncio.to_thread(self.outbox.append, kind, batch)
            except TimeoutError:
                self._failed(f"the store did not answer within {self.timeout_s:g}s")
                await asyncio.to_thread(self.outbox.append, kind, batch)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
