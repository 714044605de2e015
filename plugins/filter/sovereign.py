"""The roles' filters, thin adapters over the sovereign package. One place for
every role: ansible.cfg's `filter_plugins` names this directory (for the CLI's
runs, AWX and ansible-lint), molecule/base.yml's ANSIBLE_FILTER_PLUGINS for
the scenarios.

- `sovereign_plan`: the capacity plan of the play's nodes, computed by the same
  planner as `sovereign plan` (sovereign/planner), so that a layer split's
  `--tensor-split` comes from one implementation. Per model: whether it fits,
  the planner's verdict, and the split in llama-server's device order.
- `sovereign_llama_log`: llama-server's log read by the parser that reads
  capture bundles (sovereign/hw/parsers/llama_server_log.py): per device, the
  model and KV buffers, which is how a layer split shows where the layers went.
- `sovereign_router_config`: the router's configuration file, from the same
  code that reads it from an inventory (sovereign/router/config.py), without
  secrets.
- `sovereign_router_callers`: the router's managed callers file (salted
  hashes of the vault's keys, sovereign/router/callers.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ansible.errors import AnsibleFilterError

# Besides the sovereign_* variables: what the planner reads of each node.
_PLAN_VARS = ("group_names", "kernel_params_gpu_pool_gib")


def _sovereign() -> Any:
    try:
        import sovereign.errors
        import sovereign.hw.parsers.llama_server_log
        import sovereign.inventory.loader
        import sovereign.inventory.models
        import sovereign.planner
        import sovereign.router.callers
        import sovereign.router.config
    except ImportError as exc:
        raise AnsibleFilterError(
            f"the sovereign package is not importable by the controller's Python ({sys.executable}): "
            f"{exc}; run ansible-playbook from the project's virtual environment (make setup)") from exc
    return sovereign


def _filter_error(exc: Any) -> AnsibleFilterError:
    """A SovereignError as the play shows it: message, details and hint on one line."""
    return AnsibleFilterError("; ".join([exc.message, *exc.details, exc.hint or ""]).strip("; "))


def sovereign_plan(nodes: list[str], hostvars: Any) -> dict[str, dict[str, Any]]:
    """`groups['sovereign_nodes'] | sovereign_plan(hostvars)`: every model's plan, by name."""
    sv = _sovereign()
    try:
        result = sv.planner.plan(sv.inventory.loader.inventory_from_hostvars(nodes, hostvars, _PLAN_VARS))
    except sv.errors.SovereignError as exc:
        raise _filter_error(exc) from exc
    out: dict[str, dict[str, Any]] = {}
    for model in result.models:
        split = sv.planner.llama_server_split(model)
        out[model.name] = {
            "fits": model.fits,
            "verdict": model.verdict,
            "placement": model.placement,
            # As `sovereign plan` shows it: in placement order, head first.
            "plan_tensor_split": model.tensor_split,
            # As llama-server takes it: the RPC devices first, the head last.
            "device_order": split[0] if split else model.placement[:1],
            "tensor_split": split[1] if split else None,
        }
    return out


def sovereign_llama_log(text: str) -> list[dict[str, Any]]:
    """Per device of the last model load in `text`: device, endpoint, model_mib, kv_mib."""
    sv = _sovereign()
    units = sv.hw.parsers.llama_server_log.parse(text).units
    if not units:
        return []
    return [buffers.model_dump() for buffers in units[-1].buffers.values()]


def sovereign_router_config(hosts: list[str], hostvars: Any, overrides: dict[str, Any] | None = None
                            ) -> dict[str, Any]:
    """`groups['all'] | sovereign_router_config(hostvars, overrides)`: the router's settings."""
    sv = _sovereign()
    try:
        inv = sv.inventory.loader.inventory_from_hostvars(hosts, hostvars)
        return sv.router.config.deployable_config(inv, json.loads(json.dumps(overrides or {}, default=str)))
    except sv.errors.SovereignError as exc:
        raise _filter_error(exc) from exc


def sovereign_router_callers(callers: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """`router_callers | sovereign_router_callers(inventory_hostname)`: policies and salted hashes."""
    sv = _sovereign()
    try:
        return sv.router.callers.managed_entries(json.loads(json.dumps(callers or {}, default=str)), host)
    except sv.router.callers.CallerError as exc:
        raise AnsibleFilterError("; ".join([exc.message, exc.hint or ""]).strip("; ")) from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"sovereign_plan": sovereign_plan, "sovereign_llama_log": sovereign_llama_log,
                "sovereign_router_config": sovereign_router_config,
                "sovereign_router_callers": sovereign_router_callers}
