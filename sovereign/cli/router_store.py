"""`sovereign router store migrate`: the router's SQLite store copied into Postgres
(sovereign/router/store/copy.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON
from sovereign.cli.render import console, err_console, guarded, print_json
from sovereign.cli.router_options import CONFIG, router_settings
from sovereign.errors import UsageError

app = typer.Typer(help="The router's store (crystals, attempts, the egress audit): SQLite by default, the "
                  "cluster's Postgres in production.", no_args_is_help=True)


class _Progress:
    """A line on stderr per table at most every `every_s` seconds, and when a table is done."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= self.every_s:
            self.last = now
            err_console.print(f"{table}: {done}/{total} rows read", markup=False, highlight=False)


@app.command("migrate")
@guarded
def migrate(
    source: Path | None = typer.Option(None, "--from", help="The SQLite store (default: the settings' "
                                       "store.path, else <state>/router.sqlite3). Opened read-only.",
                                       show_default=False),
    dsn: str | None = typer.Option(None, "--to", help="The target Postgres DSN (default: the settings' "
                                   "store.dsn, e.g. from the vault). Migrated to this code's schema first.",
                                   show_default=False),
    batch: int = typer.Option(500, "--batch-size", min=1, help="Rows per transaction."),
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """Copy every row of a SQLite store into Postgres, then compare them.

    Crystals (with their embeddings, hits and callers), attempts (with their
    labels) and the egress audit, in batches; a row the target holds already
    is not copied again, so a run that was interrupted completes when run
    again, and a second run copies nothing. Then each table's count and keys
    are compared: exit 4 naming the table when the target lacks any row. The
    source is never changed. Stop the router first, then point its settings at
    Postgres (store.backend: postgres). Example: `sovereign router store
    migrate -i none --from /var/lib/sovereign/router/router.sqlite3 --to
    postgresql://router@db:5432/router`."""
    from sovereign.router.store.copy import copy_store, open_target

    settings: Any = None
    if source is None or dsn is None:
        settings = router_settings(inventory, config)
    path = source or settings.sqlite_path()
    if dsn is None:
        if settings.store.dsn is None:
            raise UsageError("no target: --to is not given and the settings have no store.dsn",
                             hint="--to postgresql://USER@HOST:5432/DB, or set store.dsn "
                             "(SOVEREIGN_ROUTER_STORE__DSN)")
        dsn = settings.store.dsn.get_secret_value()
    target = open_target(dsn)
    try:
        report = copy_store(path, target, batch=batch, progress=_Progress())
    finally:
        target.close()
    if as_json:
        print_json(report.as_dict())
    else:
        _show(report)
    report.check()


def _show(report: Any) -> None:
    table = Table(title=f"{report.source} (schema {report.source_version}) → {report.target} "
                  f"(schema {report.target_version})", title_justify="left")
    for col in ("table", "source rows", "copied now", "there already", "target rows", "missing"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in report.tables:
        missing = f"[bold red]{t.missing}[/]" if t.missing else "0"
        table.add_row(t.table, str(t.source), str(t.copied), str(t.present), str(t.target), missing)
    console.print(table)
    if report.complete:
        console.print("[green]complete[/]: every row of the source is in the target; the source is unchanged")
