"""Adapter to ansible-runner: run a playbook, turn its events into per-host
tallies and progress callbacks. No text is scraped; artifacts stay on disk."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from sovereign.paths import project_root


@dataclass
class HostTally:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    task: str = ""
    failures: list[str] = field(default_factory=list)
    skipped_steps: list[str] = field(default_factory=list)
    reboot_required: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PlaybookOutcome:
    status: str
    rc: int
    artifacts: Path
    hosts: dict[str, HostTally]

    def tail(self, lines: int = 8) -> list[str]:
        """The end of ansible's own output, for errors no event explains."""
        try:
            text = (self.artifacts / "stdout").read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.strip().splitlines() if line.strip()][-lines:]

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(t.failed or t.unreachable for t in self.hosts.values())


# (host, tally) → None; called on every task event for live progress.
ProgressFn = Callable[[str, HostTally], None]


def _message(res: dict[str, Any]) -> str:
    # A loop: the first failed item says more than "One or more items failed".
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item"))
            return f"{label}: {_message(item)}" if isinstance(label, str) else _message(item)
    # A failed command: its own words, not Ansible's "non-zero return code".
    keys = ("stderr", "msg") if res.get("rc") and res.get("stderr") else ("msg", "stderr")
    for key in (*keys, "reason", "module_stderr"):
        value = res.get(key)
        if value:
            text = value if isinstance(value, str) else str(value)
            return text.strip().splitlines()[-1] if text.strip() else text
    return "failed"


class _Events:
    def __init__(self, hosts: list[str], progress: ProgressFn | None):
        self.tallies = {h: HostTally() for h in hosts}
        self.progress = progress

    def tally(self, host: str) -> HostTally:
        return self.tallies.setdefault(host, HostTally())

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if not host or not kind.startswith("runner_on_"):
            return True
        tally = self.tally(host)
        tally.task = data.get("task", tally.task)
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            tally.ok += 1
            tally.changed += int(bool(res.get("changed")))
            facts = res.get("ansible_facts") or {}
            if "sovereign_skipped" in facts:
                tally.skipped_steps = list(facts["sovereign_skipped"])
            if "sovereign_reboot_required" in facts:
                tally.reboot_required = list(facts["sovereign_reboot_required"])
            if "sovereign_warnings" in facts:
                tally.warnings = list(facts["sovereign_warnings"])
        elif kind == "runner_on_skipped":
            tally.skipped += 1
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            tally.failed += 1
            tally.failures.append(f"{data.get('task', '?')}: {_message(res)}")
        elif kind == "runner_on_unreachable":
            tally.unreachable = True
            tally.failures.append(f"unreachable: {_message(res)}")
        if self.progress:
            self.progress(host, tally)
        return True

    def stats(self, status: dict[str, Any]) -> None:
        for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                          ("skipped", "skipped")):
            for host, count in (status.get(key) or {}).items():
                setattr(self.tally(host), attr, int(count))
        for host in status.get("dark") or {}:
            self.tally(host).unreachable = True


def run_playbook(playbook: str, inventory: Path, hosts: list[str], *, run_dir: Path,
                 ident: str, check: bool = False, extravars: dict[str, Any] | None = None,
                 progress: ProgressFn | None = None) -> PlaybookOutcome:
    """Run `playbooks/<playbook>` on `hosts`; return per-host tallies."""
    root = project_root()
    events = _Events(hosts, progress)
    stats: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> bool:
        if event.get("event") == "playbook_on_stats":
            stats.update(event.get("event_data") or {})
        return events(event)

    run_dir.mkdir(parents=True, exist_ok=True)
    cmdline = "--check --diff" if check else None
    envvars = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    runner = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=str(root / "playbooks" / playbook),
        inventory=str(Path(inventory).resolve()),
        limit=",".join(hosts),
        cmdline=cmdline,
        extravars=extravars or {},
        # ansible-playbook lives beside this interpreter (the project's venv).
        envvars={**envvars,
                 "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                          os.environ.get("PATH", "")])},
        ident=ident,
        quiet=True,
        event_handler=on_event,
        project_dir=str(root),
    )
    events.stats(stats)
    artifacts = Path(runner.config.artifact_dir)
    return PlaybookOutcome(status=runner.status, rc=int(runner.rc or 0), artifacts=artifacts,
                           hosts=events.tallies)
