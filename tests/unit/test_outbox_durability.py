"""The kit's Writer makes a batch durable before it says so: `persist` returns
once the batch is in the store or fsynced in the outbox, within its bound
whatever the store does; `close` brings every batch still in memory to one of
the two within its bound. The outbox fsyncs the folder of a new segment. On
real files; the store is the test's own object, which can hang."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from sovereign.service.outbox import Outbox, RecordKind, Writer


class Note(BaseModel):
    id: str


class Store:
    """Takes notes; `hang` makes every write wait until `release` is set."""

    def __init__(self, hang: bool = False) -> None:
        self.notes: list[str] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def put(self, notes: list[Note]) -> None:
        self.release.wait(30)
        self.notes += [n.id for n in notes]


NOTES: RecordKind[Note] = RecordKind("note", Note, lambda s, ns: s.put(ns))


def notes(*ids: str) -> list[Note]:
    return [Note(id=i) for i in ids]


def test_persist_returns_once_the_store_has_it(tmp_path: Path) -> None:
    store = Store()
    writer = Writer(Outbox(tmp_path / "box", [NOTES]), lambda: store, persist_timeout_s=2.0)
    assert asyncio.run(writer.persist(NOTES, notes("a"))) == "store"
    assert store.notes == ["a"] and writer.outbox.pending() == 0


def test_persist_falls_back_to_the_outbox_within_its_bound_without_blocking_the_loop(tmp_path: Path) -> None:
    store = Store(hang=True)
    reasons: list[str] = []
    writer = Writer(Outbox(tmp_path / "box", [NOTES]), lambda: store, reasons.append, persist_timeout_s=0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def go() -> tuple[str, float]:
        ticker = asyncio.create_task(tick())
        t0 = time.monotonic()
        where = await writer.persist(NOTES, notes("a", "b"))
        took = time.monotonic() - t0
        ticker.cancel()
        return where, took

    try:
        where, took = asyncio.run(go())
        assert where == "outbox" and 0.3 <= took < 1.0
        assert writer.outbox.pending() == 1 and store.notes == []  # on disk before persist returned
        assert reasons == ["the store did not answer within 0.3s"]
        assert ticks >= 10  # the event loop ran on while the store hung
    finally:
        store.release.set()


def test_persist_without_a_store_goes_to_the_outbox(tmp_path: Path) -> None:
    writer = Writer(Outbox(tmp_path / "box", [NOTES]), lambda: None)
    assert asyncio.run(writer.persist(NOTES, notes("a"))) == "outbox"
    assert writer.outbox.pending() == 1


def test_close_keeps_every_batch_in_memory_within_its_bound(tmp_path: Path) -> None:
    store = Store(hang=True)
    box = Outbox(tmp_path / "box", [NOTES])
    writer = Writer(box, lambda: store, timeout_s=60.0)

    async def go() -> tuple[int, float, str]:
        for i in range(3):
            writer.submit(NOTES, notes(f"n{i}"))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        cut = await writer.close(0.3)
        took = time.monotonic() - t0
        writer.submit(NOTES, notes("late"))  # after close: straight to the outbox
        return cut, took, await writer.persist(NOTES, notes("later"))

    try:
        cut, took, where = asyncio.run(go())
        assert cut == 3 and took < 1.5 and where == "outbox"
        assert box.pending() == 5
    finally:
        store.release.set()
    good = Store()
    assert box.replay(good) == (5, 0)
    assert sorted(good.notes) == ["late", "later", "n0", "n1", "n2"]


def test_close_waits_for_writes_that_finish_within_the_bound(tmp_path: Path) -> None:
    store = Store()
    box = Outbox(tmp_path / "box", [NOTES])
    writer = Writer(box, lambda: store)

    async def go() -> int:
        writer.submit(NOTES, notes("a"))
        return await writer.close(5.0)

    assert asyncio.run(go()) == 0 and store.notes == ["a"] and box.pending() == 0


def test_a_new_segment_is_fsynced_with_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    box = Outbox(tmp_path / "box", [NOTES])
    monkeypatch.setattr(os, "fsync", fsync)
    box.append(NOTES, notes("a"))
    box.append(NOTES, notes("b"))  # the same segment: its name is already durable
    assert synced == ["file", "dir", "file"]
    synced.clear()
    box.quarantine(NOTES, notes("bad"), "refused")
    assert synced[-1] == "dir" and "file" in synced
