"""Zero-touch OS install: per-node Ubuntu autoinstall and GRUB netboot files,
rendered from the inventory with the templates in templates/pxe/.

Serve the output directory over HTTP (`nodes/<host>/user-data`,
`meta-data`) and TFTP (`grub/grub.cfg-01-<mac>`); a node that PXE-boots
installs itself and reboots into a system that phase 1 reaches over SSH.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from sovereign.errors import InventoryError, SovereignError
from sovereign.inventory import Inventory
from sovereign.paths import project_root


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(project_root() / "templates" / "pxe"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,  # noqa: S701 - YAML, not HTML
    )


def render(inv: Inventory, out: Path, limit: str | None = None) -> list[Path]:
    """Write every selected node's install files under `out`; return their paths."""
    hosts = inv.nodes(limit)
    problems = []
    for name in hosts:
        node = inv.hosts[name].node
        assert node is not None
        where = inv.hosts[name].origins
        for key, value in (("sovereign_pxe", node.sovereign_pxe),
                           ("sovereign_pxe_mac", node.sovereign_pxe_mac),
                           ("sovereign_pxe_disk", node.sovereign_pxe_disk)):
            if value is None:
                problems.append(f"{where.get(key, f'host_vars/{name}.yml')}: {key}: required to "
                                f"install {name} over PXE")
    if problems:
        raise InventoryError(f"{inv.path}: the PXE path needs more of the inventory", details=problems,
                             hint="see docs/pxe.md for the keys")
    env = _environment()
    written = []
    for name in hosts:
        node = inv.hosts[name].node
        assert node is not None and node.sovereign_pxe is not None
        context = {
            "host": name, "cluster": inv.cluster_name, "pxe": node.sovereign_pxe,
            "mac": node.sovereign_pxe_mac, "disk": node.sovereign_pxe_disk,
            "address": inv.hosts[name].vars.get("ansible_host", name),
        }
        node_dir = out / "nodes" / name
        node_dir.mkdir(parents=True, exist_ok=True)
        for template, target in (("user-data.j2", node_dir / "user-data"),
                                 ("meta-data.j2", node_dir / "meta-data"),
                                 ("grub.cfg.j2", out / "grub" /
                                  f"grub.cfg-01-{str(node.sovereign_pxe_mac).replace(':', '-')}")):
            text = env.get_template(template).render(**context)
            if template != "grub.cfg.j2":
                try:
                    yaml.safe_load(text)
                except yaml.YAMLError as exc:  # a template bug, never the user's input
                    raise SovereignError(f"{template} rendered invalid YAML for {name}: {exc}") from exc
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            written.append(target)
    return written
