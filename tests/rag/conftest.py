"""Fixtures of the RAG store's tests: the real Qdrant embedded engine (local
mode, in a temporary directory), real PDF files, and the real all-MiniLM-L6-v2
embedder (fetched into the download cache as the router's tests do: a model
that cannot be had is a skip, which CI turns into a failure)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sovereign import downloads
from sovereign.errors import SovereignError
from sovereign.rag import RagSettings, RagStore


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    for var in list(os.environ):
        if var.startswith("SOVEREIGN_RAG_"):
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    try:
        return downloads.fetch(downloads.MINILM).parent
    except downloads.ChecksumMismatch as exc:
        pytest.fail(f"{exc.message}\nhint: {exc.hint}", pytrace=False)
    except SovereignError as exc:
        pytest.skip(f"all-MiniLM-L6-v2 unavailable: {exc.message}")


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path) -> Any:
    from sovereign.service.embed import MiniLMEmbedder

    return MiniLMEmbedder(minilm_dir)


def settings_for(tmp_path: Path, backend: str = "hashed", **more: Any) -> RagSettings:
    return RagSettings(path=tmp_path / "qdrant", embedding={"backend": backend, **more.pop("embedding", {})},
                       **more)


@pytest.fixture
def hashed_store(tmp_path: Path) -> Iterator[RagStore]:
    with RagStore.open(settings_for(tmp_path)) as store:
        yield store


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A real PDF 1.4 file, one page per list of lines (Helvetica, a text
    object per page), its cross-reference table computed from the bytes."""
    def esc(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    font = 3 + 2 * n
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>"]
    for i, lines in enumerate(pages):
        text = " ".join(f"({esc(line)}) Tj 0 -16 Td" for line in lines)
        stream = f"BT /F1 12 Tf 72 740 Td {text} ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font "
                       f"<< /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path
