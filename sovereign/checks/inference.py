"""Phase 4: the model servers run, and a layer split really reached the worker.

Both read the journal of the `sovereign-llm-*` units (llama-server started
with `-lv 4`, which logs the model and KV buffers per device)."""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts
from sovereign.hw.parsers.llama_server_log import ServerUnit

UNIT_PREFIX = "sovereign-llm-"


def unit_name(model: str) -> str:
    """The systemd unit of a model's llama-server (roles/llama_server)."""
    return f"{UNIT_PREFIX}{model}.service"


def _units(facts: Facts) -> dict[str, ServerUnit] | None:
    log = facts.get("llama-server.log")
    return None if log is None else {u.unit: u for u in log.units if u.unit}


@check("MODEL-SERVERS", "every model this node heads has an active llama-server")
def model_servers(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "MODEL-SERVERS"
    if not expect.served_models:
        return skip(check_id, "no model is placed with this node as its head")
    units = _units(facts)
    if units is None:
        return skip(check_id, facts.why_missing("llama-server.log"))
    missing = [m for m in expect.served_models if unit_name(m) not in units]
    down = [f"{m} ({units[unit_name(m)].active})" for m in expect.served_models
            if unit_name(m) in units and units[unit_name(m)].active != "active"]
    if missing or down:
        parts = ([f"no unit for {', '.join(missing)}"] if missing else []) + (
            [f"not active: {', '.join(down)}"] if down else [])
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(parts),
                           hint=f"journalctl -u '{UNIT_PREFIX}*'; run phase 4 again "
                                "(playbooks/phase-4-inference.yml)")
    return CheckResult(id=check_id, status=Status.PASS,
                       message=f"active: {', '.join(unit_name(m) for m in expect.served_models)}")


@check("RPC-SPLIT", "a split model's layers sit on the workers' RPC servers")
def rpc_split(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "RPC-SPLIT"
    if not expect.split_workers:
        return skip(check_id, "no model is split over RPC with this node as its head")
    units = _units(facts)
    if units is None:
        return skip(check_id, facts.why_missing("llama-server.log"))
    seen, wrong = [], []
    for model, workers in sorted(expect.split_workers.items()):
        unit = units.get(unit_name(model))
        remote = unit.remote_buffers() if unit else []
        on_workers = [b for b in remote if b.endpoint and b.endpoint.rsplit(":", 1)[0] in workers]
        if on_workers:
            seen.append(f"{model}: " + ", ".join(f"{b.endpoint} {b.model_mib:.1f} MiB" for b in on_workers))
        else:
            buffers = unit.buffers.values() if unit else []
            found = ", ".join(f"{b.device} {b.model_mib:.1f} MiB" for b in buffers)
            wrong.append(f"{model}: no model buffer on {', '.join(workers)} ({found or 'no buffers logged'})")
    if wrong:
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(wrong),
                           hint="the head's llama-server needs --rpc <worker fabric address>:<port> and the "
                                "worker's rpc-server reachable from the head (RPC-SPLIT reads its -lv 4 log)")
    return CheckResult(id=check_id, status=Status.PASS, message="; ".join(seen))
