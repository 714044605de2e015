"""`sovereign hw collect|check|checks`"""

from __future__ import annotations

from pathlib import Path

import typer

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import checks_table, console, guarded, needs_provisioner, print_json
from sovereign.errors import ExitCode, SovereignError, UsageError

app = typer.Typer(help="Capture what a node really is, and judge it against the inventory.",
                  no_args_is_help=True)


@app.command()
@guarded
def collect(
    out: Path = typer.Option(..., "--out", help="Bundle directory to write."),
    local: bool = typer.Option(False, "--local", help="Collect on this machine."),
    host: str | None = typer.Option(None, "--host", help="Collect on this inventory host over SSH."),
    inventory: Path | None = INVENTORY,
) -> None:
    """Write a capture bundle: one file per source (rocminfo, lspci -nnk,
    /proc/cmdline, ...) and manifest.json with each command, exit code and
    stderr. A source missing on the node is recorded as missing."""
    with needs_provisioner("hw collect"):
        from sovereign.hw import remote
    from sovereign.hw.bundle import Bundle
    from sovereign.inventory import load_inventory

    if local == (host is not None):
        raise UsageError("give exactly one of --local or --host NAME")
    if local:
        remote.collect_local(out)
    else:
        inv = load_inventory(inventory_path(inventory))
        if host not in inv.hosts:
            raise SovereignError(f"{host!r} is not a host of {inv.path}",
                                 hint=f"hosts: {', '.join(inv.hosts)}")
        remote.collect_ssh(inv.hosts[host], out)
    bundle = Bundle.load(out)
    got = sum(1 for e in bundle.manifest.files.values() if e.status == "ok")
    console.print(f"bundle for {bundle.host} in {out}: {got} of "
                  f"{len(bundle.manifest.files)} sources collected")


@app.command()
@guarded
def check(
    bundle_dir: Path = typer.Option(..., "--bundle", help="Bundle directory (or .tar.gz)."),
    phase: int | None = typer.Option(None, "--phase", help="Only the checks of this phase."),
    ignore: str | None = typer.Option(None, "--ignore", help="Check ids not to fail on (ID,... or all)."),
    inventory: Path | None = typer.Option(
        None, "--inventory", "-i", help="Judge against this inventory's host (default: production "
        "expectations)."),
    host: str | None = typer.Option(None, "--host", help="Inventory host to compare with "
                                    "(default: the bundle's host)."),
    as_json: bool = JSON,
) -> None:
    """Judge a bundle anywhere, with no access to the node. Exit 0 when
    nothing failed, 4 when a check failed, 9 when the bundle is unreadable."""
    from sovereign.checks import REGISTRY, Expectations, parse_ignore, run_checks, unknown_ids
    from sovereign.engine.phases import phase as get_phase
    from sovereign.hw.bundle import Bundle
    from sovereign.hw.facts import Facts
    from sovereign.inventory import load_inventory

    ignored = parse_ignore(ignore)
    if unknown := unknown_ids(ignored):
        raise SovereignError(f"unknown check id(s): {', '.join(unknown)}",
                             hint="`sovereign hw checks` lists them")
    if host is not None and inventory is None:
        raise UsageError("--host names a host of an inventory: give -i DIR too")
    facts = Facts(Bundle.load(bundle_dir))
    expect = Expectations(host=facts.host)
    if inventory is not None:
        inv = load_inventory(inventory)
        name = host or facts.host
        if name not in inv.hosts:
            raise SovereignError(f"{name!r} is not a host of {inv.path}", hint="pass --host NAME")
        expect = Expectations.from_host(inv.hosts[name], inv.fabric_addresses())
    if phase is not None:
        p = get_phase(phase)
        ids = list(dict.fromkeys(p.preflight + p.verify))
    else:
        ids = list(REGISTRY)
    results = run_checks(facts, expect, ids, ignored)
    if as_json:
        print_json({"host": facts.host, "facts": facts.summary(),
                    "checks": [{"id": r.id, "status": r.status.value, "message": r.message,
                                "hint": r.hint, "ignored": r.ignored, "simulated": r.simulated}
                               for r in results]})
    else:
        console.print(checks_table(f"{facts.host} ({bundle_dir})", results))
    if any(r.blocking for r in results):
        raise typer.Exit(int(ExitCode.CHECKS_FAILED))


@app.command("checks")
@guarded
def list_checks(as_json: bool = JSON) -> None:
    """List every check id, what it verifies, and the phases that run it."""
    from sovereign.checks import REGISTRY
    from sovereign.engine.phases import PHASES

    rows = []
    for check_id, spec in REGISTRY.items():
        pre = [p.number for p in PHASES.values() if check_id in p.preflight]
        ver = [p.number for p in PHASES.values() if check_id in p.verify]
        rows.append({"id": check_id, "title": spec.title, "preflight": pre, "verify": ver})
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="checks", title_justify="left")
    for col in ("id", "verifies", "preflight of phase", "verify of phase"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["title"], ",".join(map(str, r["preflight"])) or "–",
                      ",".join(map(str, r["verify"])) or "–")
    console.print(table)


