"""The runtime kit (sovereign/service/): settings in one order, the one
migrations runner, the outbox and its writer, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel

from sovereign.service.outbox import Outbox, RecordKind, Writer, quarantined
from sovereign.service.settings import (
    Section,
    ServiceConfigError,
    ServiceSettings,
    build_settings,
    deep_merge,
    service_config,
)
from sovereign.service.sql import RecordRejected, SqliteDatabase, StoreUnavailable, migrate, schema_version


class Listen(Section):
    host: str = "127.0.0.1"
    port: int = 9000


class Item(Section):
    name: str
    size: int = 1


class DemoSettings(ServiceSettings):
    model_config = service_config("demo")
    service: ClassVar[str] = "demo"
    merge_by_name: ClassVar[tuple[str, ...]] = ("items",)
    listen: Listen = Listen()
    items: list[Item] = []


def test_settings_come_in_one_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOVEREIGN_DEMO_LISTEN__PORT", raising=False)
    assert build_settings(DemoSettings).listen.port == 9000  # the one default
    inv = ({"listen": {"port": 9100}, "items": [{"name": "a", "size": 2}, {"name": "b"}]}, "inventory X")
    assert build_settings(DemoSettings, inventory=inv).listen.port == 9100
    f = tmp_path / "demo.yml"
    f.write_text("listen: {port: 9200}\nitems: [{name: b, size: 5}, {name: c}]\n")
    s = build_settings(DemoSettings, inventory=inv, config_file=f)
    assert s.listen.port == 9200
    # Named entries merge by name: the file changed b and added c.
    assert [(i.name, i.size) for i in s.items] == [("a", 2), ("b", 5), ("c", 1)]
    monkeypatch.setenv("SOVEREIGN_DEMO_LISTEN__PORT", "9300")
    s = build_settings(DemoSettings, inventory=inv, config_file=f)
    assert s.listen.port == 9300
    assert s.source == ["inventory X", f"file {f}", "environment SOVEREIGN_DEMO_*"]


def test_a_bad_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    f = tmp_path / "demo.yml"
    f.write_text("listen: {port: not-a-port}\n")
    with pytest.raises(ServiceConfigError) as exc:
        build_settings(DemoSettings, config_file=f)
    assert exc.value.exit_code == 11
    assert any(d.startswith(f"{f}: listen.port:") for d in exc.value.details), exc.value.details


def test_deep_merge_replaces_what_is_not_merged_by_name() -> None:
    merged = deep_merge({"a": {"x": 1, "y": 2}, "l": [1, 2]}, {"a": {"y": 3}, "l": [9]})
    assert merged == {"a": {"x": 1, "y": 3}, "l": [9]}


# --------------------------------------------------------------------------- migrations


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A package of its own, with a migrations folder, importable."""
    name = f"demo_pkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    (root / "migrations" / "sqlite").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, root / "migrations" / "sqlite"
    sys.modules.pop(name, None)


def test_migrations_apply_in_order_once(package: tuple[str, Path], tmp_path: Path) -> None:
    name, folder = package
    (folder / "0001_items.sql").write_text("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT);\n")
    (folder / "0002_more.sql").write_text("-- a column\nALTER TABLE items ADD COLUMN w TEXT;\n"
                                          "CREATE INDEX items_v ON items (v);\n")
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    assert migrate(db, name) == 2
    assert migrate(db, name) == 2  # nothing twice
    rows = db.execute("SELECT version, name FROM schema_version ORDER BY version", fetch="all")
    assert [tuple(r) for r in rows] == [(1, "items"), (2, "more")]
    (folder / "0003_third.sql").write_text("ALTER TABLE items ADD COLUMN z TEXT;\n")
    assert migrate(db, name) == 3
    cols = {r[1] for r in db.execute("PRAGMA table_info(items)", fetch="all")}
    assert cols == {"id", "v", "w", "z"}


def test_a_failed_migration_leaves_nothing_half_done(package: tuple[str, Path], tmp_path: Path) -> None:
    name, folder = package
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (id INTEGER);\n")
    (folder / "0002_bad.sql").write_text("CREATE TABLE b (id INTEGER);\nCREATE TABLE a (id INTEGER);\n")
    db = SqliteDatabase(tmp_path / "x.sqlite3")
    with pytest.raises(StoreUnavailable, match="0002_bad"):
        migrate(db, name)
    assert schema_version(db) == 1
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'", fetch="all")}
    assert "b" not in tables


def test_a_badly_named_migration_is_an_error(package: tuple[str, Path], tmp_path: Path) -> None:
    name, folder = package
    (folder / "1_init.sql").write_text("CREATE TABLE a (id INTEGER);\n")
    with pytest.raises(Exception, match=r"NNNN_name\.sql"):
        migrate(SqliteDatabase(tmp_path / "x.sqlite3"), name)


def test_an_unversioned_database_is_adopted(package: tuple[str, Path], tmp_path: Path) -> None:
    name, folder = package
    (folder / "0001_items.sql").write_text("CREATE TABLE items (id INTEGER);\n")
    (folder / "0002_col.sql").write_text("ALTER TABLE items ADD COLUMN w TEXT;\n")
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # made by an earlier release, without schema_version
        old.execute("CREATE TABLE items (id INTEGER)")
    db = SqliteDatabase(path)
    assert migrate(db, name, adopt=lambda d: 1) == 2
    cols = {r[1] for r in db.execute("PRAGMA table_info(items)", fetch="all")}
    assert cols == {"id", "w"}


# --------------------------------------------------------------------------- outbox


class Note(BaseModel):
    id: str
    blob: bytes = b""


class Store:
    def __init__(self) -> None:
        self.notes: dict[str, Note] = {}
        self.down = False

    def put(self, notes: list[Note]) -> None:
        if self.down:
            raise StoreUnavailable("down")
        if any(n.id.startswith("bad") for n in notes):
            raise RecordRejected("refused")
        for n in notes:
            self.notes.setdefault(n.id, n)


NOTES: RecordKind[Note] = RecordKind("note", Note, lambda s, ns: s.put(ns))


def test_the_outbox_keeps_and_replays_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "box", [NOTES])
    for i in range(3):
        box.append(NOTES, [Note(id=f"n{i}")])
    store = Store()
    store.down = True
    assert box.replay(store) == (0, 3)
    store.down = False
    assert box.replay(store) == (3, 0)
    assert list(store.notes) == ["n0", "n1", "n2"] and box.pending() == 0


def test_a_rejected_record_is_quarantined_not_queued_in_front(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "box", [NOTES])
    box.append(NOTES, [Note(id="n0"), Note(id="bad1"), Note(id="n1")])
    box.append(NOTES, [Note(id="n2")])
    store = Store()
    assert box.replay(store) == (2, 0)
    assert list(store.notes) == ["n0", "n1", "n2"]
    [q] = quarantined(tmp_path / "box")
    assert (q.kind, q.records, q.reason) == ("note", [{"id": "bad1", "blob": ""}], "refused")
    assert box.replay(store) == (0, 0) and box.quarantine_count() == 1


def test_an_undeclared_kind_is_refused_and_an_unknown_line_is_kept_aside(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "box", [NOTES])
    other: RecordKind[Note] = RecordKind("other", Note, lambda s, ns: None)
    with pytest.raises(ValueError, match="not declared"):
        box.append(other, [Note(id="x")])
    (tmp_path / "box" / "spool-1-1.jsonl").write_text(json.dumps({"kind": "gone", "payload": []}) + "\n")
    assert box.replay(Store()) == (0, 0)
    assert (tmp_path / "box" / "spool-1-1.bad").exists()


def test_the_writer_sends_what_the_store_refuses_to_the_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "box", [NOTES])
    store = Store()
    store.down = True
    reasons: list[str] = []
    writer = Writer(box, lambda: store, reasons.append)

    async def go() -> None:
        writer.submit(NOTES, [Note(id="a")])
        writer.submit(NOTES, [])  # nothing to write, nothing kept
        await writer.drain()

    asyncio.run(go())
    assert reasons == ["down"] and box.pending() == 1 and not store.notes
    store.down = False
    assert box.replay(store) == (1, 0) and list(store.notes) == ["a"]
