"""`sovereign provision phase-N|all`"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, guarded, needs_provisioner, print_json
from sovereign.engine.phases import PHASES, parse_phase_list, parse_phase_name, require_built
from sovereign.errors import SovereignError, UsageError

if TYPE_CHECKING:
    from sovereign.engine.provision import ProvisionResult

HELP = """Run build phases on the nodes: preflight checks → apply (Ansible) → verify
checks → record in the ledger.

PHASE is `phase-1` … `phase-8` or `all`. `all` runs every built phase in
order and resumes: hosts whose last run of a phase applied the same
playbook, roles and inventory are skipped (use --force to re-run them).
`phase-N` always runs.

Each phase ends with one line per host (checks passed, warned, failed,
skipped; tasks ok, changed, failed) and a table of the checks that warned
or failed, with their hints; -v shows every check. Ansible's own output is
in the run's artifacts.

Examples:

  sovereign provision all                      # the lab, every built phase

  sovereign provision phase-2 -i inventory/production --limit mimical-2

  sovereign provision all --check              # dry run with diffs

  sovereign provision phase-2 --ignore-preflight-errors MEM-TOTAL
"""


def _phases(phase: str, start: str | None, only: str | None) -> tuple[list[int], bool]:
    """The phases to run and whether this is the resuming `all`."""
    number = parse_phase_name(phase)
    if number is not None:
        if start or only:
            raise UsageError("--from and --only go with `provision all`")
        return [require_built(PHASES[number]).number], False
    numbers = [n for n, p in PHASES.items() if p.built]
    if only:
        numbers = [require_built(PHASES[n]).number for n in parse_phase_list(only)]
    if start:
        first = parse_phase_name(start)
        if first is None:
            raise SovereignError("--from takes one phase, e.g. --from 2")
        numbers = [n for n in numbers if n >= first]
    if not numbers:
        raise SovereignError("no built phase selected")
    return numbers, True


def _summary(result: ProvisionResult) -> None:
    for r in result.results:
        line = f"{r.host} phase-{r.phase}: [bold]{r.status}[/]"
        if r.status in {"applied", "checked"}:
            line += f" ({r.changed} changed)"
        console.print(line)
        for step in r.skipped_steps:
            console.print(f"  [dim]skipped on simulated hardware: {escape(step)}[/]")
        for warning in r.warnings:
            console.print(f"  [yellow]warning:[/] {escape(warning)}")
        for reason in dict.fromkeys(r.reboot_required):
            console.print(f"  [yellow]reboot required:[/] {escape(reason)}")


@guarded
def provision_cmd(
    phase: str = typer.Argument(..., help="phase-1 … phase-8, or all", show_default=False),
    inventory: Path | None = INVENTORY,
    limit: str | None = typer.Option(None, "--limit", "-l",
                                     help="Only these hosts or groups (comma-separated)."),
    check: bool = typer.Option(False, "--check", help="Ansible check mode with diffs: change nothing."),
    start: str | None = typer.Option(None, "--from", help="With `all`: start at this phase."),
    only: str | None = typer.Option(None, "--only", help="With `all`: only these phases, e.g. 1,2."),
    ignore: str | None = typer.Option(
        None, "--ignore-preflight-errors",
        help="Check ids whose failure does not stop the run (ID,ID,... or all)."),
    force: bool = typer.Option(False, "--force", help="With `all`: re-run phases already applied."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show every check and each stage's task counts, not only "
                                      "the checks that warned or failed."),
    as_json: bool = JSON,
) -> None:
    from sovereign.checks import parse_ignore, unknown_ids

    numbers, resuming = _phases(phase, start, only)
    ignored = parse_ignore(ignore)
    if unknown := unknown_ids(ignored):
        raise SovereignError(f"unknown check id(s): {', '.join(unknown)}",
                             hint="`sovereign hw checks` lists them")
    with needs_provisioner("provision"):
        from sovereign.cli.progress import RichReporter
        from sovereign.engine.provision import provision

    result = provision(inventory_path(inventory), numbers, limit=limit, check=check,
                       ignore=ignored, resume=resuming and not force,
                       reporter=None if as_json else RichReporter(verbose))
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    _summary(result)
    console.print(f"[dim]run {result.run_id}; artifacts in {result.run_dir}[/]")
