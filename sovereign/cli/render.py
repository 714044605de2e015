"""Rendering shared by the commands: consoles, errors, check tables, JSON."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from sovereign.errors import EnvironmentProblem, ExitCode, SovereignError

if TYPE_CHECKING:
    from rich.table import Table

    from sovereign.checks import CheckResult
    from sovereign.engine.provision import HostPhaseReport

# Pipes and CI logs get a wide, stable layout instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 150
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 150)

# By status value (sovereign.checks.Status is a StrEnum): the CLI starts without the checks.
STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}

F = TypeVar("F", bound=Callable[..., Any])


def render_error(exc: SovereignError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    for line in exc.details:
        err_console.print(f"  • {line}", soft_wrap=True, markup=False)
    if exc.hint:
        err_console.print(f"[bold]hint:[/] {escape(exc.hint)}", soft_wrap=True)


def guarded(fn: F) -> F:
    """Catch the one error hierarchy at the CLI boundary: message, hint, exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SovereignError as exc:
            render_error(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: what finished is in the ledger; "
                              "run the same command again to resume")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return wrapper  # type: ignore[return-value]


# What the `provisioner` extra brings (pyproject.toml), by import name: the
# controller has them, a node (the runtime only) does not.
PROVISIONER_MODULES = frozenset({"ansible", "ansible_runner", "jinja2", "paramiko"})


@contextlib.contextmanager
def needs_provisioner(command: str) -> Iterator[None]:
    """Around the imports of a command that drives the nodes (Ansible, SSH,
    PXE): made inside the command, so that the CLI on a node runs the others,
    and this one says what to install instead of a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in PROVISIONER_MODULES:
            raise
        raise EnvironmentProblem(
            f"`sovereign {command}` needs {exc.name}, which this installation lacks (the runtime only)",
            hint="it runs on the controller: pip install 'sovereign[provisioner]' (make setup does)",
        ) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def status_cell(result: CheckResult) -> str:
    style = STATUS_STYLE[result.status]
    label = result.status.value
    if result.ignored:
        label += " (ignored)"
    if result.simulated:
        label += "*"
    return f"[{style}]{label}[/]"


def checks_table(title: str, results: Sequence[CheckResult], *, lead: tuple[str, ...] = (),
                 where: Sequence[tuple[str, ...]] = ()) -> Table:
    """A table of checks: id, status, message and, unless it passed, the hint.
    `lead` names columns before them, `where` gives each row's values of those."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for column in (*lead, "check"):
        table.add_column(column, no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("message", overflow="fold")
    table.add_column("hint", overflow="fold", style="dim")
    for i, r in enumerate(results):
        table.add_row(*(where[i] if lead else ()), r.id, status_cell(r), r.message,
                      r.hint if r.status != "pass" else "")
    if any(r.simulated for r in results):
        table.caption = "* judged on the lab's recorded hardware profile, not on real silicon"
    return table


# (status, word in the summary line, style when the count is not 0)
_COUNTED = (("pass", "passed", ""), ("warn", "warned", "yellow"), ("fail", "failed", "red"),
            ("skip", "skipped", ""))


def _count(n: int, word: str, style: str) -> str:
    return f"[{style}]{n} {word}[/]" if n and style else f"{n} {word}"


def phase_line(phase: str, report: HostPhaseReport) -> str:
    """One host's phase in a line: checks passed, warned, failed, skipped; tasks ok,
    changed, failed (or why there are none)."""
    results = [r for rs in report.checks.values() for r in rs]
    n = Counter(r.status.value for r in results)
    checks = ", ".join(_count(n[status], word, style) for status, word, style in _COUNTED)
    t = report.tasks
    if t is None:
        tasks = "[dim]not run[/]"
    elif t.unreachable:
        tasks = "[red]unreachable[/]"
    else:
        tasks = ", ".join((_count(t.ok, "ok", ""), _count(t.changed, "changed", "yellow"),
                           _count(t.failed, "failed", "red")))
    return (f"{escape(report.host)} {phase}: checks {checks if results else '[dim]none judged[/]'}; "
            f"tasks {tasks}")


def phase_summary(phase: str, reports: Sequence[HostPhaseReport], verbose: bool = False) -> list[Any]:
    """What a phase did, to print: a line per host, then the checks that warned or
    failed with their hints (every check when `verbose`); no table when none did."""
    out: list[Any] = [phase_line(phase, r) for r in reports]
    rows = [((r.host, stage), c) for r in reports for stage, results in r.checks.items()
            for c in results if verbose or c.status in {"warn", "fail"}]
    if rows:
        which = "every check" if verbose else "checks that warned or failed (-v: every check)"
        out.append(checks_table(f"{phase}: {which}", [c for _, c in rows], lead=("host", "stage"),
                                where=[where for where, _ in rows]))
    return out
