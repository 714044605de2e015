"""Options shared by several commands (one definition each)."""

from __future__ import annotations

from pathlib import Path

import typer

from sovereign.paths import default_inventory

INVENTORY = typer.Option(
    None, "--inventory", "-i",
    help="Inventory directory (hosts.yml, group_vars/, host_vars/). Default: the lab.",
    show_default=False,
)
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def inventory_path(value: Path | None) -> Path:
    return value if value is not None else default_inventory()
