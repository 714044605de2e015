"""`sovereign lab up|down|status`"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from sovereign.cli.options import JSON
from sovereign.cli.render import console, err_console, guarded, needs_provisioner, print_json
from sovereign.paths import project_root

if TYPE_CHECKING:
    from sovereign.lab.lab import LabState

app = typer.Typer(
    help="The lab: two systemd-booted nodes on this machine, reached over real SSH, standing "
         "in for mimical-1 and mimical-2 with a recorded Strix Halo hardware profile. Needs root.",
    no_args_is_help=True,
)


def _show(state: LabState, as_json: bool) -> None:
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    table = Table(title=f"lab: {'up' if state.up else 'down'}", title_justify="left")
    for col in ("node", "management", "fabric", "netns", "pid", "ssh"):
        table.add_column(col)
    for n in state.nodes:
        table.add_row(n.name, n.mgmt_ip, n.fabric_ip, n.netns if n.netns_present else "–",
                      str(n.pid or "–"), "[green]open[/]" if n.ssh else "[red]closed[/]")
    console.print(table)


@app.command()
@guarded
def up(as_json: bool = JSON) -> None:
    """Create and boot the lab's nodes (idempotent). The first run builds a
    Debian 12 root filesystem with debootstrap (about a minute, then cached)."""
    from sovereign.lab import lab

    _show(lab.up(log=lambda s: err_console.print(f"[dim]{s}[/]")), as_json)


@app.command()
@guarded
def down(as_json: bool = JSON) -> None:
    """Stop the nodes and remove everything the lab created: processes,
    mounts, links, namespaces and the nodes' files. The ledger keeps the
    lab's history, with each phase marked as reset."""
    with needs_provisioner("lab down"):
        from sovereign.engine.provision import ledger
    from sovereign.inventory import load_inventory
    from sovereign.lab import lab

    state = lab.down(log=lambda s: err_console.print(f"[dim]{s}[/]"))
    inv = load_inventory(project_root() / "inventory" / "lab")
    ledger().reset(inv.cluster_name, inv.nodes(), reason="lab down: the nodes were removed")
    _show(state, as_json)


@app.command()
@guarded
def status(as_json: bool = JSON) -> None:
    """Show whether each lab node is running and answers SSH."""
    from sovereign.lab import lab

    _show(lab.status(), as_json)


@app.command()
@guarded
def image() -> None:
    """Build (once) and print the Debian 12 root filesystem that the lab's
    nodes and the molecule scenarios' podman image are made from."""
    from sovereign.lab.rootfs import ensure_rootfs
    from sovereign.lab.system import require_root, require_tools

    require_root()
    require_tools()
    console.print(str(ensure_rootfs(lambda s: err_console.print(f"[dim]{s}[/]"))))
