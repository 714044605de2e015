"""`sovereign rag ...` through typer's CliRunner against the real embedded engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import write_pdf

from sovereign.cli.main import app

RUNNER = CliRunner()


def _config(tmp_path: Path, backend: str = "hashed") -> Path:
    path = tmp_path / "rag.yaml"
    path.write_text(f"path: {tmp_path / 'qdrant'}\ncollection: notes\nembedding: {{backend: {backend}}}\n")
    return path


def _run(*args: str) -> tuple[int, str]:
    result = RUNNER.invoke(app, ["rag", *args])
    return result.exit_code, result.output


def test_ingest_search_status_as_json(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "wifi.md").write_text("The guest wifi password is on the fridge door.\n")
    write_pdf(docs / "car.pdf", [["The car's tyres want 2.4 bar at the front."]])
    cfg = str(_config(tmp_path))
    code, out = _run("ingest", str(docs), "--config", cfg, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (report["added"], report["chunks"], report["collection"]) == (2, 2, "notes")
    assert "embedded engine" in report["engine"] and report["model"] == "hashed-char-3gram"
    code, out = _run("search", "guest wifi password", "--config", cfg, "--json", "--limit", "1")
    assert code == 0, out
    [hit] = json.loads(out)
    assert hit["source"] == str(docs / "wifi.md") and set(hit) == {"chunk_id", "source", "sha256", "start",
                                                                   "end", "text", "score"}
    code, out = _run("status", "--config", cfg, "--json")
    assert code == 0, out
    status = json.loads(out)
    assert (status["collection"], status["points"], status["files"], status["model"]) == \
        ("notes", 2, 2, "hashed-char-3gram")
    code, out = _run("ingest", str(docs), "--config", cfg)
    assert code == 0 and "2 unchanged" in out, out


def test_a_broken_pdf_exits_1_naming_it_after_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("The bins go out on Tuesday night.\n")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4\nnot really")
    code, out = _run("ingest", str(docs), "--config", str(_config(tmp_path)))
    assert code == 1, out
    assert "1 added" in out and str(docs / "bad.pdf") in out and "could not be ingested" in out


def test_another_model_exits_11_naming_both(tmp_path: Path, minilm_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("The bins go out on Tuesday night.\n")
    assert _run("ingest", str(docs), "--config", str(_config(tmp_path)))[0] == 0
    code, out = _run("search", "bins", "--config", str(_config(tmp_path, "minilm")))
    assert code == 11, out
    assert "'notes'" in out and "hashed-char-3gram" in out and "all-minilm-l6-v2" in out
