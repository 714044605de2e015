"""The phase engine: preflight → apply → verify → record, per phase and host.

The core decides and returns models; it never prints. Progress goes to a
`Reporter` (the CLI renders it with rich; tests pass a recording one).
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel

from sovereign.checks import CheckResult, Expectations, Status, run_checks
from sovereign.engine.ledger import DONE, Ledger
from sovereign.engine.phases import PHASES, Phase, require_built
from sovereign.engine.runner import HostTally, PlaybookOutcome, run_playbook
from sovereign.errors import ChecksFailed, HostUnreachable, PlaybookFailed, SovereignError
from sovereign.hw.bundle import Bundle
from sovereign.hw.facts import Facts
from sovereign.inventory import Inventory, load_inventory
from sovereign.paths import project_root, state_dir
from sovereign.planner import assert_plan_fits


@dataclass
class HostPhaseReport:
    """How far a phase got on one host, whatever stopped it: the checks judged,
    by stage (preflight, verify), and the apply's task counts (None when the
    playbook did not run there)."""

    host: str
    checks: dict[str, list[CheckResult]] = field(default_factory=dict)
    tasks: HostTally | None = None


class Reporter(Protocol):
    def stage(self, phase: Phase, stage: str, hosts: list[str]) -> None: ...
    def task(self, host: str, tally: HostTally) -> None: ...
    def stage_done(self, phase: Phase, stage: str) -> None: ...
    def phase_done(self, phase: Phase, reports: list[HostPhaseReport]) -> None: ...
    def note(self, text: str) -> None: ...


class NullReporter:
    def stage(self, phase: Phase, stage: str, hosts: list[str]) -> None: ...
    def task(self, host: str, tally: HostTally) -> None: ...
    def stage_done(self, phase: Phase, stage: str) -> None: ...
    def phase_done(self, phase: Phase, reports: list[HostPhaseReport]) -> None: ...
    def note(self, text: str) -> None: ...


class HostPhaseResult(BaseModel):
    host: str
    phase: int
    status: str  # applied | failed | checked | up-to-date
    changed: int = 0
    skipped_steps: list[str] = []
    reboot_required: list[str] = []
    warnings: list[str] = []
    checks: list[CheckResult] = []


class ProvisionResult(BaseModel):
    run_id: str
    run_dir: str
    results: list[HostPhaseResult] = []


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def git_commit() -> str | None:
    root = project_root()
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "playbooks", "roles", "sovereign", "templates"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _playbook_files(root: Path, playbook: Path, seen: set[Path] | None = None) -> list[Path]:
    """A playbook, the playbooks it imports and every file of the roles its plays name."""
    seen = set() if seen is None else seen
    if playbook in seen:
        return []
    seen.add(playbook)
    files = [playbook]
    for play in yaml.safe_load(playbook.read_text()) or []:
        play = play or {}
        if "ansible.builtin.import_playbook" in play or "import_playbook" in play:
            imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
            files += _playbook_files(root, (playbook.parent / str(imported)).resolve(), seen)
        for entry in play.get("roles") or []:
            role = entry if isinstance(entry, str) else entry.get("role") or entry.get("name")
            role_dir = root / "roles" / str(role).split(".")[-1]
            files += [f for f in sorted(role_dir.rglob("*")) if f.is_file()]
    return files


def fingerprint(p: Phase, inventory: Path) -> str:
    """What a phase's outcome depends on: its playbook, its roles, the inventory."""
    root = project_root()
    digest = hashlib.sha256()
    files = [(root, f) for f in _playbook_files(root, root / "playbooks" / str(p.playbook))]
    inv = Path(inventory)
    files += [(inv, f) for f in sorted(inv.rglob("*")) if f.is_file()]
    for base, f in files:
        # Length-prefixed name and content: no two file sets hash alike.
        for part in (str(f.relative_to(base)).encode(), f.read_bytes()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()[:16]


def playbook_failures(outcome: PlaybookOutcome) -> list[str]:
    found = [f"{h}: {f}" for h, t in outcome.hosts.items() for f in t.failures]
    return found or outcome.tail()


def ledger() -> Ledger:
    return Ledger(state_dir() / "ledger.sqlite")


def raise_if_unreachable(inv: Inventory, tallies: dict[str, HostTally]) -> None:
    down = {h: t for h, t in tallies.items() if t.unreachable}
    if not down:
        return
    lab_hint = "is the lab up? run `sovereign lab up`" if inv.simulated else (
        "check ansible_host and ansible_user in inventory/…/host_vars and that sshd runs")
    details = [f"{h} ({inv.hosts[h].vars.get('ansible_host', h)}): {'; '.join(t.failures)}"
               for h, t in down.items()]
    raise HostUnreachable(f"unreachable: {', '.join(down)}", hint=lab_hint, details=details)


def collect(inv: Inventory, hosts: list[str], run_dir: Path, ident: str,
            reporter: Reporter, p: Phase) -> dict[str, Facts]:
    """Capture a bundle from each host (playbooks/collect.yml) and parse it."""
    bundle_dir = run_dir / "bundles" / ident
    reporter.stage(p, f"{ident}: collect", hosts)
    outcome = run_playbook("collect.yml", inv.path, hosts, run_dir=run_dir,
                           ident=f"{ident}-collect",
                           extravars={"sovereign_bundle_dir": str(bundle_dir)},
                           progress=reporter.task)
    reporter.stage_done(p, f"{ident}: collect")
    raise_if_unreachable(inv, outcome.hosts)
    if not outcome.ok:
        raise PlaybookFailed("collecting hardware facts failed",
                             hint=f"run artifacts: {outcome.artifacts}",
                             details=playbook_failures(outcome))
    return {h: Facts(Bundle.load(bundle_dir / f"{h}.tar.gz")) for h in hosts}


def judge(inv: Inventory, stage: str, facts: dict[str, Facts], ids: tuple[str, ...],
          ignore: set[str], reports: dict[str, HostPhaseReport]) -> dict[str, list[CheckResult]]:
    out = {}
    for host, host_facts in facts.items():
        expect = Expectations.from_host(inv.hosts[host], inv.fabric_addresses())
        out[host] = reports[host].checks[stage] = run_checks(host_facts, expect, ids, ignore)
    return out


def _dump(results: list[CheckResult]) -> list[dict]:
    return [r.model_dump(mode="json") for r in results]


def provision(inventory: Path | str, numbers: list[int], *, limit: str | None = None,
              check: bool = False, ignore: set[str] | None = None, resume: bool = True,
              reporter: Reporter | None = None) -> ProvisionResult:
    """Run the given phases in order. With `resume`, hosts whose last run of a
    phase applied the same playbook, roles and inventory are skipped."""
    reporter = reporter or NullReporter()
    ignore = ignore or set()
    inv = load_inventory(inventory)
    hosts = inv.nodes(limit)
    if not hosts:
        raise SovereignError(f"no node matches --limit {limit!r}")
    if any(PHASES[n].deploys_models for n in numbers):
        # Exit 10 with every model that does not fit, before anything runs.
        assert_plan_fits(inv)
    book = ledger()
    run_id = new_run_id()
    run_dir = state_dir() / "runs" / run_id
    result = ProvisionResult(run_id=run_id, run_dir=str(run_dir))
    commit = git_commit()
    fresh: dict[str, Facts] = {}
    for number in numbers:
        p = require_built(PHASES[number])
        print_fp = fingerprint(p, inv.path)
        mine = [h for h in hosts if p.group in inv.hosts[h].groups]
        if not mine:
            reporter.note(f"{p.name}: runs on {p.group} only; none of {', '.join(hosts)} is in it")
            continue
        todo = [h for h in mine
                if check or not resume or not book.is_done(inv.cluster_name, h, number, print_fp)]
        for h in sorted(set(mine) - set(todo), key=mine.index):
            last = book.last_applied(inv.cluster_name, h, number)
            result.results.append(HostPhaseResult(
                host=h, phase=number, status="up-to-date",
                reboot_required=last.reboot_required if last else []))
        if not todo:
            reporter.note(f"{p.name}: up to date on {', '.join(mine)} (nothing changed since it "
                          f"was applied; `provision {p.name}` re-runs it)")
            continue
        records = {h: book.start(run_id=run_id, cluster=inv.cluster_name, inventory=str(inv.path),
                                 host=h, phase=number, check_mode=check, git_commit=commit,
                                 fingerprint=print_fp) for h in todo}
        reports = {h: HostPhaseReport(h) for h in todo}
        try:
            fresh = _run_phase(inv, p, todo, run_dir, check, ignore, reporter, book, records,
                               result, fresh, reports)
        except BaseException as exc:
            # Whatever stopped the phase, each host's row says so; nothing is lost.
            message = getattr(exc, "message", None) or repr(exc)
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            for rid in records.values():
                book.close_if_running(rid, status=status, message=message)
            raise
        finally:
            reporter.phase_done(p, list(reports.values()))
    return result


def _run_phase(inv: Inventory, p: Phase, hosts: list[str], run_dir: Path, check: bool,
               ignore: set[str], reporter: Reporter, book: Ledger, records: dict[str, int],
               result: ProvisionResult, fresh: dict[str, Facts],
               reports: dict[str, HostPhaseReport]) -> dict[str, Facts]:
    """Run one phase on `hosts`; return the facts its verify step collected.

    `fresh` holds the facts the previous phase of this run verified: nothing
    has touched the nodes since, so they serve as this phase's preflight."""
    if set(hosts) <= set(fresh):
        reporter.note(f"{p.name}: preflight judges the capture that the previous phase verified")
        before = {h: fresh[h] for h in hosts}
    else:
        before = collect(inv, hosts, run_dir, f"{p.name}-preflight", reporter, p)
    pre = judge(inv, "preflight", before, p.preflight, ignore, reports)
    blocked = {h: [r for r in rs if r.blocking] for h, rs in pre.items()}
    if any(blocked.values()):
        for h, rid in records.items():
            book.finish(rid, status="failed", checks=_dump(pre[h]), artifacts=str(run_dir),
                        message="preflight failed")
        raise ChecksFailed(
            f"{p.name}: preflight failed; nothing was applied",
            hint="fix the failures above, or skip them with --ignore-preflight-errors "
                 + ",".join(sorted({r.id for rs in blocked.values() for r in rs})),
            details=[f"{h}: {r.id}: {r.message}" for h, rs in blocked.items() for r in rs],
        )

    reporter.stage(p, f"{p.name}: apply" + (" (check mode)" if check else ""), hosts)
    outcome = run_playbook(str(p.playbook), inv.path, hosts, run_dir=run_dir,
                           ident=f"{p.name}-apply", check=check, progress=reporter.task)
    reporter.stage_done(p, f"{p.name}: apply")
    for h in hosts:
        reports[h].tasks = outcome.hosts.get(h)
    if not outcome.ok:
        for h, rid in records.items():
            t = outcome.hosts.get(h, HostTally())
            book.finish(rid, status="failed", changed=t.changed, failed_tasks=t.failed,
                        skipped_steps=t.skipped_steps, checks=_dump(pre[h]),
                        artifacts=str(outcome.artifacts),
                        message="; ".join(t.failures) or "failed on another host")
        raise_if_unreachable(inv, outcome.hosts)
        raise PlaybookFailed(
            f"{p.name}: the playbook failed",
            hint=f"run artifacts: {outcome.artifacts}",
            details=playbook_failures(outcome),
        )

    if check:
        for h, rid in records.items():
            t = outcome.hosts[h]
            book.finish(rid, status="checked", changed=t.changed, skipped_steps=t.skipped_steps,
                        checks=_dump(pre[h]), artifacts=str(outcome.artifacts),
                        message="check mode: nothing applied")
            result.results.append(HostPhaseResult(host=h, phase=p.number, status="checked",
                                                  changed=t.changed, skipped_steps=t.skipped_steps,
                                                  checks=pre[h]))
        return {}

    after = collect(inv, hosts, run_dir, f"{p.name}-verify", reporter, p)
    post = judge(inv, "verify", after, p.verify, ignore, reports)
    failed = []
    for h, rid in records.items():
        t = outcome.hosts[h]
        reboot = list(t.reboot_required) + [
            r.message for r in post[h] if r.status is Status.WARN and "reboot required" in r.message]
        status = "failed" if any(r.blocking for r in post[h]) else DONE
        if status != DONE:
            failed.append(h)
        book.finish(rid, status=status, changed=t.changed, failed_tasks=t.failed,
                    skipped_steps=t.skipped_steps, reboot_required=reboot, warnings=t.warnings,
                    checks=_dump(pre[h] + post[h]), artifacts=str(outcome.artifacts),
                    message=None if status == DONE else "verify failed")
        result.results.append(HostPhaseResult(host=h, phase=p.number, status=status,
                                              changed=t.changed, skipped_steps=t.skipped_steps,
                                              reboot_required=reboot, warnings=t.warnings,
                                              checks=post[h]))
    if failed:
        raise ChecksFailed(
            f"{p.name}: applied, but verification failed on {', '.join(failed)}",
            hint="see the failed checks above; each names its fix",
            details=[f"{h}: {r.id}: {r.message}" for h in failed for r in post[h] if r.blocking],
        )
    return after
