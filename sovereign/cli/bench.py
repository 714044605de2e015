"""`sovereign bench`: llama-bench on the nodes, beside the decode roofline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, guarded, needs_provisioner, print_json

if TYPE_CHECKING:
    from sovereign.engine.bench import BenchReport, BenchResult

HELP = """Run llama-bench on the nodes and set each model's speed beside its roofline.

For every enabled model that a node serves alone, llama-bench measures prompt
processing (pp) and generation (tg) tokens/s; the roofline is memory
bandwidth ÷ bytes of weights read per token (active parameters ×
bits per weight), the bound that decode speed cannot pass. On real hardware
the bandwidth is the inventory's memory_bandwidth_gbps; on the lab each node
measures its own. The run goes through playbooks/bench.yml (the same job AWX
runs), the results go to the ledger and stay on the node for the BENCH-TOKENS
check of phase 4's verify. A model split over llama.cpp RPC is not
benchmarked (its RPC servers serve the running llama-server).

Exit 0, or 4 when a model generates below its min_tps.

Examples:

  sovereign bench                               # the lab, every model

  sovereign bench -i inventory/production --host mimical-2 --model gemma-4-26b-moe
"""


def _fmt(value: float | None, stddev: float | None = None) -> str:
    if value is None:
        return "[dim]–[/]"
    return f"{value:.1f} ± {stddev:.1f}" if stddev else f"{value:.1f}"


def _ratio(r: BenchResult) -> str:
    if r.ratio is None:
        return "[dim]–[/]"
    style = "red" if r.below_min else ("yellow" if r.ratio > 1 else "green")
    return f"[{style}]{r.ratio:.2f}×[/]"


def _table(report: BenchReport) -> Table:
    table = Table(title="llama-bench against the roofline", title_justify="left")
    for column in ("host", "model", "pp t/s", "tg t/s", "roofline t/s", "tg ÷ roofline", "min t/s",
                   "bandwidth"):
        table.add_column(column, justify="right" if "t/s" in column or "÷" in column else "left")
    for r in report.results:
        table.add_row(r.host, escape(r.model), _fmt(r.prompt_tps), _fmt(r.gen_tps, r.gen_stddev),
                      f"{r.roofline_tps:.1f}", _ratio(r),
                      "[dim]–[/]" if r.min_tps is None else f"{r.min_tps:g}",
                      f"{r.bandwidth_gbps:g} GB/s ({r.bandwidth_source})")
    return table


@guarded
def bench_cmd(
    inventory: Path | None = INVENTORY,
    host: str | None = typer.Option(None, "--host", help="Only this node (or group)."),
    model: str | None = typer.Option(None, "--model", help="Only this model of sovereign_models."),
    repetitions: int = typer.Option(3, "--repetitions", "-r", min=1, max=50,
                                    help="llama-bench repetitions per test."),
    as_json: bool = JSON,
) -> None:
    with needs_provisioner("bench"):
        from sovereign.cli.progress import RichReporter
        from sovereign.engine.bench import bench, raise_if_below

    report = bench(inventory_path(inventory), host=host, model=model, repetitions=repetitions,
                   reporter=None if as_json else RichReporter())
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        if report.results:
            console.print(_table(report))
        else:
            console.print("no model was benchmarked")
        for line in report.skipped:
            console.print(f"[dim]skipped: {escape(line)}[/]")
        console.print(f"[dim]run artifacts: {report.run_dir}[/]")
    raise_if_below(report)
