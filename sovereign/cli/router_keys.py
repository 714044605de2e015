"""`sovereign router keys add|list|revoke|rotate`: the router's callers (sovereign/router/callers.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON
from sovereign.cli.render import console, err_console, guarded, print_json
from sovereign.cli.router_options import CONFIG, router_settings
from sovereign.errors import SovereignError, UsageError

app = typer.Typer(help="Caller keys: who may ask the router, and what each caller may do. A key is shown "
                  "once; the router keeps a salted hash and reads the file again when it changes (a revoked "
                  "key is refused at its next request, without a restart).", no_args_is_help=True)

NAME = typer.Argument(..., help="The caller's name (lower-case letters, digits, '.', '_', '-'), as the "
                      "attempts and the egress audit name it.")


def _registry(settings: Any) -> Any:
    from sovereign.router.callers import Registry

    return Registry(settings.keys_path(), settings.auth.managed_file)


def _fail(exc: Any) -> SovereignError:
    return UsageError(exc.message, hint=exc.hint)


def _shown_once(name: str, key: str, as_json: bool, settings: Any) -> None:
    if as_json:
        print_json({"name": name, "key": key, "file": str(settings.keys_path())})
        return
    console.print(f"caller [bold]{escape(name)}[/]: its key, shown this once (the router keeps only a "
                  f"salted hash, in {settings.keys_path()}):")
    console.print(key, markup=False, highlight=False)
    err_console.print("clients send it as `Authorization: Bearer <key>` (OpenAI clients: api_key=...)")


@app.command("add")
@guarded
def add(
    name: str = NAME,
    scope: str = typer.Option("chat", "--scope", help="chat: the OpenAI API; admin: also /metrics and the "
                              "detail of /health."),
    tiers: str | None = typer.Option(None, "--tiers", help="Comma-separated tiers it may use "
                                     "(default: all)."),
    egress: str = typer.Option("allow", "--egress", help="deny: its requests never cause a cloud call."),
    crystals: str = typer.Option("shared", "--crystals", help="Which stored cloud answers it is served: "
                                 "shared (any), own (its own requests'), none."),
    daily_calls: int | None = typer.Option(None, "--daily-calls", min=0, help="Its cloud calls per UTC day."),
    daily_tokens: int | None = typer.Option(None, "--daily-tokens", min=0, help="Its cloud tokens per day."),
    daily_cost: float | None = typer.Option(None, "--daily-cost", min=0.0, help="Its cloud spend per day, "
                                            "USD."),
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """Make a caller and print its key, once.

    Its policy only narrows the router's settings: the global egress policy and
    budget still apply. Example: `sovereign router keys add kairos-financial
    --egress deny --tiers system-1,system-2`."""
    from pydantic import ValidationError

    from sovereign.router.callers import CallerError, Policy

    settings = router_settings(inventory, config)
    chosen = [t.strip() for t in tiers.split(",") if t.strip()] if tiers is not None else None
    known = [t.name for t in settings.tiers]
    unknown = [t for t in chosen or [] if t not in known]
    if unknown:
        raise UsageError(f"--tiers: {', '.join(unknown)} is not a tier of this router",
                         hint=f"its tiers: {', '.join(known) or 'none'}")
    try:
        policy = Policy(scope=scope, tiers=chosen, egress=egress, crystals=crystals, daily_calls=daily_calls,
                        daily_tokens=daily_tokens, daily_cost_usd=daily_cost)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"--{first['loc'][0]}: {first['msg']}") from None
    try:
        key = _registry(settings).add(name, policy)
    except CallerError as exc:
        raise _fail(exc) from None
    _shown_once(name, key, as_json, settings)


@app.command("list")
@guarded
def list_keys(inventory: Path | None = INVENTORY, config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Every caller of both files (the operator's and the inventory's), revoked ones too; never a key."""
    settings = router_settings(inventory, config)
    entries = _registry(settings).entries()
    rows = [{"name": e.name, "source": e.source, "policy": e.model_dump(exclude={"name", "salt", "hash",
                                                                                  "created_at", "revoked_at",
                                                                                  "source"}),
             "created_at": e.created_at or None, "revoked_at": e.revoked_at} for e in entries]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"router callers ({settings.keys_path()})", title_justify="left")
    for col in ("caller", "source", "policy", "created", "state"):
        table.add_column(col)
    for e in entries:
        state = "[green]live[/]" if e.revoked_at is None else f"revoked {_when(e.revoked_at)}"
        table.add_row(escape(e.name), e.source, escape(e.describe()), _when(e.created_at or None), state)
    console.print(table if entries else "no caller keys yet: `sovereign router keys add NAME`")


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@app.command("revoke")
@guarded
def revoke(name: str = NAME, inventory: Path | None = INVENTORY, config: Path | None = CONFIG) -> None:
    """Refuse the caller's key from its next request on (no restart). A key of
    the inventory's is revoked here at once and stays revoked until it is
    removed from router_callers."""
    from sovereign.router.callers import CallerError

    settings = router_settings(inventory, config)
    try:
        entry = _registry(settings).revoke(name)
    except CallerError as exc:
        raise _fail(exc) from None
    console.print(f"caller {escape(entry.name)}: key revoked")


@app.command("rotate")
@guarded
def rotate(name: str = NAME, inventory: Path | None = INVENTORY, config: Path | None = CONFIG,
           as_json: bool = JSON) -> None:
    """A new key with the same policy; the old key stops working at once."""
    from sovereign.router.callers import CallerError

    settings = router_settings(inventory, config)
    try:
        key = _registry(settings).rotate(name)
    except CallerError as exc:
        raise _fail(exc) from None
    _shown_once(name, key, as_json, settings)
