"""`sovereign inventory ...`"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, err_console, guarded, print_json
from sovereign.errors import InventoryError

app = typer.Typer(help="Validate and inspect an inventory.", no_args_is_help=True)


@app.command("check")
@guarded
def check(inventory: Path | None = INVENTORY, as_json: bool = JSON) -> None:
    """Validate an inventory: types, unknown keys, required host variables,
    role options (from each role's meta/argument_specs.yml) and cross-checks
    such as a GPU pool larger than the node's RAM.

    Exit 0 when valid (warnings are printed), 3 with one `file: key: problem`
    line per problem otherwise.
    """
    from sovereign.inventory import load_inventory

    path = inventory_path(inventory)
    try:
        inv = load_inventory(path)
    except InventoryError as exc:
        if as_json:
            print_json({"inventory": str(path.resolve()), "valid": False,
                        "problems": exc.details or [exc.message]})
            raise typer.Exit(int(exc.exit_code)) from None
        raise
    if as_json:
        print_json({"inventory": str(inv.path), "valid": True, "cluster": inv.cluster_name,
                    "hosts": {n: h.groups for n, h in inv.hosts.items()}, "warnings": inv.warnings})
        return
    for warning in inv.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    nodes = inv.nodes()
    console.print(f"[green]ok[/]: {path} — cluster {inv.cluster_name}, "
                  f"{len(nodes)} node(s): {', '.join(nodes)}")
