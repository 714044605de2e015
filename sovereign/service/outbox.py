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

from sovereign.service.sql import StoreUnavailable

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


class Outbox:
    PREFIX = "spool-"

    def __init__(self, folder: Path, kinds: Iterable[RecordKind[Any]]) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kinds = {k.name: k for k in kinds}
        self._lock = threading.Lock()
        self._segment = self._new_segment()

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
        kind.write(store, kind.load(rec["payload"]))

    def replay(self, store: Any) -> tuple[int, int]:
        """Apply what is kept; return (lines applied, lines still pending). Stops
        at the first StoreUnavailable (the store went away again) and keeps the rest."""
        applied = 0
        with self._lock:
            for seg in self.segments():
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
                    return applied, self._count_unlocked()
                except (ValueError, KeyError, ValidationError) as exc:
                    bad = seg.with_suffix(".bad")
                    seg.replace(bad)
                    log.error("outbox segment %s is unreadable (%s); kept as %s", seg.name, exc, bad.name)
                    continue
                applied += done
                seg.unlink()
                if seg == self._segment:
                    self._segment = self._new_segment()
        if applied:
            log.info("outbox replayed: %d record(s) written to the store", applied)
        return applied, 0

    def _count_unlocked(self) -> int:
        return sum(len([ln for ln in s.read_text().splitlines() if ln.strip()]) for s in self.segments())


class Writer:
    """Writes records to the store in the background, never delaying an
    answer; a batch the store cannot take goes to the outbox instead.

    `store` returns the current store (None while there is none); `failed` is
    told the reason each time a batch goes to the outbox."""

    def __init__(self, outbox: Outbox, store: Callable[[], Any | None],
                 failed: Callable[[str], None] = lambda reason: None) -> None:
        self.outbox = outbox
        self._store = store
        self._failed = failed
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
                await asyncio.to_thread(kind.write, store, batch)
            except StoreUnavailable as exc:
                self._failed(exc.message)
                await asyncio.to_thread(self.outbox.append, kind, batch)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
