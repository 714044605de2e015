"""`sovereign knowledge ...`: the behavioral events (an append-only hash chain)
and the methodology rules (the owner's standards, versioned). docs/knowledge.md."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import JSON
from sovereign.cli.render import console, guarded, print_json
from sovereign.errors import ChecksFailed, UsageError

app = typer.Typer(help="What the owner's system knows, in Postgres's `sovereign` schema: the behavioral "
                  "events (append-only, a hash chain) and the methodology rules (versioned standards). "
                  "The database: --dsn, SOVEREIGN_KNOWLEDGE_DSN or `dsn:` in --config.",
                  no_args_is_help=True)
events_app = typer.Typer(help="The behavioral events: list, show, verify the chain, print its head.",
                         no_args_is_help=True)
rules_app = typer.Typer(help="The methodology rules: add (a new version supersedes the open one), list, "
                        "show, retire, history.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(rules_app, name="rules")

DSN = typer.Option(None, "--dsn", help="Postgres DSN of the knowledge database (else "
                   "SOVEREIGN_KNOWLEDGE_DSN, else `dsn:` in --config).", show_default=False)
CONFIG = typer.Option(None, "--config", help="A YAML/JSON file of knowledge settings (dsn, "
                      "connect_timeout_s, statement_timeout_s).", show_default=False)


@app.command("migrate")
@guarded
def migrate_cmd(dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Bring the `sovereign` schema up to this code's version, as a login that may run DDL (the
    owner: phase 6 runs this from the controller). A login without DDL rights finds an up-to-date
    schema and changes nothing; one that is behind is an error naming the version."""
    from sovereign.knowledge import knowledge_settings, open_knowledge
    from sovereign.knowledge.store import PACKAGE
    from sovereign.service.sql import schema_version

    kdb = open_knowledge(knowledge_settings(config, dsn), migrate_schema=False)
    try:
        before = schema_version(kdb.db, PACKAGE)
        after = kdb.migrate()
    finally:
        kdb.close()
    if as_json:
        print_json({"before": before, "after": after, "changed": after != before})
    elif after == before:
        console.print(f"the knowledge schema is up to date (version {after})")
    else:
        console.print(f"[green]migrated[/] the knowledge schema from version {before} to {after}")


@contextlib.contextmanager
def _db(dsn: str | None, config: Path | None) -> Iterator[Any]:
    from sovereign.knowledge import knowledge_settings, open_knowledge

    kdb = open_knowledge(knowledge_settings(config, dsn))
    try:
        yield kdb
    finally:
        kdb.close()


def _when(ts: datetime | None) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S")


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def _fields(values: dict[str, Any], as_json: str) -> None:
    """One `key: value` line each; the `as_json` field as indented JSON."""
    import json

    for key, value in values.items():
        text = json.dumps(value, indent=2, ensure_ascii=False) if key == as_json else str(value)
        console.print(f"[bold]{key}[/]: {escape(text)}")


# --------------------------------------------------------------------------- events


@events_app.command("list")
@guarded
def events_list(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many, newest first."),
    kind: str | None = typer.Option(None, "--kind", help="Only events of this kind."),
    source: str | None = typer.Option(None, "--source", help="Only events written by this source."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """The newest events: seq, time, source, kind, subject."""
    from sovereign.knowledge.events import list_events

    with _db(dsn, config) as kdb:
        found = list_events(kdb, limit=limit, kind=kind, source=source)
    if as_json:
        print_json([_dump(e) for e in found])
        return
    table = Table("seq", "at (UTC)", "source", "kind", "subject", "hash", box=None)
    for e in found:
        table.add_row(str(e.seq), _when(e.at), escape(e.source), escape(e.kind), escape(e.subject),
                      e.hash[:12])
    console.print(table if found else "no events")


@events_app.command("show")
@guarded
def events_show(
    event: str = typer.Argument(..., help="The event's seq (a number) or id."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """One event in full, its payload and both hashes."""
    from sovereign.knowledge.events import get_event

    with _db(dsn, config) as kdb:
        found = get_event(kdb, event)
    if found is None:
        raise UsageError(f"no event with seq or id {event!r}", hint="sovereign knowledge events list")
    if as_json:
        print_json(_dump(found))
        return
    _fields(_dump(found), "payload")


@events_app.command("verify")
@guarded
def events_verify(
    head: str | None = typer.Option(None, "--head", help="A head kept outside Postgres (a backup's, the "
                                    "ledger's `events head`): it must still be in the chain."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """Walk the chain and name the first row that was edited, deleted or
    reordered; with --head, also find a table rewritten whole. Exit 4 when the
    chain is broken."""
    from sovereign.knowledge.events import verify

    if head is not None and not re.fullmatch(r"[0-9a-f]{64}", head):
        raise UsageError(f"--head {head!r} is not a chain hash (64 hex digits)",
                         hint="the hash `sovereign knowledge events head` printed")
    with _db(dsn, config) as kdb:
        result = verify(kdb, head)
    if as_json:
        print_json(_dump(result))
    elif result.ok:
        at = f", head seq {result.head.seq} {result.head.hash}" if result.head else ""
        kept = "; the kept head is in the chain" if head else ""
        console.print(f"[green]chain intact[/]: {result.rows} events{at}{kept}")
    if result.problem is not None:
        problem = ChecksFailed(f"the event chain is broken ({result.problem.kind}): {result.problem.message}",
                               hint="docs/knowledge.md: what each finding means and what to do")
        if as_json:
            raise typer.Exit(int(problem.exit_code))
        raise problem


@events_app.command("head")
@guarded
def events_head(dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """The chain's head: its hash (with --json also its seq, id and time), what
    a backup and the phase ledger keep for `verify --head HASH` later."""
    from sovereign.knowledge.events import head

    with _db(dsn, config) as kdb:
        top = head(kdb)
    if as_json:
        print_json(_dump(top) if top else None)
    else:
        typer.echo(top.hash if top else "no events")


# --------------------------------------------------------------------------- rules


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r}: not KEY=VALUE", hint="e.g. --param metric=gpu_temp_c")
        out[key.strip()] = value
    return out


def _rules_table(rules: list[Any]) -> Table:
    table = Table("name", "v", "kind", "severity", "valid from", "valid to", "statement", box=None)
    for r in rules:
        table.add_row(r.name, str(r.version), r.kind, r.severity, _when(r.valid_from), _when(r.valid_to),
                      escape(r.statement))
    return table


def _show_rules(rules: list[Any], as_json: bool, empty: str) -> None:
    if as_json:
        print_json([_dump(r) for r in rules])
    else:
        console.print(_rules_table(rules) if rules else empty)


@rules_app.command("add")
@guarded
def rules_add(
    name: str = typer.Argument(..., help="The rule's name (lowercase, digits, . _ -). A name that has an "
                               "open version gets the next version, which supersedes it."),
    kind: str = typer.Option(..., "--kind", help="threshold (metric, operator, value, unit), schedule "
                             "(cron or interval, what), forbid / require (what, scope)."),
    statement: str = typer.Option(..., "--statement", help="The standard in words."),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE, once per parameter of the kind."),
    severity: str = typer.Option("warning", "--severity", help="info, warning or critical."),
    valid_from: datetime | None = typer.Option(None, "--valid-from", help="When it takes effect "
                                               "(default now; a time without zone is UTC)."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """Add a rule, or a new version of one (the open version is closed, never edited).

    Example: sovereign knowledge rules add gpu-temp --kind threshold --statement
    "GPU stays below 85 C" -p metric=gpu_temp_c -p operator='<' -p value=85 -p unit=C"""
    from datetime import UTC

    from sovereign.knowledge.rules import add_rule

    if valid_from is not None and valid_from.tzinfo is None:
        valid_from = valid_from.replace(tzinfo=UTC)
    with _db(dsn, config) as kdb:
        rule = add_rule(kdb, name, kind=kind, statement=statement, params=_params(param),
                        severity=severity, valid_from=valid_from)
    if as_json:
        print_json(_dump(rule))
    else:
        was = f", superseding version {rule.version - 1}" if rule.version > 1 else ""
        console.print(f"rule {rule.name} version {rule.version}{was}")


@rules_app.command("list")
@guarded
def rules_list(
    every: bool = typer.Option(False, "--all", help="The latest version of every rule, retired ones too."),
    at: datetime | None = typer.Option(None, "--at", help="The rules in force at this time (UTC)."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """The rules in force now (or --at a time), one version each."""
    from datetime import UTC

    from sovereign.knowledge.rules import list_rules

    when = at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at
    with _db(dsn, config) as kdb:
        found = list_rules(kdb, every=every, at=when)
    _show_rules(found, as_json, "no rules")


@rules_app.command("show")
@guarded
def rules_show(
    name: str = typer.Argument(..., help="The rule's name."),
    version: int | None = typer.Option(None, "--version", help="This version (default the latest)."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """One version of a rule, with its parameters."""
    from sovereign.knowledge.rules import get_rule

    with _db(dsn, config) as kdb:
        rule = get_rule(kdb, name, version)
    if as_json:
        print_json(_dump(rule))
        return
    _fields(_dump(rule), "params")


@rules_app.command("retire")
@guarded
def rules_retire(
    name: str = typer.Argument(..., help="The rule's name."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """Close the open version now (valid_to = now); its history stays."""
    from sovereign.knowledge.rules import retire_rule

    with _db(dsn, config) as kdb:
        rule = retire_rule(kdb, name)
    if as_json:
        print_json(_dump(rule))
    else:
        console.print(f"rule {rule.name} version {rule.version} retired at {_when(rule.valid_to)} UTC")


@rules_app.command("history")
@guarded
def rules_history(
    name: str = typer.Argument(..., help="The rule's name."),
    dsn: str | None = DSN, config: Path | None = CONFIG, as_json: bool = JSON,
) -> None:
    """Every version of a rule, oldest first."""
    from sovereign.knowledge.rules import get_rule, history

    with _db(dsn, config) as kdb:
        versions = history(kdb, name)
        if not versions:
            get_rule(kdb, name)  # the "no such rule" error
    _show_rules(versions, as_json, "")
