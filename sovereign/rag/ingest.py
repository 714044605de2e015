"""Ingesting documents: load, split, embed, upsert; idempotent.

- Loaders: Markdown (`.md`, `.markdown`) and text (`.txt`) as UTF-8, PDF
  (`.pdf`) through pypdf, its pages' text joined by a blank line. A file that
  cannot be read (a broken or encrypted PDF, one without a text layer, text
  that is not UTF-8) is a failure naming the file; the run goes on with the
  others and reports it at the end, and what the store held of it is kept.
- The splitter: windows of `chunking.size` characters cut at a paragraph,
  a line, a sentence or a word when one lies in the window's second half,
  each overlapping the last by about `chunking.overlap`; every chunk keeps
  its `start` and `end` offsets in the loaded text.
- Chunk ids are uuid5(source, sha256, index): re-ingesting writes the same
  points. A file whose SHA-256 is stored whole is skipped; a changed file's
  new chunks are written first and its old version deleted after; a stored
  file that is no longer under any of the given roots is deleted.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from sovereign.errors import SovereignError
from sovereign.rag.store import RagStore, StoredFile

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".pdf": "pdf"}
NAMESPACE = uuid.UUID("5b0f3c9e-7d4a-4c1e-9a57-2f0d6c1b8e43")  # of the chunk ids; never change it
EMBED_BATCH = 64
SEPARATORS = ("\n\n", "\n", ". ", " ")


class Unreadable(SovereignError):
    """A document that cannot be read: the message names the file and why."""


class IngestIncomplete(SovereignError):
    """Some documents failed (each named); the others were ingested."""


class Failure(BaseModel):
    path: str
    error: str


class IngestReport(BaseModel):
    """What one run did: files added, replaced, skipped (unchanged), deleted, failed; chunks written."""

    collection: str
    engine: str
    model: str
    added: int = 0
    replaced: int = 0
    skipped: int = 0
    deleted: int = 0
    empty: int = 0
    chunks: int = 0
    failed: list[Failure] = []

    def check(self) -> None:
        """Raise IngestIncomplete naming every file that failed (after the report is shown)."""
        if self.failed:
            raise IngestIncomplete(
                f"{len(self.failed)} of the given documents could not be ingested; the rest were, and "
                "what the store held of these is kept",
                hint="fix or remove the files named above and run the same command again",
                details=[f.error for f in self.failed])


Progress = Callable[[str, int, int], None]  # (path, files done, files in all)


# --------------------------------------------------------------------------- loading


def load_text(path: Path) -> str:
    """The text of a document; Unreadable names the file and what is wrong."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise Unreadable(f"{path}: not a document the RAG store reads (only {', '.join(sorted(SUFFIXES))})")
    if kind == "pdf":
        return _pdf_text(path)
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise Unreadable(f"{path}: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Unreadable(f"{path}: the PDF is encrypted (decrypt it first)")
        text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except Unreadable:
        raise
    except OSError as exc:
        raise Unreadable(f"{path}: cannot read the file ({exc.strerror})") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, UnicodeError) as exc:  # pypdf's parser raises these on a broken file
        raise Unreadable(f"{path}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    if not text.strip():
        raise Unreadable(f"{path}: the PDF has no text layer (a scanned PDF needs OCR first)")
    return text


# --------------------------------------------------------------------------- splitting


def split(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk of `text`, none empty, none longer than `size`."""
    spans: list[tuple[int, int]] = []
    n, start = len(text), 0
    while True:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            return spans
        end = min(start + size, n)
        if end < n:
            window = text[start:end]
            for sep in SEPARATORS:
                cut = window.rfind(sep)
                if cut >= size // 2:
                    end = start + cut + len(sep)
                    break
        stop = end
        while stop > start and text[stop - 1].isspace():
            stop -= 1
        spans.append((start, stop))
        if end >= n:
            return spans
        nxt = end - overlap
        space = text.find(" ", nxt, end)  # begin the overlap at a word
        start = space + 1 if overlap and space != -1 else max(nxt, start + 1)


def chunk_id(source: str, sha256: str, index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{source}\0{sha256}\0{index}"))


# --------------------------------------------------------------------------- the run


def _walk(roots: list[Path], report: IngestReport) -> tuple[list[Path], list[Path]]:
    """(documents found, roots that exist) under the roots; a missing root is a failure."""
    found: dict[Path, None] = {}
    present = []
    for root in roots:
        root = root.resolve()
        if root.is_file():
            present.append(root)
            found[root] = None
        elif root.is_dir():
            present.append(root)
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).parts
                if p.is_file() and p.suffix.lower() in SUFFIXES and not any(x.startswith(".") for x in rel):
                    found[p] = None
        else:
            report.failed.append(Failure(path=str(root), error=f"{root}: no such file or directory"))
    return list(found), present


def _under(source: str, roots: list[Path]) -> bool:
    path = Path(source)
    return any(path == r or r in path.parents for r in roots)


def ingest(store: RagStore, roots: list[Path], progress: Progress | None = None) -> IngestReport:
    """Bring the collection in line with the documents under `roots`."""
    report = IngestReport(collection=store.collection, engine=store.describe(), model=store.embedder.name)
    docs, present = _walk(roots, report)
    stored = store.files()
    for done, path in enumerate(docs, 1):
        try:
            _ingest_file(store, path, stored.get(str(path), {}), report)
        except Unreadable as exc:
            report.failed.append(Failure(path=str(path), error=exc.message))
        if progress is not None:
            progress(str(path), done, len(docs))
    found = {str(p) for p in docs}  # a file that failed is found: what it had is kept
    for source in stored:
        if source not in found and _under(source, present):
            store.delete_source(source)
            report.deleted += 1
    return report


def _ingest_file(store: RagStore, path: Path, versions: dict[str, StoredFile], report: IngestReport) -> None:
    source = str(path)
    try:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise Unreadable(f"{source}: cannot read the file ({exc.strerror})") from None
    held = versions.get(sha)
    if held is not None and held.points == held.chunks and len(versions) == 1:
        report.skipped += 1
        return
    text = load_text(path)
    spans = split(text, store.settings.chunking.size, store.settings.chunking.overlap)
    if spans:
        _write(store, source, sha, text, spans)
    if versions:
        store.delete_source(source, keep_sha256=sha)  # only now that the new version is in
        report.replaced += 1
    elif spans:
        report.added += 1
    else:
        report.empty += 1
    report.chunks += len(spans)


def _write(store: RagStore, source: str, sha: str, text: str, spans: list[tuple[int, int]]) -> None:
    for first in range(0, len(spans), EMBED_BATCH):
        batch = spans[first:first + EMBED_BATCH]
        texts = [text[s:e] for s, e in batch]
        vectors = store.embedder.embed(texts)
        ids = [chunk_id(source, sha, first + i) for i in range(len(batch))]
        payloads = [{"source": source, "sha256": sha, "index": first + i, "start": s, "end": e,
                     "chunks": len(spans), "text": t}
                    for i, ((s, e), t) in enumerate(zip(batch, texts, strict=True))]
        store.upsert(ids, vectors, payloads)
