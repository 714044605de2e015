"""`sovereign status`"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, guarded, needs_provisioner, print_json
from sovereign.engine.phases import PHASES

if TYPE_CHECKING:
    from sovereign.engine.status import Cell

STYLES = {
    "applied": ("✓ applied", "green"),
    "failed": ("✗ failed", "red"),
    "running": ("… running", "cyan"),
    "interrupted": ("! interrupted", "yellow"),
    "checked": ("· checked", "blue"),
    "reset": ("–", "dim"),
    "never": ("–", "dim"),
    "not-built": ("not built", "dim"),
    "not-here": ("n/a", "dim"),
}


def _cell(cell: Cell) -> str:
    label, style = STYLES.get(cell.status, (cell.status, ""))
    extra = []
    if cell.reboot_required:
        extra.append("[yellow]reboot required[/]")
    if cell.skipped_steps:
        extra.append(f"[dim]{len(cell.skipped_steps)} simulated skips[/]")
    if cell.when and cell.status not in {"never", "not-built", "not-here"}:
        extra.append(f"[dim]{time.strftime('%Y-%m-%d %H:%M', time.localtime(cell.when))}"
                     f"{' @' + cell.git_commit if cell.git_commit else ''}[/]")
    return f"[{style}]{label}[/]" + ("\n" + "\n".join(extra) if extra else "")


@guarded
def status_cmd(inventory: Path | None = INVENTORY, as_json: bool = JSON) -> None:
    """Show the build at a glance: each phase on each host, from the ledger
    (status, when, from which commit, reboot required, steps skipped on
    simulated hardware)."""
    with needs_provisioner("status"):
        from sovereign.engine.provision import ledger
    from sovereign.engine.status import cluster_status

    result = cluster_status(inventory_path(inventory), ledger())
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    table = Table(title=f"{result.cluster} ({result.inventory})", title_justify="left",
                  show_lines=True)
    table.add_column("phase", no_wrap=True)
    for host in result.hosts:
        table.add_column(host.host)
    for i, (number, phase) in enumerate(PHASES.items()):
        table.add_row(f"{number} {phase.title}", *(_cell(h.phases[i]) for h in result.hosts))
    console.print(table)
