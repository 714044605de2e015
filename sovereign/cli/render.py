"""Rendering shared by the commands: consoles, errors, check tables, JSON."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sovereign.checks import CheckResult, Status
from sovereign.errors import EnvironmentProblem, ExitCode, SovereignError

# Pipes and CI logs get a wide, stable layout instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 150
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 150)

STATUS_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "dim"}

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


def checks_table(title: str, results: list[CheckResult]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("message", overflow="fold")
    table.add_column("hint", overflow="fold", style="dim")
    for r in results:
        table.add_row(r.id, status_cell(r), r.message, r.hint if r.status is not Status.PASS else "")
    if any(r.simulated for r in results):
        table.caption = "* judged on the lab's recorded hardware profile, not on real silicon"
    return table
