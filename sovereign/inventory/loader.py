"""Load and validate an inventory directory.

An inventory is the Ansible layout: `hosts.yml`, `group_vars/<group>.yml` (or
`group_vars/<group>/*.yml`), `host_vars/<host>.yml`. Every problem is reported
as `file: key: what is wrong`, all of them at once, so one run of
`sovereign inventory check` shows everything to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sovereign.errors import InventoryError, validation_details
from sovereign.inventory.argspecs import RoleSpec, load_role_specs, roles_by_group
from sovereign.inventory.models import ANSIBLE_CONNECTION_VARS, PAGES_PER_GIB, NodeVars
from sovereign.paths import project_root

NODE_GROUP = "sovereign_nodes"
VAULT_HEADER = "$ANSIBLE_VAULT"
# Variables holding secrets (vault files, or plain in the lab): not validated.
VAULT_PREFIX = "vault_"
# Keys an older inventory may still hold, each with what replaces it, so that
# the user is told what to do rather than "unknown key". `{value}` is the old value.
REMOVED_KEYS: dict[tuple[str, str], str] = {
    ("sovereign_memory_pool", "gpu_pool_gib"):
        "removed: the GPU pool is kernel_params_gpu_pool_gib alone (the kernel_params role's "
        "option, which Ansible enforces); delete this key and set "
        "kernel_params_gpu_pool_gib: {value} for the nodes (group_vars/sovereign_nodes.yml)",
}


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class Host(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    groups: list[str]
    vars: dict[str, Any]
    origins: dict[str, str]
    node: NodeVars | None = None


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    cluster_name: str
    hosts: dict[str, Host]
    warnings: list[str] = []

    @property
    def simulated(self) -> bool:
        return any(h.node and h.node.sovereign_simulated_hardware for h in self.hosts.values())

    def fabric_addresses(self) -> dict[str, str]:
        """Node name → its address on the fabric link."""
        return {n: str(h.node.sovereign_fabric_address) for n, h in self.hosts.items()
                if h.node is not None}

    def nodes(self, limit: str | None = None) -> list[str]:
        """Node names in inventory order, restricted by a `--limit` expression
        (comma-separated host or group names)."""
        names = [n for n, h in self.hosts.items() if NODE_GROUP in h.groups]
        if not limit:
            return names
        wanted = {p.strip() for p in limit.replace(":", ",").split(",") if p.strip()}
        unknown = {
            w for w in wanted if w not in self.hosts and not any(w in h.groups for h in self.hosts.values())
        }
        if unknown:
            raise InventoryError(
                f"--limit names {', '.join(sorted(unknown))}, not a host or group of {self.path}",
                hint=f"hosts here: {', '.join(names)}",
            )
        return [n for n in names if n in wanted or wanted & set(self.hosts[n].groups)]


@dataclass
class _Collector:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        """A file's name as the user would type it: relative to the working
        directory when inside it, absolute otherwise."""
        resolved = path.resolve()
        cwd = Path.cwd()
        return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(resolved)

    def error(self, path: Path | str, key: str, message: str) -> None:
        self.problems.append(Problem(self.rel(path) if isinstance(path, Path) else path, key, message))

    def warn(self, path: Path | str, key: str, message: str) -> None:
        self.warnings.append(Problem(self.rel(path) if isinstance(path, Path) else path, key, message))


class Vaulted(str):
    """A value encrypted with `ansible-vault encrypt_string` (`!vault |`): its
    ciphertext, opaque here; Ansible decrypts it at run time."""


class _InventoryLoader(yaml.SafeLoader):
    """YAML as Ansible reads an inventory: safe, plus `!vault` values (the form
    AWX can read, where a whole encrypted file it cannot)."""


_InventoryLoader.add_constructor(
    "!vault", lambda loader, node: Vaulted(loader.construct_scalar(node)))  # type: ignore[arg-type]


def _read_yaml(path: Path, out: _Collector) -> Any:
    text = path.read_text()
    if text.lstrip().startswith(VAULT_HEADER):
        out.warn(path, "*", "encrypted with ansible-vault; its keys are not validated here")
        return None
    try:
        return yaml.load(text, Loader=_InventoryLoader)  # noqa: S506 (a SafeLoader with one more tag)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        out.error(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return None


def _walk_groups(
    name: str, body: Any, parents: list[str], hosts_file: Path, out: _Collector,
    membership: dict[str, list[str]], depth: dict[str, int], inline: dict[str, dict[str, Any]],
) -> None:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        out.error(hosts_file, name, "a group must be a mapping with hosts, children or vars")
        return
    for key in body:
        if key not in {"hosts", "children", "vars"}:
            out.error(hosts_file, f"{name}.{key}", "unknown key (a group holds hosts, children, vars)")
    lineage = [*parents, name]
    depth[name] = max(depth.get(name, 0), len(parents))
    if isinstance(body.get("vars"), dict):
        inline[f"group:{name}"] = body["vars"]
    for host, hvars in (body.get("hosts") or {}).items():
        groups = membership.setdefault(str(host), [])
        groups.extend(g for g in lineage if g not in groups)
        if isinstance(hvars, dict) and hvars:
            inline.setdefault(f"host:{host}", {}).update(hvars)
    for child, child_body in (body.get("children") or {}).items():
        _walk_groups(str(child), child_body, lineage, hosts_file, out, membership, depth, inline)


def _read_vars(path: Path, specs: dict[str, RoleSpec], out: _Collector) -> dict[str, Any]:
    """A vars file's mapping, each non-`sovereign_*` key validated once."""
    content = _read_yaml(path, out)
    if content is None:
        return {}
    if not isinstance(content, dict):
        out.error(path, "*", "a vars file must be a mapping of variable names to values")
        return {}
    for key, value in content.items():
        _classify_key(str(key), value, path, specs, out)
    return content


def _removed(key: str, value: Any) -> list[tuple[str, str]]:
    """(dotted key, what to do instead) for each removed key that `key: value` holds."""
    if not isinstance(value, dict):
        return []
    return [(f"{top}.{sub}", message.format(value=value[sub]))
            for (top, sub), message in REMOVED_KEYS.items() if top == key and sub in value]


def _without_removed(variables: dict[str, Any]) -> dict[str, Any]:
    """`variables` less the removed keys (reported on their own), for validation."""
    out = dict(variables)
    for top, sub in REMOVED_KEYS:
        if isinstance(out.get(top), dict) and sub in out[top]:
            out[top] = {k: v for k, v in out[top].items() if k != sub}
    return out


def _var_files(base: Path, name: str) -> list[Path]:
    single = [base / f"{name}{ext}" for ext in (".yml", ".yaml") if (base / f"{name}{ext}").is_file()]
    folder = base / name
    many = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []
    return single + many


def _secret_ok(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())
    return isinstance(value, str) and bool(value)


def _classify_key(
    key: str, value: Any, path: Path, specs: dict[str, RoleSpec], out: _Collector
) -> None:
    """Validate a single variable that is not a `sovereign_*` one, and report
    the removed keys a `sovereign_*` one holds."""
    for dotted, message in _removed(key, value):
        out.error(path, dotted, message)
    if key in ANSIBLE_CONNECTION_VARS or key.startswith("sovereign_"):
        return
    if key.startswith(VAULT_PREFIX):
        # A secret, by convention kept in an ansible-vault file and referenced
        # by a role option ("{{ vault_llama_api_key }}"); its value is opaque:
        # a string, or a mapping of names to strings (vault_postgres_passwords).
        if not _secret_ok(value):
            out.error(path, key, "a vault_* secret must be a non-empty string, or a mapping of names to them")
        return
    for spec in specs.values():
        if key.startswith(spec.prefix):
            option = spec.options.get(key)
            if option is None:
                out.error(path, key, f"not an option of role {spec.name} "
                          f"(see roles/{spec.name}/meta/argument_specs.yml)")
            elif (why := option.problem(value)) is not None:
                out.error(path, key, why)
            return
    if key.startswith("ansible_"):
        out.error(path, key, "unknown Ansible connection variable")
    else:
        out.error(path, key, "unknown key (not a sovereign_* variable nor an option of any role)")


def _pydantic_problems(
    exc: ValidationError, origins: dict[str, str], host_file: str, out: _Collector
) -> None:
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        top = loc[0] if loc else "?"
        file = origins.get(top, host_file)
        message = err["msg"]
        if err["type"] == "missing":
            message = "required for every node; set it here"
        elif err["type"] == "extra_forbidden":
            message = "unknown key"
        out.error(file, ".".join(loc), message)


def _cross_checks(name: str, merged: dict[str, Any], node: NodeVars, origins: dict[str, str],
                  host_file: str, hosts: set[str], out: _Collector) -> None:
    ram = node.sovereign_hardware.memory_gib
    pool = merged.get("kernel_params_gpu_pool_gib")
    if isinstance(pool, int):
        where = origins.get("kernel_params_gpu_pool_gib", host_file)
        pages = pool * PAGES_PER_GIB
        if pool > ram:
            out.error(where, "kernel_params_gpu_pool_gib",
                      f"{pool} GiB (ttm.pages_limit={pages}) exceeds {name}'s {ram} GiB of RAM")
        elif node.sovereign_memory_pool and pool > ram - node.sovereign_memory_pool.os_reserve_gib:
            out.warn(where, "kernel_params_gpu_pool_gib",
                     f"{pool} GiB leaves {name} less than its "
                     f"{node.sovereign_memory_pool.os_reserve_gib} GiB OS reserve")
    gtt = merged.get("kernel_params_amdgpu_gttsize_mib")
    if isinstance(gtt, int) and gtt:
        where = origins.get("kernel_params_amdgpu_gttsize_mib", host_file)
        out.warn(where, "kernel_params_amdgpu_gttsize_mib",
                 "amdgpu.gttsize is deprecated (the kernel warns); the pool is ttm.pages_limit")
        if isinstance(pool, int) and gtt != pool * 1024:
            out.warn(where, "kernel_params_amdgpu_gttsize_mib",
                     f"{gtt} MiB disagrees with kernel_params_gpu_pool_gib={pool} ({pool * 1024} MiB)")
    fabric = node.sovereign_fabric
    if node.sovereign_fabric_address not in fabric.subnet:
        out.error(origins.get("sovereign_fabric_address", host_file), "sovereign_fabric_address",
                  f"{node.sovereign_fabric_address} is outside the fabric subnet {fabric.subnet}")
    roster = {m.name for m in node.sovereign_models}
    for i, model in enumerate(node.sovereign_models):
        for target in model.placement:
            if target not in hosts:
                out.error(origins.get("sovereign_models", host_file),
                          f"sovereign_models.{i}.placement", f"{target!r} is not a host of this inventory")
    ports: dict[tuple[str, int], str] = {}
    for i, model in enumerate(node.sovereign_models):
        if not model.enabled or model.port is None:
            continue
        where = origins.get("sovereign_models", host_file)
        clash = ports.setdefault((model.head, model.port), model.name)
        if clash != model.name:
            out.error(where, f"sovereign_models.{i}.port",
                      f"{model.port} is already {clash!r}'s port on {model.head}; "
                      "give each model of a head its own port")
        elif model.port == node.sovereign_rpc_port:
            out.error(where, f"sovereign_models.{i}.port",
                      f"{model.port} is the rpc-server's port (sovereign_rpc_port); choose another")
    for i, tier in enumerate(node.sovereign_router_tiers):
        if tier.model and tier.model not in roster:
            out.error(origins.get("sovereign_router_tiers", host_file),
                      f"sovereign_router_tiers.{i}.model", f"{tier.model!r} is not in sovereign_models")


def inventory_from_vars(hostvars: dict[str, dict[str, Any]], path: Path | str = "<play>") -> Inventory:
    """An Inventory of hosts as a running play sees them: each host's merged
    variables, with `group_names`. The `sovereign_*` ones are validated as
    load_inventory does; the roles' filter plugins plan with it, so that the
    play and `sovereign plan` share one implementation."""
    hosts: dict[str, Host] = {}
    problems: list[str] = []
    for name, merged in hostvars.items():
        groups = ["all", *[str(g) for g in merged.get("group_names", [])]]
        node = None
        if NODE_GROUP in groups:
            sovereign = {k: merged[k] for k in NodeVars.model_fields if k in merged}
            problems += [f"{name}: {dotted}: {message}"
                         for key, value in sovereign.items() for dotted, message in _removed(key, value)]
            try:
                node = NodeVars.model_validate(_without_removed(sovereign))
            except ValidationError as exc:
                problems += validation_details(exc, name)
        hosts[name] = Host(name=name, groups=groups, vars=dict(merged), origins={}, node=node)
    if problems:
        raise InventoryError("the play's sovereign_* variables are not valid",
                             hint="`sovereign inventory check -i DIR` shows where each is set",
                             details=problems)
    cluster = next((h.node.sovereign_cluster_name for h in hosts.values() if h.node), "?")
    return Inventory(path=Path(path), cluster_name=cluster, hosts=hosts)


def inventory_from_hostvars(names: list[str], hostvars: Any, extra: tuple[str, ...] = ()) -> Inventory:
    """inventory_from_vars over a play's `hostvars` (lazy, tagged values): for
    each host, its `sovereign_*` variables, `group_names`, `ansible_host` and
    the `extra` ones, as plain JSON types. The roles' filter plugins call it."""
    wanted = (*NodeVars.model_fields, "group_names", "ansible_host", *extra)
    play: dict[str, dict[str, Any]] = {}
    for name in names:
        known = hostvars[name]
        picked = {key: known[key] for key in wanted if key in known}
        play[name] = json.loads(json.dumps(picked, default=str))
    return inventory_from_vars(play)


def load_inventory(path: Path | str) -> Inventory:
    """Load, merge and validate an inventory; raise InventoryError listing every problem."""
    root = Path(path)
    out = _Collector(root=root.resolve())
    if not root.is_dir():
        raise InventoryError(f"{root}: not an inventory directory",
                             hint="pass -i with a directory holding hosts.yml (e.g. inventory/lab)")
    hosts_file = next((root / n for n in ("hosts.yml", "hosts.yaml") if (root / n).is_file()), None)
    if hosts_file is None:
        raise InventoryError(f"{root}: no hosts.yml", hint="an inventory directory holds hosts.yml")
    data = _read_yaml(hosts_file, out)
    membership: dict[str, list[str]] = {}
    depth: dict[str, int] = {}
    inline: dict[str, dict[str, Any]] = {}
    if isinstance(data, dict) and isinstance(data.get("all"), dict):
        _walk_groups("all", data["all"], [], hosts_file, out, membership, depth, inline)
    elif not out.problems:
        out.error(hosts_file, "all", "the top level must be the `all` group")
    if out.problems:
        raise InventoryError(f"{root}: the inventory is not valid",
                             details=[str(p) for p in out.problems])

    home = project_root()
    specs = load_role_specs(home / "roles")
    applied = roles_by_group(home / "playbooks")
    for content in inline.values():
        for key, value in content.items():
            _classify_key(str(key), value, hosts_file, specs, out)
    hosts: dict[str, Host] = {}
    # Layers in Ansible's precedence order: `all`, then groups by depth, then host.
    layers: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for group in sorted(depth, key=lambda g: (depth[g], g)):
        files = [(hosts_file, inline[f"group:{group}"])] if f"group:{group}" in inline else []
        files += [(f, _read_vars(f, specs, out)) for f in _var_files(root / "group_vars", group)]
        layers[group] = files
    for folder, known, what in (("group_vars", depth, "group"), ("host_vars", membership, "host")):
        for f in sorted((root / folder).glob("*")):
            name = f.name if f.is_dir() else f.stem
            if (f.is_dir() or f.suffix in {".yml", ".yaml"}) and name not in known:
                out.error(f, "*", f"no {what} named {name!r} in {hosts_file.name}")

    for name, groups in membership.items():
        ordered = sorted(groups, key=lambda g: (depth[g], g))
        host_files = [(hosts_file, inline[f"host:{name}"])] if f"host:{name}" in inline else []
        host_files += [(f, _read_vars(f, specs, out)) for f in _var_files(root / "host_vars", name)]
        merged: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for source, content in [*(lf for g in ordered for lf in layers[g]), *host_files]:
            for key, value in content.items():
                merged[str(key)] = value
                origins[str(key)] = out.rel(source)
        host_file = out.rel(root / "host_vars" / f"{name}.yml")
        node = None
        if NODE_GROUP in groups:
            for role, patterns in applied.items():
                if role in specs and (patterns & {*groups, name}):
                    for option in specs[role].options.values():
                        if option.required and option.name not in merged:
                            out.error(host_file, option.name,
                                      f"required by role {role}; set it for {name}")
            sovereign = {k: v for k, v in merged.items() if k.startswith("sovereign_")}
            try:
                # A removed key was reported with its file when the file was read.
                node = NodeVars.model_validate(_without_removed(sovereign))
            except ValidationError as exc:
                _pydantic_problems(exc, origins, host_file, out)
        hosts[name] = Host(name=name, groups=ordered, vars=merged, origins=origins, node=node)

    names = set(hosts)
    for name, host in hosts.items():
        if host.node is not None:
            _cross_checks(name, host.vars, host.node, host.origins,
                          out.rel(root / "host_vars" / f"{name}.yml"), names, out)
    # A problem in a group's file is found once per host that inherits it.
    problems = list(dict.fromkeys(str(p) for p in out.problems))
    if problems:
        raise InventoryError(
            f"{root}: {len(problems)} problem(s) in the inventory",
            hint="fix each `file: key` above; `sovereign inventory check -i DIR` re-checks",
            details=problems,
        )
    cluster = next((h.node.sovereign_cluster_name for h in hosts.values() if h.node), root.name)
    return Inventory(path=root.resolve(), cluster_name=cluster, hosts=hosts,
                     warnings=sorted({str(w) for w in out.warnings}))
