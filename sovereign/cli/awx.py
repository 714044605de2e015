"""`sovereign awx render | apply`"""

from __future__ import annotations

from pathlib import Path

import typer

from sovereign.cli.render import console, guarded, needs_provisioner
from sovereign.paths import project_root

app = typer.Typer(help="AWX as code: the project, the inventory, the credentials, one job template "
                       "per built phase (plus validate and bench) and the build workflow with its "
                       "approvals. docs/awx.md.", no_args_is_help=True)

INVENTORY = typer.Option(None, "--inventory", "-i", show_default=False,
                         help="Inventory directory that AWX syncs. Default: awx/settings.yml's "
                              "inventory (inventory/production).")


def _inventory(value: Path | None, settings_inventory: Path) -> Path:
    return value if value is not None else project_root() / settings_inventory


@app.command()
@guarded
def render(
    out: Path | None = typer.Option(None, "--out", help="Write awx.yml and awx-config.yml here "
                                    "instead of playbooks/awx.yml and awx/config.yml."),
    inventory: Path | None = INVENTORY,
) -> None:
    """Render the AWX configuration from the phase registry, the playbooks, the
    inventory and awx/settings.yml: the playbook that applies it with the awx.awx
    modules, and the same calls as a configuration file.

    Examples:

      sovereign awx render                  # refresh playbooks/awx.yml and awx/config.yml

      sovereign awx render --out /tmp/awx   # look before you commit
    """
    from sovereign.awx import model
    from sovereign.awx import render as rendering

    settings = model.load_settings()
    config = model.build(settings, _inventory(inventory, settings.inventory))
    root = project_root()
    playbook, conf = ((out / "awx.yml", out / "awx-config.yml") if out is not None
                      else (root / "playbooks" / "awx.yml", root / "awx" / "config.yml"))
    for path in rendering.write(config, playbook, conf):
        console.print(str(path))


@app.command()
@guarded
def apply(
    inventory: Path | None = INVENTORY,
    check: bool = typer.Option(False, "--check", help="Dry run: report what would change in AWX."),
    scm_url: str | None = typer.Option(None, "--scm-url", help="The address AWX clones this repository "
                                       "from. Default: awx/settings.yml, else this checkout's origin."),
    vault_password_file: Path | None = typer.Option(
        None, "--vault-password-file", help="The vault's password, for the vault credential and to open "
        "the vault. Default: $ANSIBLE_VAULT_PASSWORD_FILE.", show_default=False),
) -> None:
    """Apply the AWX configuration to the AWX at vault_awx_url with the token
    vault_awx_token (the inventory's vault), through ansible-runner and the
    awx.awx modules. Exit 3 when the vault lacks them, 7 without a vault
    password, 5 when AWX refuses a call.

    Examples:

      sovereign awx apply --vault-password-file ~/.sovereign-vault --check

      sovereign awx apply --vault-password-file ~/.sovereign-vault
    """
    with needs_provisioner("awx apply"):
        from sovereign.awx import model
        from sovereign.awx.apply import apply as run
        from sovereign.awx.apply import scm_url as resolve_scm
        from sovereign.awx.apply import vault_password_file as password_file

    settings = model.load_settings()
    result = run(_inventory(inventory, settings.inventory), settings=settings,
                 scm=resolve_scm(scm_url, settings), password_file=password_file(vault_password_file),
                 check=check)
    verb = "would change" if check else "changed"
    console.print(f"AWX configuration applied: {result.ok} ok, {result.changed} {verb} "
                  f"(artifacts: {result.artifacts})")
