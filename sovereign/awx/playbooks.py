"""What a playbook brings with it: the playbooks it imports, the roles it runs
(and the roles those include), and whether it reads a variable. The AWX model
asks this of each job template's playbook: which role options gate a step
that reboots, reimages or erases, and whether a survey variable is read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sovereign.errors import SovereignError
from sovereign.paths import project_root

# A role option with one of these endings allows its role to reboot, reimage
# or erase a node; the workflow puts an approval node before the job that sets it.
GATE_SUFFIXES = ("_reboot_ok", "_reimage_ok", "_erase_ok")
_ROLE_MODULES = ("include_role", "import_role", "ansible.builtin.include_role",
                 "ansible.builtin.import_role")
_IMPORT_PLAYBOOK = ("import_playbook", "ansible.builtin.import_playbook")


@dataclass(frozen=True)
class PlaybookScan:
    playbook: Path
    files: tuple[Path, ...]
    roles: tuple[str, ...]

    def reads(self, variable: str) -> bool:
        """Whether any file of the playbook or of its roles names `variable`."""
        word = re.compile(rf"(?<![\w.]){re.escape(variable)}(?!\w)")
        return any(word.search(f.read_text(errors="replace")) for f in self.files)


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SovereignError(f"{path}: cannot be read as YAML: {exc}") from exc


def _role_refs(node: Any) -> list[str]:
    """Role names in plays' `roles:` and in include_role/import_role tasks, anywhere below `node`."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "roles" and isinstance(value, list):
                found += [r if isinstance(r, str) else str(r.get("role", r.get("name", "")))
                          for r in value]
            elif key in _ROLE_MODULES and isinstance(value, dict) and "name" in value:
                found.append(str(value["name"]))
            else:
                found += _role_refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _role_refs(item)
    return [name for name in found if name]


def _imports(data: Any) -> list[str]:
    plays = data if isinstance(data, list) else []
    return [str(play[key]) for play in plays if isinstance(play, dict)
            for key in _IMPORT_PLAYBOOK if key in play]


@cache
def scan(playbook: str, root: Path | None = None) -> PlaybookScan:
    """`playbook` relative to playbooks/ (as the phase registry names it)."""
    base = root or project_root()
    playbooks, roles_dir = base / "playbooks", base / "roles"
    files: list[Path] = []
    roles: list[str] = []
    pending = [playbooks / playbook]
    while pending:
        path = pending.pop()
        if path in files:
            continue
        if not path.is_file():
            raise SovereignError(f"{path} does not exist",
                                 hint="a job template's playbook must be in playbooks/")
        files.append(path)
        data = _load(path)
        pending += [path.parent / name for name in _imports(data)]
        roles += _role_refs(data)
    seen: list[str] = []
    while roles:
        name = roles.pop()
        if name in seen:
            continue
        seen.append(name)
        role_dir = roles_dir / name
        if not role_dir.is_dir():
            raise SovereignError(f"playbooks/{playbook}: role {name} is not under {roles_dir}")
        for f in sorted(role_dir.rglob("*.yml")) + sorted(role_dir.rglob("*.j2")):
            files.append(f)
            if f.suffix == ".yml":
                roles += _role_refs(_load(f))
    return PlaybookScan(playbook=playbooks / playbook, files=tuple(files), roles=tuple(sorted(seen)))


def gate_options(playbook: str, root: Path | None = None) -> dict[str, str]:
    """The gate options of a playbook's roles (`kernel_params_reboot_ok`), each with
    its description from the role's meta/argument_specs.yml."""
    base = root or project_root()
    out: dict[str, str] = {}
    for role in scan(playbook, base).roles:
        spec_file = base / "roles" / role / "meta" / "argument_specs.yml"
        if not spec_file.is_file():
            continue
        specs = (_load(spec_file) or {}).get("argument_specs") or {}
        for entry in specs.values():
            for name, option in (entry.get("options") or {}).items():
                if name.endswith(GATE_SUFFIXES):
                    text = option.get("description", name)
                    out[name] = " ".join(text) if isinstance(text, list) else str(text)
    return out
