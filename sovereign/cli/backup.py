"""`sovereign backup ...`: proven backups (docs/backup.md). Parse and render only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import JSON
from sovereign.cli.render import console, err_console, guarded, print_json
from sovereign.errors import SovereignError

app = typer.Typer(help="Proven backups: Postgres (a consistent dump and the event chain's head), the Qdrant "
                  "snapshots, /etc/sovereign and the phase ledger in one snapshot of restic or Kopia; "
                  "verify the repository, and prove a restore into a scratch Postgres. Settings: "
                  "/etc/sovereign/backup.yaml, --config FILE, SOVEREIGN_BACKUP_* (docs/backup.md).",
                  no_args_is_help=True)

CONFIG = typer.Option(None, "--config", help="A YAML/JSON file of backup settings (engine, repository, "
                      "password, postgres.dsn, postgres.databases, paths, keep). Default: "
                      "/etc/sovereign/backup.yaml when it exists.", show_default=False)


def _settings(config: Path | None) -> Any:
    from sovereign.backup import backup_settings

    return backup_settings(config)


def _progress(as_json: bool) -> Any:
    return None if as_json else (lambda text: err_console.print(f"[dim]… {escape(text)}[/]"))


def _fail(error: SovereignError | None, as_json: bool) -> None:
    """A failed verification or drill: with --json, its exit code alone (the JSON says why)."""
    if error is None:
        return
    if as_json:
        raise typer.Exit(int(error.exit_code))
    raise error


@app.command("run")
@guarded
def run_cmd(config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Dump every configured database (one consistent snapshot each, the chain head beside it),
    snapshot the dumps with the configured paths, then apply the keep policy. A snapshot with no
    data fails (and is dropped)."""
    from sovereign.backup.run import run_backup

    result = run_backup(_settings(config), _progress(as_json))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    snap = result.snapshot
    console.print(f"[green]snapshot {snap.short_id}[/]: {snap.files} files, {snap.bytes} bytes, "
                  f"{len(result.manifest.databases)} databases")
    for d in result.manifest.databases:
        head = f"head seq {d.head.seq} {d.head.hash}" if d.head else "no event chain"
        rows = sum(d.tables.values())
        console.print(f"  {escape(d.database)}: {rows} rows in {len(d.tables)} tables, {head}")
    for path in result.manifest.missing:
        console.print(f"  [yellow]not there, skipped[/]: {escape(path)}")


@app.command("list")
@guarded
def list_cmd(config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """The repository's backups, oldest first: id, time, tags, paths."""
    from sovereign.backup.run import list_snapshots

    found = list_snapshots(_settings(config))
    if as_json:
        print_json([s.model_dump(mode="json") for s in found])
        return
    table = Table("id", "time (UTC)", "tags", "paths", box=None)
    for s in found:
        table.add_row(s.short_id, s.time.strftime("%Y-%m-%d %H:%M:%S"), escape(", ".join(s.tags)),
                      escape(", ".join(s.paths)))
    console.print(table if found else "no backups")


@app.command("verify")
@guarded
def verify_cmd(
    read_data: float | None = typer.Option(None, "--read-data", min=0.01, max=100, help="Percent of the "
                                           "data to read back and check (default: check_read_data_percent)."),
    config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """The engine's check of the repository, and the latest snapshot holds its dumps and the
    chain head file. Zero expected files is a failure; exit 4 on any."""
    from sovereign.backup.run import verify

    result = verify(_settings(config), read_data, _progress(as_json))
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif result.ok:
        assert result.snapshot is not None
        console.print(f"[green]verified[/]: {result.check.message}; snapshot {result.snapshot.short_id} "
                      f"holds {result.files} files, the {len(result.expected_files)} expected among them")
    _fail(result.failure(), as_json)


@app.command("restore-drill")
@guarded
def restore_drill_cmd(config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Restore the latest snapshot into a scratch Postgres, compare every table's rows with the
    backup's counts and the live database, verify the restored chain against the head kept in the
    snapshot and that the live chain still holds it. Exit 4 on any difference."""
    from sovereign.backup.run import restore_drill

    result = restore_drill(_settings(config), _progress(as_json))
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        table = Table("database", "what", "backup", "restored", "live", "", box=None)
        for c in result.comparisons:
            cells = [str(v)[:16] if v is not None else "" for v in (c.backup, c.restored, c.live)]
            mark = "[green]ok[/]" if c.ok else "[red]differs[/]"
            table.add_row(escape(c.database), escape(c.what), *cells, mark)
        console.print(table)
        if result.ok:
            console.print(f"[green]restore drill passed[/]: snapshot {result.snapshot.short_id} in "
                          f"{result.duration_s:.1f}s")
    _fail(result.failure(), as_json)
