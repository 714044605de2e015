"""`sovereign rag ...`: the RAG store (documents split, embedded and kept in
Qdrant): ingest, search, status. docs/rag.md."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import JSON
from sovereign.cli.render import console, err_console, guarded, print_json

app = typer.Typer(help="The RAG store: the owner's documents (Markdown, text, PDF) split into chunks, "
                  "embedded with the cluster's local embedder and kept in Qdrant (the server in production, "
                  "its embedded engine in the lab). Settings: --config, else /etc/sovereign/rag.yaml, and "
                  "SOVEREIGN_RAG_* (docs/rag.md).", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", help="A YAML/JSON file of RAG settings (engine, url, api_key, path, "
                      "collection, chunking, embedding); default /etc/sovereign/rag.yaml if it exists.",
                      show_default=False)


@contextlib.contextmanager
def _store(config: Path | None) -> Iterator[Any]:
    from sovereign.rag import RagStore, rag_settings

    store = RagStore.open(rag_settings(config))
    try:
        yield store
    finally:
        store.close()


@app.command("ingest")
@guarded
def ingest_cmd(
    paths: list[Path] = typer.Argument(..., help="Files and directories (searched recursively for .md, "
                                       ".markdown, .txt and .pdf; hidden ones skipped).", show_default=False),
    config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """Split, embed and store the documents under PATHS; idempotent.

    An unchanged file (same SHA-256) is skipped, a changed one replaced (its
    new chunks written before the old are deleted), and a stored file no
    longer under any of PATHS deleted. A file that cannot be read is named
    and kept as stored; the others go on, and the command exits 1 at the end.
    Example: `sovereign rag ingest ~/notes ~/papers/attention.pdf`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sovereign.rag.ingest import ingest

    with _store(config) as store, Progress(TextColumn("{task.description}"), BarColumn(),
                                           MofNCompleteColumn(), console=err_console, transient=True,
                                           disable=not err_console.is_terminal) as bar:
        task = bar.add_task("ingesting", total=None)

        def step(path: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=escape(Path(path).name))

        report = ingest(store, paths, progress=step)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        console.print(f"{escape(report.engine)}, collection [bold]{escape(report.collection)}[/] "
                      f"({escape(report.model)})")
        console.print(f"{report.added} added, {report.replaced} replaced, {report.skipped} unchanged, "
                      f"{report.deleted} deleted, {report.empty} empty; {report.chunks} chunks written")
    report.check()


@app.command("search")
@guarded
def search_cmd(
    query: str = typer.Argument(..., help="The question or passage to look for."),
    limit: int = typer.Option(5, "--limit", "-n", min=1, max=100, help="How many chunks, best first."),
    config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """The chunks closest to QUERY (cosine similarity of their embeddings), with
    their source file and character offsets. Example: `sovereign rag search
    "what did the lease say about pets" -n 3`."""
    with _store(config) as store:
        hits = store.search(query, limit)
    if as_json:
        print_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        console.print("no chunks found (is anything ingested? sovereign rag status)")
        return
    for h in hits:
        console.print(f"[bold]{h.score:.3f}[/] {escape(h.source)} [dim][{h.start}:{h.end}][/]")
        console.print(f"  {escape(' '.join(h.text.split())[:300])}")


@app.command("status")
@guarded
def status_cmd(config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """The collection: its engine, embedding model, points and files."""
    with _store(config) as store:
        recorded = store.recorded_model()
        files = store.files()
        info = {"collection": store.collection, "engine": store.describe(), "exists": recorded is not None,
                "model": recorded[0] if recorded else store.embedder.name,
                "dim": recorded[1] if recorded else store.embedder.dim,
                "points": store.count(), "files": len(files)}
    if as_json:
        print_json(info)
        return
    table = Table(show_header=False, box=None)
    for key, value in info.items():
        table.add_row(key, escape(str(value)))
    console.print(table)
