"""`sovereign bench`: llama-bench on the nodes, judged against the roofline.

The measurement runs as a playbook (playbooks/bench.yml) through the same
runner as the phases, so AWX runs the same job; this module reads what it
fetched, sets each generation figure beside the decode roofline (memory
bandwidth ÷ bytes of weights read per token) and keeps it in the ledger.

The roofline's bandwidth: on real hardware the inventory's
`memory_bandwidth_gbps`; on simulated hardware the node's own measurement
(sovereign/hw/membw.py, memcpy over every CPU), since the inventory's figure
describes silicon the lab does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from sovereign.engine.ledger import Ledger
from sovereign.engine.phases import PHASES
from sovereign.engine.provision import (
    NullReporter,
    Reporter,
    ledger,
    new_run_id,
    playbook_failures,
    raise_if_unreachable,
)
from sovereign.engine.runner import run_playbook
from sovereign.errors import ChecksFailed, PlaybookFailed, SovereignError
from sovereign.hw.parsers.llama_bench import parse as parse_llama_bench
from sovereign.inventory import Inventory, load_inventory
from sovereign.inventory.models import ModelSpec
from sovereign.paths import state_dir
from sovereign.planner.capacity import bytes_per_token, decode_tps
from sovereign.planner.quant import bits_per_weight


class BenchResult(BaseModel):
    host: str
    model: str
    prompt_tps: float | None
    gen_tps: float | None
    gen_stddev: float | None
    bandwidth_gbps: float
    bandwidth_source: str  # "measured (memcpy)" or "inventory"
    roofline_tps: float
    ratio: float | None  # gen_tps / roofline_tps
    min_tps: float | None
    below_min: bool
    backend: str | None
    build: str | None


class BenchReport(BaseModel):
    run_id: str
    run_dir: str
    results: list[BenchResult]
    # Models that were asked for but not benchmarked, with the reason.
    skipped: list[str]


def _roster(inv: Inventory) -> dict[str, ModelSpec]:
    for host in inv.hosts.values():
        if host.node is not None:
            return {m.name: m for m in host.node.sovereign_models}
    return {}


def _single_node(spec: ModelSpec) -> bool:
    return spec.enabled and len(spec.placement) == 1


def select(inv: Inventory, hosts: list[str], model: str | None) -> tuple[list[str], list[str]]:
    """The hosts to run on and the reasons for models left out."""
    roster = _roster(inv)
    if model is not None and model not in roster:
        raise SovereignError(f"there is no model {model!r} in sovereign_models",
                             hint=f"models: {', '.join(roster) or 'none'}")
    wanted = [roster[model]] if model else list(roster.values())
    skipped = []
    for spec in wanted:
        if not spec.enabled:
            skipped.append(f"{spec.name}: disabled in the inventory")
        elif len(spec.placement) > 1:
            skipped.append(f"{spec.name}: a layer split over {', '.join(spec.placement)}; each RPC "
                           "server serves one client at a time and the head's llama-server holds it")
    targets = [h for h in hosts if any(_single_node(s) and s.placement[0] == h for s in wanted)]
    return targets, skipped


def judge(inv: Inventory, host: str, bench_text: str, membw: dict | None) -> list[BenchResult]:
    """Set each model's llama-bench figures beside its roofline on `host`."""
    roster = _roster(inv)
    node = inv.hosts[host].node
    parsed = parse_llama_bench(bench_text)
    if membw is not None:
        bandwidth, source = float(membw["copy_gbps"]), "measured (memcpy)"
    elif node is not None:
        bandwidth, source = float(node.sovereign_hardware.memory_bandwidth_gbps), "inventory"
    else:
        raise SovereignError(f"{host} is not a node of the inventory")
    out = []
    for name in dict.fromkeys(r.label for r in parsed.rows if r.label):
        spec = roster.get(name)
        if spec is None:
            continue
        rows = [r for r in parsed.rows if r.label == name]
        pp = max((r for r in rows if r.test.startswith("pp")), key=lambda r: r.tokens_per_s, default=None)
        tg = max((r for r in rows if r.test.startswith("tg")), key=lambda r: r.tokens_per_s, default=None)
        bits, _ = bits_per_weight(spec)
        roofline = decode_tps(bytes_per_token(spec.params_active_b, bits), [(1.0, bandwidth)])
        gen = tg.tokens_per_s if tg else None
        floor = float(spec.min_tps) if spec.min_tps is not None else None
        out.append(BenchResult(
            host=host, model=name, prompt_tps=pp.tokens_per_s if pp else None, gen_tps=gen,
            gen_stddev=tg.stddev if tg else None, bandwidth_gbps=round(bandwidth, 2),
            bandwidth_source=source, roofline_tps=round(roofline, 2),
            ratio=round(gen / roofline, 3) if gen else None, min_tps=floor,
            below_min=bool(floor is not None and (gen or 0.0) < floor),
            backend=(tg or pp).backend if (tg or pp) else None, build=parsed.build))
    return out


def record(book: Ledger, run_id: str, cluster: str, results: list[BenchResult]) -> None:
    for r in results:
        book.add_benchmark(run_id=run_id, cluster=cluster, **r.model_dump())


def bench(inventory: Path | str, *, host: str | None = None, model: str | None = None,
          repetitions: int = 3, reporter: Reporter | None = None) -> BenchReport:
    reporter = reporter or NullReporter()
    inv = load_inventory(inventory)
    hosts = inv.nodes(host)
    if not hosts:
        raise SovereignError(f"no node matches --host {host!r}")
    targets, skipped = select(inv, hosts, model)
    run_id = new_run_id()
    run_dir = state_dir() / "runs" / run_id
    report = BenchReport(run_id=run_id, run_dir=str(run_dir), results=[], skipped=skipped)
    if not targets:
        return report
    out = run_dir / "bench"
    phase = PHASES[4]
    reporter.stage(phase, "bench", targets)
    outcome = run_playbook("bench.yml", inv.path, targets, run_dir=run_dir, ident="bench",
                           extravars={"sovereign_bench_out": str(out),
                                      "sovereign_bench_models": [model] if model else [],
                                      "sovereign_bench_repetitions": repetitions},
                           progress=reporter.task)
    reporter.stage_done(phase, "bench")
    raise_if_unreachable(inv, outcome.hosts)
    if not outcome.ok:
        raise PlaybookFailed("the benchmark failed", hint=f"run artifacts: {outcome.artifacts}",
                             details=playbook_failures(outcome))
    for h in targets:
        text_file, membw_file = out / h / "llama-bench.txt", out / h / "membw.json"
        if not text_file.is_file():
            continue
        membw = json.loads(membw_file.read_text()) if membw_file.is_file() else None
        report.results.extend(judge(inv, h, text_file.read_text(), membw))
    record(ledger(), run_id, inv.cluster_name, report.results)
    return report


def raise_if_below(report: BenchReport) -> None:
    slow = [r for r in report.results if r.below_min]
    if slow:
        raise ChecksFailed(
            "generation below the inventory's min_tps: "
            + "; ".join(f"{r.host}/{r.model} {r.gen_tps or 0:.1f} < {r.min_tps:g} tok/s" for r in slow),
            hint="check the GPU pool (GTT-SIZE), -ngl and the threads; the roofline column is the bound")
