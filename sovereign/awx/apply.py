"""`sovereign awx apply`: what it needs before it runs (the project's address,
the vault password, the vault's AWX variables) and the run of the rendered
playbook through the project's ansible-runner adapter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sovereign.awx import model, render
from sovereign.errors import EnvironmentProblem, InventoryError, PlaybookFailed
from sovereign.inventory.loader import VAULT_HEADER
from sovereign.paths import project_root, state_dir

VAULT_VARS = (render.URL_VAR, render.TOKEN_VAR, render.SSH_KEY_VAR)


def scm_url(given: str | None, settings: model.Settings) -> str:
    """--scm-url, else awx/settings.yml's project.scm_url, else this checkout's origin."""
    if given or settings.project.scm_url:
        return given or settings.project.scm_url
    try:
        origin = subprocess.run(["git", "-C", str(project_root()), "remote", "get-url", "origin"],
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        origin = ""
    if not origin:
        raise InventoryError(f"{model.SETTINGS}: project.scm_url: empty, and this checkout has no origin",
                             hint="set project.scm_url (the address AWX clones), or pass --scm-url")
    return origin


def vault_password_file(given: Path | None) -> Path:
    value = given or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not value:
        raise EnvironmentProblem("the vault credential needs the vault's password, and none was given",
                                 hint="pass --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE")
    path = Path(value).expanduser()
    if not path.is_file():
        raise EnvironmentProblem(f"{path}: the vault password file does not exist")
    return path.resolve()


def missing_vault_vars(inventory: Path) -> tuple[Path, list[str]]:
    """(where they belong, the AWX vault variables that no plain file of group_vars/all
    sets); nothing is missing while an encrypted file may hold them (Ansible
    opens it at run time, and the playbook's first task names what it lacks)."""
    base = inventory / "group_vars"
    files = [p for p in (base / "all.yml", base / "all.yaml") if p.is_file()]
    files += sorted((base / "all").glob("*.y*ml")) if (base / "all").is_dir() else []
    found: set[str] = set()
    for f in files:
        text = f.read_text(errors="replace")
        if text.startswith(VAULT_HEADER):
            return base / "all" / "vault.yml", []
        data = yaml.safe_load(text) or {}
        if isinstance(data, dict):
            found |= {k for k, v in data.items() if v}
    return base / "all" / "vault.yml", [v for v in VAULT_VARS if v not in found]


def _controller_inventory(inventory: Path, target: Path) -> Path:
    """localhost alone, with the inventory's group_vars (its vault among them): the
    runner limits a run to the hosts it names, and Ansible's implicit localhost
    matches no limit."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (target / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    if (inventory / "group_vars").is_dir():
        (target / "group_vars").symlink_to((inventory / "group_vars").resolve())
    return target


@dataclass(frozen=True)
class Applied:
    playbook: Path
    artifacts: Path
    changed: int
    ok: int


def apply(inventory: Path, *, settings: model.Settings, scm: str, password_file: Path,
          check: bool = False) -> Applied:
    from sovereign.engine.runner import run_playbook

    where, missing = missing_vault_vars(inventory)
    if missing:
        raise InventoryError(f"{inventory}: the AWX address, token and SSH key are not in the vault",
                             details=[f"{where}: {v}: missing" for v in missing],
                             hint=f"ansible-vault create {where} (docs/awx.md lists the keys)")
    config = model.build(settings, inventory)
    run_dir = state_dir() / "awx"
    controller = _controller_inventory(inventory, run_dir / "inventory")
    playbook = run_dir / "awx.yml"
    render.write(config, playbook, run_dir / "awx-config.yml")
    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password_file)
    extravars: dict[str, Any] = {render.SCM_URL_VAR: scm, render.VAULT_PASSWORD_FILE_VAR: str(password_file)}
    outcome = run_playbook(str(playbook), controller, ["localhost"], run_dir=run_dir, ident="awx-apply",
                           check=check, extravars=extravars)
    tally = outcome.hosts.get("localhost")
    if not outcome.ok or tally is None:
        raise PlaybookFailed("the AWX configuration was not applied",
                             details=(tally.failures if tally and tally.failures else outcome.tail()),
                             hint=f"ansible-runner's artifacts: {outcome.artifacts}")
    return Applied(playbook=playbook, artifacts=outcome.artifacts, changed=tally.changed, ok=tally.ok)
