"""The RAG store against the real Qdrant embedded engine: ingest Markdown, text
and PDF, search with the real all-MiniLM-L6-v2, re-ingest idempotently, and
the bad inputs (another model, an unreadable PDF, an unreachable server)."""

from __future__ import annotations

import hashlib
import itertools
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import settings_for, write_pdf

from sovereign.rag import ModelMismatch, RagSettings, RagStore
from sovereign.rag.ingest import IngestIncomplete, chunk_id, ingest, load_text, split
from sovereign.service.settings import ServiceConfigError
from sovereign.service.sql import StoreUnavailable

GARDEN = ("# Tomatoes\n\nTomato seedlings go into the greenhouse in April. Water them at the base every "
          "morning, never on the leaves, and pinch out the side shoots each week.\n")
BOILER = ("The boiler's pressure gauge should read between 1 and 1.5 bar when the heating is cold. "
          "If it falls below 1 bar, open the filling loop under the boiler until the needle returns.\n")
PASSPORT = [["Passport renewal", "Renew the passport six months before it expires: most countries",
             "refuse entry when fewer than six months of validity remain."],
            ["The renewal form needs two photographs and the old passport."]]


def corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "garden.md").write_text(GARDEN)
    (root / "boiler.txt").write_text(BOILER)
    write_pdf(root / "passport.pdf", PASSPORT)
    return root


def points_of(store: RagStore) -> dict[str, dict[str, Any]]:
    return {str(p.id): p.payload for p in store.client.scroll(store.collection, limit=10_000)[0]}


# --------------------------------------------------------------------------- the splitter and loaders


def test_the_splitter_keeps_offsets_bounds_and_overlap() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 40 for i in range(12))
    spans = split(text, 300, 50)
    assert len(spans) > 5
    assert spans[0][0] == 0 and spans[-1][1] == len(text.rstrip())
    for (s1, e1), (s2, _) in itertools.pairwise(spans):
        assert 0 < e1 - s1 <= 300
        assert s2 < e1, "neighbouring chunks overlap"
        assert s2 > s1, "every chunk starts after the last"
    covered = set().union(*(range(s, e) for s, e in spans))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace()), "no text is lost"


def test_chunk_ids_are_stable_and_differ_by_version() -> None:
    assert chunk_id("/a.md", "00", 0) == chunk_id("/a.md", "00", 0)
    assert len({chunk_id("/a.md", "00", 0), chunk_id("/a.md", "01", 0), chunk_id("/a.md", "00", 1),
                chunk_id("/b.md", "00", 0)}) == 4


def test_a_real_pdf_is_read_and_a_broken_one_named(tmp_path: Path) -> None:
    text = load_text(write_pdf(tmp_path / "p.pdf", PASSPORT))
    assert "six months" in text and "two photographs" in text
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R")
    with pytest.raises(Exception) as info:
        load_text(broken)
    assert str(broken) in info.value.message and "PDF" in info.value.message


def test_bad_chunking_and_a_server_without_url_are_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "rag.yaml").write_text("chunking: {size: 200, overlap: 150}\n")
    from sovereign.rag import rag_settings

    with pytest.raises(ServiceConfigError) as info:
        rag_settings(tmp_path / "rag.yaml")
    assert any("chunking" in d and str(tmp_path / "rag.yaml") in d for d in info.value.details)
    (tmp_path / "rag.yaml").write_text("engine: server\n")
    with pytest.raises(ServiceConfigError) as info:
        rag_settings(tmp_path / "rag.yaml")
    assert any("url" in d for d in info.value.details)


# --------------------------------------------------------------------------- ingest and search


def test_ingest_and_search_with_the_real_minilm(tmp_path: Path, minilm: Any) -> None:
    docs = corpus(tmp_path / "docs")
    with RagStore.open(settings_for(tmp_path, "minilm"), embedder=minilm) as store:
        where = store.describe()
        assert "embedded engine (local mode" in where and str(tmp_path / "qdrant") in where
        report = ingest(store, [docs])
        assert (report.added, report.chunks, report.failed) == (3, 3, [])
        for question, source, phrase in [
            ("how often should I water my tomato plants?", "garden.md", "Water them at the base"),
            ("the heating has lost pressure, what do I do", "boiler.txt", "filling loop"),
            ("when must I renew my travel document?", "passport.pdf", "six months"),
        ]:
            hits = store.search(question, 3)
            assert hits[0].source == str(docs / source), (question, [h.source for h in hits])
            assert phrase in hits[0].text
            assert hits[0].score > hits[1].score
            loaded = load_text(docs / source)
            assert loaded[hits[0].start:hits[0].end] == hits[0].text
        assert store.recorded_model() == ("all-minilm-l6-v2", 384)


def test_reingesting_is_idempotent(tmp_path: Path, hashed_store: RagStore) -> None:
    docs = corpus(tmp_path / "docs")
    first = ingest(hashed_store, [docs])
    before = points_of(hashed_store)
    second = ingest(hashed_store, [docs])
    assert (second.added, second.replaced, second.skipped, second.deleted, second.chunks) == (0, 0, 3, 0, 0)
    assert points_of(hashed_store) == before and len(before) == first.chunks


def test_a_changed_file_is_replaced_and_a_removed_one_deleted(tmp_path: Path, hashed_store: RagStore) -> None:
    docs = corpus(tmp_path / "docs")
    ingest(hashed_store, [docs])
    old = {i for i, p in points_of(hashed_store).items() if p["source"].endswith("boiler.txt")}
    (docs / "boiler.txt").write_text(BOILER + "\n\nService the boiler every autumn.\n" * 30)
    (docs / "garden.md").unlink()
    report = ingest(hashed_store, [docs])
    assert (report.replaced, report.deleted, report.skipped) == (1, 1, 1)
    after = points_of(hashed_store)
    assert not old & set(after), "the old version's chunks are gone"
    assert not any(p["source"].endswith("garden.md") for p in after.values())
    boiler = [p for p in after.values() if p["source"].endswith("boiler.txt")]
    assert len(boiler) == report.chunks == boiler[0]["chunks"] > 1
    assert {p["sha256"] for p in boiler} == {hashlib.sha256((docs / "boiler.txt").read_bytes()).hexdigest()}


def test_a_file_outside_the_given_roots_is_kept(tmp_path: Path, hashed_store: RagStore) -> None:
    docs = corpus(tmp_path / "docs")
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("A note kept elsewhere.")
    ingest(hashed_store, [docs, other])
    report = ingest(hashed_store, [docs])
    assert report.deleted == 0 and report.skipped == 3
    assert any(p["source"] == str(other / "note.txt") for p in points_of(hashed_store).values())


def test_a_partly_written_file_is_completed(tmp_path: Path, hashed_store: RagStore) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.md").write_text("Line of a long note about the cellar.\n\n" * 80)
    ingest(hashed_store, [docs])
    ids = sorted(points_of(hashed_store))
    hashed_store.client.delete(hashed_store.collection, points_selector=ids[:2])  # an interrupted run
    report = ingest(hashed_store, [docs])
    assert report.skipped == 0 and report.chunks == len(ids)
    assert sorted(points_of(hashed_store)) == ids


# --------------------------------------------------------------------------- bad input


def test_another_model_is_refused_and_nothing_is_lost(tmp_path: Path, minilm_dir: Path) -> None:
    docs = corpus(tmp_path / "docs")
    with RagStore.open(settings_for(tmp_path)) as store:
        ingest(store, [docs])
        count = store.count()
    with pytest.raises(ModelMismatch) as info:
        RagStore.open(settings_for(tmp_path, "minilm", embedding={"model_dir": minilm_dir}))
    msg = info.value.message
    assert "'knowledge'" in msg and "hashed-char-3gram" in msg and "all-minilm-l6-v2" in msg
    assert "embedding.backend: hashed" in info.value.hint
    with RagStore.open(settings_for(tmp_path)) as store:
        assert store.count() == count


def test_an_unreadable_pdf_is_named_and_nothing_is_lost(tmp_path: Path, hashed_store: RagStore) -> None:
    docs = corpus(tmp_path / "docs")
    ingest(hashed_store, [docs])
    before = points_of(hashed_store)
    (docs / "passport.pdf").write_bytes(b"%PDF-1.7\n%garbage, not a PDF body")
    (docs / "new.txt").write_text("A new note about the attic insulation.")
    report = ingest(hashed_store, [docs])
    assert [f.path for f in report.failed] == [str(docs / "passport.pdf")]
    assert str(docs / "passport.pdf") in report.failed[0].error
    assert (report.added, report.skipped) == (1, 2)
    after = points_of(hashed_store)
    assert set(before) <= set(after), "the PDF's stored chunks are kept"
    with pytest.raises(IngestIncomplete) as info:
        report.check()
    assert info.value.details == [report.failed[0].error]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    settings = RagSettings(engine="server", url=url, timeout_s=2, embedding={"backend": "hashed"})
    with pytest.raises(StoreUnavailable) as info:
        RagStore.open(settings)
    assert f"Qdrant server at {url}" in info.value.message and "'knowledge'" in info.value.message
    assert "SOVEREIGN_RAG_URL" in info.value.hint


def test_the_embedded_engine_held_by_another_client_is_named(tmp_path: Path, hashed_store: RagStore) -> None:
    with pytest.raises(StoreUnavailable) as info:
        RagStore.open(settings_for(tmp_path))
    assert str(tmp_path / "qdrant") in info.value.message and "one process at a time" in info.value.hint


def test_the_kit_finds_minilm_in_the_directory_downloads_fills() -> None:
    """sovereign/service/embed.py looks in <cache>/<MiniLMEmbedder.name>: the download's own directory."""
    from sovereign import downloads
    from sovereign.service.embed import MiniLMEmbedder

    assert MiniLMEmbedder.name == downloads.MINILM.name
