"""`sovereign`: provision and run the Mimical-Sovereign cluster.

The CLI layer parses arguments and renders; the core decides and returns
models. Exit codes are documented in docs/cli.md.
"""

from __future__ import annotations

import logging

import typer

from sovereign import __version__
from sovereign.cli import (
    awx,
    backup,
    bench,
    hw,
    inventory,
    knowledge,
    lab,
    plan,
    provision,
    pxe,
    rag,
    router,
    status,
)

app = typer.Typer(
    name="sovereign",
    help=(
        "Provision and run a private two-node AI cluster. The inventory is the one "
        "source of truth; each build phase is preflight → apply → verify → record. "
        "Without -i, commands use the lab (inventory/lab)."
    ),
    no_args_is_help=True,
    # Plain click help: rich's formatter imports rich.markdown and markdown_it, about 0.1 s of
    # every --help (perf/cli_start.py).
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(inventory.app, name="inventory")
app.add_typer(lab.app, name="lab")
app.add_typer(hw.app, name="hw")
app.add_typer(pxe.app, name="pxe")
app.add_typer(router.app, name="router")
app.add_typer(awx.app, name="awx")
app.add_typer(knowledge.app, name="knowledge")
app.add_typer(rag.app, name="rag")
app.add_typer(backup.app, name="backup")
app.command("provision", help=provision.HELP)(provision.provision_cmd)
app.command("status")(status.status_cmd)
app.command("plan", help=plan.HELP)(plan.plan_cmd)
app.command("bench", help=bench.HELP)(bench.bench_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sovereign {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    app()
