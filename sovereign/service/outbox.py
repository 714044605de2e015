"""The outbox: records a store could not take, kept on disk and replayed later.

A service declares its record kinds once: a name, the pydantic model of one
record, and how a batch is written to its store. `Outbox.append(kind,
records)` writes one JSON line (`{"kind", "at", "payload": [record, ...]}`)
to a segment file and fsyncs it (and the folder, when the segment is new)
before returning, so a crash after an answer loses nothing. `replay(store)`
applies the segments in order through each kind's writer; a segment is
deleted only once every record of it is in the store (writers must be
idempotent: a segment replayed twice is harmless). A line of a kind the
service no longer declares, or one that does not validate, moves its
segment aside as `.bad` and is logged, never dropped.

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

The `Writer` puts records in the store or the outbox, two ways: `submit`
in the background (the answer does not wait), and `await persist(...)`,
which returns only once the batch is durable: in the store within its bound,
else appended to the outbox and fsynced. `close(bound)` at shutdown brings
every batch still in memory to one of the two within the bound, whatever the
store does. Store calls run in daemon threads of their own (a frozen store
holds no worker another part of the service needs, nor the process's exit);
outbox appends in the Writer's own small pool, so they never queue behind a
store call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from sovereign.service.sql import RecordRejected, StoreUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


def fsync_dir(folder: Path) -> None:
    """Make a file's creation, rename or removal in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a crash leaves the old file or the new
    one, whole: a fsynced temporary file renamed over it, then the folder fsynced."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    fsync_dir(path.parent)


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own. Unlike `asyncio.to_thread`, a
    call that hangs (a frozen store) holds no pool worker and does not hold up
    the process's exit; cancelling the wait leaves the thread to finish alone."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(result)
        else:
            done.set_exception(exc)

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as error:  # handed to the waiting coroutine
            result, exc = None, error
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, exc)

    threading.Thread(target=run, name=f"store-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await done


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
            new = not self._segment.exists()
            fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:  # the segment's name in the folder, or a crash could lose the whole file
                fsync_dir(self.folder)
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
        write_durably(path, body)
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
                    write_durably(seg, "".join(ln + "\n" for ln in lines[done:]))
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


Where = Literal["store", "outbox"]


@dataclass
class _Batch:
    """A batch on its way: `kept` is its outbox append once that has begun."""

    kind: RecordKind[Any]
    records: list[Any]
    kept: asyncio.Future[None] | None = field(default=None, compare=False)


class Writer:
    """Puts records in the store, or in the outbox when the store cannot take
    them; what the store rejects goes to the quarantine (record by record:
    the rest is written).

    `submit` writes in the background, never delaying an answer: a write not
    done within `timeout_s` goes to the outbox (its thread may still finish it:
    the writers are idempotent). `persist` returns only once the batch is
    durable: written within `persist_timeout_s`, else appended to the outbox
    and fsynced; it takes at most that bound plus the append. `close(bound)`
    (shutdown) gives the writes in flight `bound` seconds, then appends what is
    left to the outbox: nothing in memory is lost to a stop but SIGKILL.

    `store` returns the current store (None while there is none); `failed` is
    told the reason each time a batch goes to the outbox."""

    def __init__(self, outbox: Outbox, store: Callable[[], Any | None],
                 failed: Callable[[str], None] = lambda reason: None, *, timeout_s: float = 10.0,
                 persist_timeout_s: float = 0.5) -> None:
        self.outbox = outbox
        self._store = store
        self._failed = failed
        self.timeout_s = timeout_s
        self.persist_timeout_s = persist_timeout_s
        self.closed = False
        self._tasks: dict[asyncio.Task[Where], _Batch] = {}
        self._disk = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbox-append")

    # ---------------------------------------------------------------- the two ways in
    def submit(self, kind: RecordKind[R], records: Sequence[R]) -> None:
        """Write in the background (after `close`: straight to the outbox)."""
        if records:
            self._start(_Batch(kind, list(records)), self.timeout_s)

    async def persist(self, kind: RecordKind[R], records: Sequence[R]) -> Where:
        """Return once the batch is in the store or in the outbox, fsynced (file
        and folder), and say which. A caller cancelled meanwhile leaves the write
        to finish (and `close` to account for it)."""
        if not records:
            return "store"
        return await asyncio.shield(self._start(_Batch(kind, list(records)), self.persist_timeout_s))

    # ---------------------------------------------------------------- how
    def _start(self, batch: _Batch, bound: float) -> asyncio.Future[Where]:
        if self.closed:  # (the shutdown: an fsync on the event loop is no matter now)
            self._append(batch.kind, batch.records)
            done: asyncio.Future[Where] = asyncio.get_running_loop().create_future()
            done.set_result("outbox")
            return done
        task = asyncio.create_task(self._write(batch, bound))
        self._tasks[task] = batch
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Where]) -> None:
        batch = self._tasks.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None and batch is not None:
            log.error("%d %s record(s) could not be kept: %s", len(batch.records), batch.kind.name, exc)

    async def _write(self, batch: _Batch, bound: float) -> Where:
        reason = await self._try_store(batch, bound)
        if reason is None:
            return "store"
        self._failed(reason)
        batch.kept = asyncio.get_running_loop().run_in_executor(self._disk, self._append, batch.kind,
                                                                batch.records)
        await asyncio.shield(batch.kept)  # a cancelled wait leaves the append to finish
        return "outbox"

    async def _try_store(self, batch: _Batch, bound: float) -> str | None:
        """None once the store holds the batch (refused records quarantined), else why not."""
        store = self._store()
        if store is None:
            return "no store"
        try:
            await asyncio.wait_for(in_daemon_thread(self.outbox.write, batch.kind, store, batch.records),
                                   bound)
        except StoreUnavailable as exc:
            return exc.message
        except TimeoutError:
            return f"the store did not answer within {bound:g}s"
        return None

    def _append(self, kind: RecordKind[Any], records: list[Any]) -> None:
        self.outbox.append(kind, records)

    # ---------------------------------------------------------------- the end
    async def drain(self) -> None:
        """Wait for the writes in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, bound: float) -> int:
        """Shutdown: within `bound` seconds (plus the appends) every batch still
        in memory is in the store or the outbox, whatever the store does. The
        writes in flight get `bound`; those still waiting on the store then are
        cut short and appended to the outbox. Returns how many were cut short."""
        self.closed = True
        if not self._tasks:
            self._disk.shutdown(wait=False)
            return 0
        waiting = dict(self._tasks)
        _, late = await asyncio.wait(list(waiting), timeout=bound)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        cut = [waiting[t] for t in late if t.cancelled() and waiting[t].kept is None]
        begun = [b.kept for t in late if (b := waiting[t]).kept is not None]
        await asyncio.gather(*begun, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for batch in cut:
            self._failed(f"shutdown: the store did not take it within {bound:g}s")
            await loop.run_in_executor(self._disk, self._append, batch.kind, batch.records)
        self._disk.shutdown(wait=False)
        if cut:
            log.warning("shutdown: %d batch(es) the store had not taken within %gs kept in the outbox",
                        len(cut), bound)
        return len(cut)
