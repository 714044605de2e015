"""Role options as declared in `roles/*/meta/argument_specs.yml`.

The inventory check validates every role-prefixed variable against these
declarations, the same ones Ansible enforces when the role runs, so a wrong
type is reported before any host is touched and each option is declared once.
What needs a role's default (the checks' expectations) reads it here, with
`role_default`, instead of restating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from sovereign.errors import SovereignError
from sovereign.paths import project_root

_SCALARS: dict[str, Any] = {
    "str": StrictStr,
    "path": StrictStr,
    "int": StrictInt,
    "bool": StrictBool,
    "float": StrictFloat | StrictInt,
    "raw": Any,
    "dict": dict[str, Any],
}


@dataclass(frozen=True)
class RoleOption:
    name: str
    type: str = "str"
    required: bool = False
    choices: tuple[Any, ...] = ()
    elements: str | None = None
    # The declared default, when the spec gives one (has_default tells None apart).
    default: Any = None
    has_default: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this option, or None."""
        if self.type == "list":
            inner = _SCALARS.get(self.elements or "raw", Any)
            adapter: TypeAdapter[Any] = TypeAdapter(list[inner])  # type: ignore[valid-type]
        else:
            adapter = TypeAdapter(_SCALARS.get(self.type, Any))
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            want = f"list of {self.elements}" if self.type == "list" and self.elements else self.type
            return f"expected {want}, got {value!r} ({exc.errors()[0]['msg'].lower()})"
        if self.choices:
            values = value if self.type == "list" else [value]
            bad = [v for v in values if v not in self.choices]
            if bad:
                return f"{bad[0]!r} is not one of {', '.join(map(repr, self.choices))}"
        return None


@dataclass
class RoleSpec:
    name: str
    options: dict[str, RoleOption] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.name}_"


def load_role_specs(roles_dir: Path) -> dict[str, RoleSpec]:
    """Every role's `main` entry point options, keyed by role name."""
    specs: dict[str, RoleSpec] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        try:
            data = yaml.safe_load(spec_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SovereignError(f"{spec_file}: not valid YAML: {exc}",
                                 hint="fix the role's argument specification") from exc
        main = (data.get("argument_specs") or {}).get("main") or {}
        options = {
            name: RoleOption(
                name=name,
                type=str(opt.get("type", "str")),
                required=bool(opt.get("required", False)),
                choices=tuple(opt.get("choices") or ()),
                elements=opt.get("elements"),
                default=opt.get("default"),
                has_default="default" in opt,
            )
            for name, opt in (main.get("options") or {}).items()
        }
        specs[role] = RoleSpec(name=role, options=options)
    return specs


def roles_by_group(playbooks_dir: Path) -> dict[str, set[str]]:
    """Which host patterns each role is applied to, read from the playbooks."""
    applied: dict[str, set[str]] = {}
    for playbook in sorted(playbooks_dir.glob("*.yml")):
        plays = yaml.safe_load(playbook.read_text()) or []
        for play in plays if isinstance(plays, list) else []:
            if not isinstance(play, dict) or "hosts" not in play:
                continue
            hosts = play["hosts"]
            patterns = hosts if isinstance(hosts, list) else str(hosts).replace(",", ":").split(":")
            for entry in play.get("roles") or []:
                role = entry if isinstance(entry, str) else entry.get("role") or entry.get("name")
                if role:
                    applied.setdefault(str(role).split(".")[-1], set()).update(
                        p.strip() for p in patterns if p.strip()
                    )
    return applied


@cache
def _specs_of(roles_dir: Path) -> dict[str, RoleSpec]:
    return load_role_specs(roles_dir)


def role_default(option: str, roles_dir: Path | None = None) -> Any:
    """The default that a role's `meta/argument_specs.yml` declares for
    `option` (e.g. `kernel_params_iommu` → "pt"), read from the project's
    roles (`roles_dir`, default <project>/roles; SOVEREIGN_HOME moves it)."""
    where = (roles_dir or project_root() / "roles").resolve()
    for spec in _specs_of(where).values():
        declared = spec.options.get(option)
        if declared is None:
            continue
        if not declared.has_default:
            raise SovereignError(
                f"roles/{spec.name}/meta/argument_specs.yml: {option}: declares no default",
                hint="give the option a default there, or ask the inventory for it")
        return declared.default
    raise SovereignError(f"{where}: no role declares the option {option}",
                         hint="see roles/*/meta/argument_specs.yml")
