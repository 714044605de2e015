"""The phase engine end to end, with ansible-runner replaced by a fake: the
collect playbook writes crafted bundles, the phase playbooks return tallies.
preflight → apply → verify → record, on the lab inventory, without Ansible."""

from __future__ import annotations

import itertools
import json
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import unit_helpers as h
from typer.testing import CliRunner

from sovereign.cli.main import app
from sovereign.engine import provision as engine
from sovereign.engine.ledger import Ledger
from sovereign.engine.runner import HostTally, PlaybookOutcome

CLUSTER = "mimical-lab"
HOSTS = ["mimical-1", "mimical-2"]
REBOOT = ("kernel_params: kernel command line lacks iommu=pt ttm.pages_limit=32505856; "
          "set kernel_params_reboot_ok: true or reboot")
SKIPPED = ["kernel_params: update-grub (simulated hardware)"]
BUILT = (1, 2, 4, 6, 7)
# Phase 7 (the router) runs on the orchestrator alone.
ON = {7: ["mimical-1"]}


def every(status: str) -> list[tuple[str, int, str]]:
    """(host, phase, status) of every built phase on the hosts it runs on, in run order."""
    return [(host, n, status) for n in BUILT for host in ON.get(n, HOSTS)]


@dataclass
class Call:
    playbook: str
    ident: str
    hosts: list[str]
    check: bool


@dataclass
class FakeAnsible:
    """Stands in for engine.run_playbook.

    `files(ident, host)` gives the bundle a collect run captures; `apply(call)`
    gives the tallies of a phase playbook (or raises, like a Ctrl-C would)."""

    root: Path
    files: Callable[[str, str], dict[str, str]] = lambda ident, host: h.good_files()
    apply: Callable[[Call], dict[str, HostTally]] | None = None
    calls: list[Call] = field(default_factory=list)
    runs: Iterator[int] = field(default_factory=itertools.count)

    def __call__(self, playbook: str, inventory: Path, hosts: list[str], *, run_dir: Path,
                 ident: str, check: bool = False, extravars: dict[str, Any] | None = None,
                 progress: Any = None) -> PlaybookOutcome:
        call = Call(playbook, ident, list(hosts), check)
        self.calls.append(call)
        artifacts = run_dir / "artifacts" / ident
        artifacts.mkdir(parents=True, exist_ok=True)
        if playbook == "collect.yml":
            assert extravars is not None
            target = Path(extravars["sovereign_bundle_dir"])
            for host in hosts:
                src = h.make_bundle_at(self.root / str(next(self.runs)), self.files(ident, host),
                                       {"host": host}, name=host)
                h.tar_bundle(src, target / f"{host}.tar.gz")
            tallies = {host: HostTally(ok=2) for host in hosts}
        else:
            tallies = (self.apply(call) if self.apply
                       else {host: HostTally(ok=20, changed=5) for host in hosts})
        for host, tally in tallies.items():
            if progress:
                progress(host, tally)
        failed = any(t.failed or t.unreachable for t in tallies.values())
        return PlaybookOutcome(status="failed" if failed else "successful", rc=2 if failed else 0,
                               artifacts=artifacts, hosts=tallies)

    @property
    def idents(self) -> list[str]:
        return [c.ident for c in self.calls]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAnsible:
    ansible = FakeAnsible(root=tmp_path / "captures")
    monkeypatch.setattr(engine, "run_playbook", ansible)
    return ansible


@pytest.fixture
def book(state_dir: Path) -> Ledger:
    return Ledger(state_dir / "ledger.sqlite")


def provision(runner: CliRunner, *args: str):
    return runner.invoke(app, ["provision", *args])


def explain(result: Any) -> str:
    """The output of a run, and the traceback of an unexpected exception."""
    if result.exc_info and not isinstance(result.exception, SystemExit):
        return result.output + "".join(traceback.format_exception(*result.exc_info))
    return result.output


def provision_json(runner: CliRunner, *args: str) -> dict:
    result = provision(runner, *args, "--json")
    assert result.exit_code == 0, explain(result)
    return json.loads(result.stdout)


def statuses(result: dict) -> list[tuple[str, int, str]]:
    return [(r["host"], r["phase"], r["status"]) for r in result["results"]]


def latest(book: Ledger, host: str, phase: int, **kw: bool):
    row = book.latest(CLUSTER, host, phase, **kw)
    assert row is not None
    return row


# -- the happy path and resume ---------------------------------------------------------------

def test_provision_all_applies_every_built_phase(runner: CliRunner, fake: FakeAnsible,
                                                 book: Ledger, state_dir: Path) -> None:
    result = provision_json(runner, "all")
    assert statuses(result) == every("applied")
    assert Path(result["run_dir"]).parent == state_dir / "runs"
    # Phase 2's preflight judges the capture phase 1 verified: nothing ran in between.
    assert fake.idents == ["phase-1-preflight-collect", "phase-1-apply",
                           "phase-1-verify-collect", "phase-2-apply", "phase-2-verify-collect",
                           "phase-4-apply", "phase-4-verify-collect",
                           "phase-6-apply", "phase-6-verify-collect",
                           "phase-7-apply", "phase-7-verify-collect"]
    assert all(c.hosts == ON.get(int(c.ident.split("-")[1]), HOSTS) and not c.check for c in fake.calls)
    for phase in BUILT:
        for host in ON.get(phase, HOSTS):
            row = latest(book, host, phase)
            assert (row.status, row.changed, row.run_id) == ("applied", 5, result["run_id"])
            assert row.fingerprint == engine.fingerprint(engine.PHASES[phase], h.LAB)
            assert {c["id"] for c in row.checks} >= set(engine.PHASES[phase].verify)


def test_provision_all_resumes(runner: CliRunner, fake: FakeAnsible, book: Ledger) -> None:
    provision_json(runner, "all")
    fake.calls.clear()
    again = provision_json(runner, "all")
    assert statuses(again) == every("up-to-date")
    assert fake.calls == []
    # --force and a named phase always run.
    provision_json(runner, "all", "--only", "1", "--force")
    assert fake.idents[:2] == ["phase-1-preflight-collect", "phase-1-apply"]
    fake.calls.clear()
    assert statuses(provision_json(runner, "phase-2")) == [
        ("mimical-1", 2, "applied"), ("mimical-2", 2, "applied")]


def test_resume_reruns_after_the_inventory_changed(runner: CliRunner, fake: FakeAnsible,
                                                   lab_copy: Path) -> None:
    provision_json(runner, "all", "-i", str(lab_copy))
    h.edit_yaml(lab_copy / "host_vars/mimical-2.yml", lambda d: d.update(rocm_users=["llama"]))
    fake.calls.clear()
    result = provision_json(runner, "all", "-i", str(lab_copy))
    # The fingerprint covers the whole inventory: both hosts re-run.
    assert statuses(result) == every("applied")


def test_limit_and_resume_per_host(runner: CliRunner, fake: FakeAnsible) -> None:
    assert statuses(provision_json(runner, "all", "--only", "1", "--limit", "mimical-2")) == [
        ("mimical-2", 1, "applied")]
    assert fake.calls[0].hosts == ["mimical-2"]
    fake.calls.clear()
    result = provision_json(runner, "all", "--only", "1")
    assert statuses(result) == [("mimical-2", 1, "up-to-date"), ("mimical-1", 1, "applied")]
    assert all(c.hosts == ["mimical-1"] for c in fake.calls)


# -- preflight ------------------------------------------------------------------------------

def test_preflight_failure_applies_nothing(runner: CliRunner, fake: FakeAnsible,
                                           book: Ledger) -> None:
    fake.files = lambda ident, host: h.good_files(gib_visible=62 if host == "mimical-2" else 125)
    result = provision(runner, "phase-2")
    assert result.exit_code == 4, result.output
    err = h.plain(result.stderr)
    assert "error: phase-2: preflight failed; nothing was applied" in err
    assert "mimical-2: MEM-TOTAL: 62.0 GiB visible of 128 GiB installed (48%)" in err
    assert "hint: fix the failures above, or skip them with --ignore-preflight-errors MEM-TOTAL" \
        in err
    assert fake.idents == ["phase-2-preflight-collect"]
    for host in HOSTS:
        row = latest(book, host, 2)
        assert (row.status, row.message) == ("failed", "preflight failed")
    # The preflight table was shown before the error.
    assert "MEM-TOTAL" in result.stdout


def test_ignore_preflight_errors(runner: CliRunner, fake: FakeAnsible, book: Ledger) -> None:
    fake.files = lambda ident, host: h.good_files(gib_visible=62 if host == "mimical-2" else 125)
    fake.apply = None
    result = provision(runner, "phase-2", "--ignore-preflight-errors", "MEM-TOTAL", "--json")
    # The pool no longer fits the memory the OS sees: verify fails on mimical-2.
    assert result.exit_code == 4, result.output
    assert "phase-2-apply" in fake.idents
    assert "applied, but verification failed on mimical-2" in h.plain(result.stderr)
    assert latest(book, "mimical-1", 2).status == "applied"
    assert latest(book, "mimical-2", 2).status == "failed"
    assert latest(book, "mimical-2", 2).message == "verify failed"


# -- apply ------------------------------------------------------------------------------------

def test_a_failed_playbook(runner: CliRunner, fake: FakeAnsible, book: Ledger) -> None:
    fake.apply = lambda call: {
        "mimical-1": HostTally(ok=12, changed=2),
        "mimical-2": HostTally(ok=9, failed=1, failures=[
            "Install the ROCm runtime: No package matching 'rocm-hip-runtime' is available"])}
    result = provision(runner, "phase-2")
    assert result.exit_code == 5, result.output
    err = h.plain(result.stderr)
    assert "error: phase-2: the playbook failed" in err
    assert ("mimical-2: Install the ROCm runtime: No package matching 'rocm-hip-runtime' is "
            "available") in err
    assert "hint: run artifacts: " in err and "phase-2-apply" in err
    assert "phase-2-verify-collect" not in fake.idents
    one, two = latest(book, "mimical-1", 2), latest(book, "mimical-2", 2)
    assert (one.status, one.message) == ("failed", "failed on another host")
    assert (two.status, two.failed_tasks) == ("failed", 1)
    assert two.message == ("Install the ROCm runtime: No package matching 'rocm-hip-runtime' "
                           "is available")
    assert two.artifacts and two.artifacts.endswith("phase-2-apply")


def test_an_unreachable_host(runner: CliRunner, fake: FakeAnsible, book: Ledger) -> None:
    fake.apply = lambda call: {
        "mimical-1": HostTally(ok=3),
        "mimical-2": HostTally(unreachable=True, failures=[
            "unreachable: ssh: connect to host 10.213.77.12 port 22: No route to host"])}
    result = provision(runner, "phase-1")
    assert result.exit_code == 6, result.output
    err = h.plain(result.stderr)
    assert "error: unreachable: mimical-2" in err
    assert "mimical-2 (10.213.77.12): unreachable: ssh: connect to host" in err
    assert "hint: is the lab up? run `sovereign lab up`" in err  # the lab is simulated
    assert latest(book, "mimical-2", 1).status == "failed"


def test_interrupted_during_apply(runner: CliRunner, fake: FakeAnsible, book: Ledger) -> None:
    def ctrl_c(call: Call) -> dict[str, HostTally]:
        raise KeyboardInterrupt

    fake.apply = ctrl_c
    result = provision(runner, "phase-1")
    assert result.exit_code == 130, result.output
    assert "interrupted" in h.plain(result.stderr)
    for host in HOSTS:
        row = latest(book, host, 1)
        assert (row.status, row.effective_status) == ("interrupted", "interrupted")
        assert row.message == "KeyboardInterrupt()"
        assert row.finished is not None


def test_an_unexpected_error_still_closes_the_rows(runner: CliRunner, fake: FakeAnsible,
                                                   book: Ledger) -> None:
    def boom(call: Call) -> dict[str, HostTally]:
        raise RuntimeError("ansible-runner exploded")

    fake.apply = boom
    result = provision(runner, "phase-1")
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert latest(book, "mimical-1", 1).status == "failed"
    assert latest(book, "mimical-1", 1).message == "RuntimeError('ansible-runner exploded')"


# -- verify -----------------------------------------------------------------------------------

def test_reboot_required_and_simulated_skips_are_recorded(runner: CliRunner, fake: FakeAnsible,
                                                          book: Ledger) -> None:
    def after_apply(ident: str, host: str) -> dict[str, str]:
        files = h.good_files()
        if ident == "phase-2-verify-collect":  # the drop-in is written, the kernel not rebooted
            files["proc-cmdline.txt"] = h.cmdline("")
        return files

    fake.files = after_apply
    fake.apply = lambda call: {host: HostTally(ok=30, changed=4, skipped_steps=SKIPPED,
                                               reboot_required=[REBOOT]) for host in call.hosts}
    result = provision(runner, "phase-2")
    assert result.exit_code == 0, result.output
    out = h.plain(result.stdout)
    assert "mimical-1 phase-2: applied (4 changed)" in out
    assert f"reboot required: {REBOOT}" in out
    assert "reboot required: reboot required: iommu=None" in out
    assert f"skipped on simulated hardware: {SKIPPED[0]}" in out
    row = latest(book, "mimical-2", 2)
    assert row.status == "applied"
    assert row.skipped_steps == SKIPPED
    assert row.reboot_required[0] == REBOOT
    assert row.reboot_required[1].startswith("reboot required: iommu=None (want iommu=pt)")
    status = runner.invoke(app, ["status", "--json"])
    cell = json.loads(status.stdout)["hosts"][1]["phases"][1]
    assert (cell["status"], cell["reboot_required"]) == ("applied", row.reboot_required)
    assert "reboot required" in h.plain(runner.invoke(app, ["status"]).stdout)
    # Resuming reports the reboot that is still due.
    again = provision_json(runner, "all", "--only", "2")
    assert [r["reboot_required"] for r in again["results"]] == [row.reboot_required] * 2


# -- check mode ----------------------------------------------------------------------------------

def test_check_mode_records_checked_rows_only(runner: CliRunner, fake: FakeAnsible,
                                              book: Ledger) -> None:
    result = provision_json(runner, "all", "--check")
    assert statuses(result) == every("checked")
    assert [c.ident for c in fake.calls if c.check] == ["phase-1-apply", "phase-2-apply", "phase-4-apply",
                                                        "phase-6-apply", "phase-7-apply"]
    assert not any(c.ident.endswith("verify-collect") for c in fake.calls)
    assert book.latest(CLUSTER, "mimical-1", 1) is None
    assert latest(book, "mimical-1", 1, include_check=True).status == "checked"
    # A dry run never counts as applied: the real run still runs.
    fake.calls.clear()
    assert statuses(provision_json(runner, "all", "--only", "1"))[0][2] == "applied"
