"""`sovereign plan`: does every model fit, and how fast can it decode at best?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, err_console, guarded, print_json

if TYPE_CHECKING:
    from sovereign.planner import ClusterPlan, ModelPlan

HELP = """Size every model of the inventory's roster against the nodes' GPU pools,
and bound its decode speed by memory bandwidth.

Per node: the pool (kernel_params_gpu_pool_gib), a headroom for compute buffers,
the always-warm models resident together, and what is left. Per model (disabled
ones too, which never block): weights + KV cache at its context on its
placement; a multi-node placement is a llama.cpp RPC layer split (not tensor
parallel) with --tensor-split ratios from free memory; the decode roofline at
peak and typically measured bandwidth beside the claimed tokens/s.

Exit 0 when every enabled model fits, 10 when one does not (each is named with
its numbers), 3 when the inventory is invalid.
"""


def _claimed(m: ModelPlan) -> str:
    r = m.roofline
    if not r.claimed_tps:
        return "[dim]–[/]"
    low, high = min(r.claimed_tps), max(r.claimed_tps)
    span = f"{low:g}–{high:g}" if low != high else f"{high:g}"
    if r.claim == "above roofline":
        return f"[red]{span}\nclaimed above the roofline ({r.claimed_over_roofline:.2f}×)[/]"
    if r.claim == "above measured":
        return f"[yellow]{span}\nabove the measured roofline[/]"
    return span


def _fits(m: ModelPlan) -> str:
    if m.fits:
        return "[green]fits[/]"
    return "[dim]refused (disabled)[/]" if not m.enabled else "[bold red]refused[/]"


def _split(m: ModelPlan) -> str:
    from sovereign.planner.capacity import fmt_gib

    if m.tensor_split is None:
        return "[dim]–[/]"
    lines = [m.tensor_split]
    for s in m.shares:
        layers = f", {s.layers} layers" if s.layers is not None else ""
        lines.append(f"{s.node}: {fmt_gib(s.need_gib)} GiB{layers}")
    return "\n".join(lines)


def _models_table(result: ClusterPlan) -> Table:
    from sovereign.planner.capacity import fmt_gib

    table = Table(title=f"models — {result.cluster} ({result.inventory})", title_justify="left",
                  show_lines=True)
    table.add_column("model", no_wrap=True)
    table.add_column("placement", no_wrap=True)
    for column in ("weights", "KV @ context", "need / free", "fits?", "layer split",
                   "roofline tok/s\npeak / measured", "claimed tok/s"):
        table.add_column(column, overflow="fold")
    for m in result.models:
        name = escape(m.name) + ("\n[cyan]always warm[/]" if m.always_warm else "")
        name += "" if m.enabled else "\n[dim]disabled[/]"
        placement = "\n".join(m.placement) + ("\n(layer split)" if m.mode == "layer split" else "")
        r = m.roofline
        bits = f"{r.bits_per_weight:.2f} b/w" + (" [yellow](estimated)[/]"
                                                  if r.bits_source == "estimated" else "")
        weights = f"{fmt_gib(m.weights_gib)} GiB\n{escape(m.quantization)} {bits}"
        kv = (f"{fmt_gib(m.kv_gib)} GiB @ {m.context}\n({m.kv_cache_type})"
              if m.kv_source != "unknown" else f"[yellow]KV cache unknown[/]\n@ {m.context}")
        table.add_row(name, escape(placement), weights, kv,
                      f"{fmt_gib(m.need_gib)} / {fmt_gib(m.free_gib)} GiB", _fits(m), _split(m),
                      f"{r.peak_tps:.1f} / {r.measured_tps:.1f}", _claimed(m))
    return table


def _nodes_table(result: ClusterPlan) -> Table:
    from sovereign.planner.capacity import fmt_gib

    table = Table(title="nodes", title_justify="left")
    for column in ("node", "GPU pool", "always-warm resident", "headroom", "free (on demand)",
                   "bandwidth peak / measured"):
        table.add_column(column, overflow="fold")
    for n in result.nodes:
        warm = (f"{fmt_gib(n.always_warm_gib)} GiB ({', '.join(n.always_warm)})"
                if n.always_warm else "–")
        warm = escape(warm) if n.always_warm_fits else f"[bold red]{escape(warm)}: overflows[/]"
        table.add_row(n.name, f"{fmt_gib(n.pool_gib)} GiB", warm, f"{fmt_gib(n.headroom_gib)} GiB",
                      f"{fmt_gib(n.free_gib)} GiB",
                      f"{n.bandwidth_peak_gbps:g} / ~{n.bandwidth_measured_gbps:g} GB/s")
    return table


@guarded
def plan_cmd(inventory: Path | None = INVENTORY, as_json: bool = JSON) -> None:
    from sovereign.inventory import load_inventory
    from sovereign.planner import plan
    from sovereign.planner.capacity import refusal

    result = plan(load_inventory(inventory_path(inventory)))
    error = refusal(result)
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        console.print(_models_table(result))
        console.print(_nodes_table(result))
        for line in result.assumptions:
            console.print(f"[dim]· {escape(line)}[/]", soft_wrap=True)
        for m in result.models:
            if not m.fits:
                style = "red" if m.enabled else "dim"
                console.print(f"[{style}]{escape(m.verdict)}[/]", soft_wrap=True)
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if error is not None:
        raise error
