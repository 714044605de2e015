"""`sovereign pxe render`"""

from __future__ import annotations

from pathlib import Path

import typer

from sovereign.cli.options import INVENTORY, inventory_path
from sovereign.cli.render import console, guarded, needs_provisioner

app = typer.Typer(help="Zero-touch OS install over PXE: Ubuntu autoinstall from the inventory.",
                  no_args_is_help=True)


@app.command()
@guarded
def render(
    out: Path = typer.Option(..., "--out", help="Directory to write (served over HTTP and TFTP)."),
    inventory: Path | None = INVENTORY,
    limit: str | None = typer.Option(None, "--limit", "-l", help="Only these hosts or groups."),
) -> None:
    """Render each node's autoinstall (nodes/<host>/user-data, meta-data) and its
    GRUB netboot entry (grub/grub.cfg-01-<mac>) from the inventory's
    sovereign_pxe, sovereign_pxe_mac and sovereign_pxe_disk."""
    with needs_provisioner("pxe render"):
        from sovereign import pxe
    from sovereign.inventory import load_inventory

    written = pxe.render(load_inventory(inventory_path(inventory)), out, limit)
    for path in written:
        console.print(str(path))
