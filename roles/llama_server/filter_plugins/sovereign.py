"""Filters of role llama_server, thin adapters over the sovereign package.

- `sovereign_plan`: the capacity plan of the play's nodes, computed by the same
  planner as `sovereign plan` (sovereign/planner), so that a layer split's
  `--tensor-split` comes from one implementation. Per model: whether it fits,
  the planner's verdict, and the split in llama-server's device order.
- `sovereign_llama_log`: llama-server's log read by the parser that reads
  capture bundles (sovereign/hw/parsers/llama_server_log.py): per device, the
  model and KV buffers, which is how a layer split shows where the layers went.
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
    except ImportError as exc:
        raise AnsibleFilterError(
            f"the sovereign package is not importable by the controller's Python ({sys.executable}): "
            f"{exc}; run ansible-playbook from the project's virtual environment (make setup)") from exc
    return sovereign


def _plain(value: Any) -> Any:
    """The play's values (tagged or unsafe strings) as plain JSON types."""
    return json.loads(json.dumps(value, default=str))


def sovereign_plan(nodes: list[str], hostvars: Any) -> dict[str, dict[str, Any]]:
    """`groups['sovereign_nodes'] | sovereign_plan(hostvars)`: every model's plan, by name."""
    sv = _sovereign()
    wanted = (*sv.inventory.models.NodeVars.model_fields, *_PLAN_VARS)
    play: dict[str, dict[str, Any]] = {}
    for name in nodes:
        known = hostvars[name]
        play[name] = _plain({key: known[key] for key in wanted if key in known})
    try:
        result = sv.planner.plan(sv.inventory.loader.inventory_from_vars(play))
    except sv.errors.SovereignError as exc:
        raise AnsibleFilterError("; ".join([exc.message, *exc.details, exc.hint or ""]).strip("; ")) from exc
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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"sovereign_plan": sovereign_plan, "sovereign_llama_log": sovereign_llama_log}
