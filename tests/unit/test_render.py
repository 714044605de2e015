"""What a phase prints: a line per host, then only the checks that warned or
failed (with their hints); `-v` every check; `--json` as before.

On real runs: `sovereign provision phase-2 --check` against this machine
(ansible_connection=local, no root, no lab): the real collector captures this
machine, whose CPU is never the one the inventory names, so preflight stops
the phase before anything is applied. And a real ansible-runner run on
localhost for the task counts of the line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import unit_helpers as h
from rich.console import Console
from typer.testing import CliRunner

from sovereign.checks import Expectations, Status, run_checks
from sovereign.cli.main import app
from sovereign.cli.render import phase_line, phase_summary
from sovereign.engine.phases import PHASES
from sovereign.engine.provision import HostPhaseReport
from sovereign.engine.runner import run_playbook
from sovereign.hw.bundle import Bundle
from sovereign.hw.facts import Facts
from sovereign.inventory import load_inventory

# A Ryzen AI Max+ 390 comes with a Radeon 8050S: no machine reports this model.
NO_SUCH_CPU = "AMD RYZEN AI MAX+ 390 w/ Radeon 8060S"


@pytest.fixture
def here(lab_copy: Path) -> Path:
    """The lab inventory, its two nodes this machine: reached without SSH, its
    real hardware captured (not the recorded profile), a CPU no machine has."""
    nodes = lab_copy / "group_vars" / "sovereign_nodes.yml"
    h.edit_yaml(nodes, lambda d: [d.pop(k) for k in list(d) if k.startswith("ansible_")])
    h.edit_yaml(nodes, lambda d: d.update(ansible_connection="local",
                                          ansible_python_interpreter=sys.executable))
    h.edit_yaml(lab_copy / "group_vars" / "all.yml",
                lambda d: (d.update(sovereign_simulated_hardware=False), d.pop("sovereign_hw_profile")))
    for host in ("mimical-1", "mimical-2"):
        h.edit_yaml(lab_copy / "host_vars" / f"{host}.yml",
                    lambda d: d["sovereign_hardware"].update(cpu_model=NO_SUCH_CPU))
    return lab_copy


def rows(stdout: str) -> list[list[str]]:
    """The cells of each row of the printed check tables (host, stage, check, status,
    message, hint), a cell's wrapped lines joined."""
    found: list[list[str]] = []
    for line in h.plain(stdout).splitlines():
        cells = [c.strip() for c in line.strip().split("│")[1:-1]]
        if cells and cells[0]:
            found.append(cells)
        elif cells and found:  # a wrapped row goes on
            found[-1] = [f"{a} {b}".strip() for a, b in zip(found[-1], cells, strict=True)]
    return found


def test_a_failed_preflight_shows_the_failure_with_its_hint_and_not_what_passed(
        runner: CliRunner, here: Path) -> None:
    quiet = runner.invoke(app, ["provision", "phase-2", "-i", str(here), "--check"])
    verbose = runner.invoke(app, ["provision", "phase-2", "-i", str(here), "--check", "-v"])
    as_json = runner.invoke(app, ["provision", "phase-2", "-i", str(here), "--check", "--json"])
    for result in (quiet, verbose, as_json):
        assert result.exit_code == 4, result.output  # preflight failed: nothing was applied
        assert "error: phase-2: preflight failed; nothing was applied" in h.plain(result.stderr)

    every = {(r[0], r[2]): r[3] for r in rows(verbose.stdout)}
    preflight = PHASES[2].preflight
    assert set(every) == {(host, c) for host in ("mimical-1", "mimical-2") for c in preflight}
    passed = {c for (_, c), status in every.items() if status == "pass"}
    assert passed, f"this machine passes none of {preflight}: nothing to leave out ({every})"

    out = h.plain(quiet.stdout)
    # One line per host; only what warned or failed, the failure with its hint.
    lines = [line for line in out.splitlines() if line.startswith("mimical-")]
    n_pass = sum(1 for (host, _), s in every.items() if host == "mimical-1" and s == "pass")
    assert lines[0].startswith(f"mimical-1 phase-2: checks {n_pass} passed, ")
    assert lines[0].endswith("; tasks not run")
    assert [line.split(":")[0] for line in lines] == ["mimical-1 phase-2", "mimical-2 phase-2"]
    shown = {(r[0], r[2]) for r in rows(quiet.stdout)}
    assert shown == {key for key, status in every.items() if status in {"warn", "fail"}}
    cpu = next(r for r in rows(quiet.stdout) if r[:3] == ["mimical-2", "preflight", "CPU-MODEL"])
    assert cpu[3] == "fail" and cpu[4].endswith(f"the inventory expects '{NO_SUCH_CPU}'")
    assert cpu[5].endswith("is the right machine, or correct sovereign_hardware.cpu_model")
    for check_id in passed:
        assert check_id not in out
    assert "-v: every check" in out
    # --json: the output is JSON alone, none of the summary (here: no results at all).
    assert as_json.stdout == ""


def test_json_is_unchanged(runner: CliRunner, here: Path, state_dir: Path) -> None:
    """The JSON of a run has the keys it always had, and nothing the summary added."""
    from sovereign.engine.provision import fingerprint, ledger

    inv = load_inventory(here)
    book = ledger()
    for host in inv.nodes():
        rid = book.start(run_id="r0", cluster=inv.cluster_name, inventory=str(inv.path), host=host,
                         phase=1, check_mode=False, git_commit=None,
                         fingerprint=fingerprint(PHASES[1], inv.path))
        book.finish(rid, status="applied", checks=[], artifacts=str(state_dir))
    result = runner.invoke(app, ["provision", "all", "--only", "1", "-i", str(here), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["run_id", "run_dir", "results"]
    assert [list(r) for r in data["results"]] == [
        ["host", "phase", "status", "changed", "skipped_steps", "reboot_required", "warnings",
         "checks"]] * 2
    assert [(r["host"], r["status"]) for r in data["results"]] == [
        ("mimical-1", "up-to-date"), ("mimical-2", "up-to-date")]


PLAYBOOK = """\
- name: Two tasks
  hosts: all
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        content: "x\\n"
        dest: "{{ out }}/x.txt"
        mode: "0644"
    - name: Read it back
      ansible.builtin.stat:
        path: "{{ out }}/x.txt"
"""


def test_the_line_counts_a_real_run_s_tasks_and_checks(tmp_path: Path,
                                                       make_bundle) -> None:
    playbook, inventory = tmp_path / "play.yml", tmp_path / "hosts.ini"
    playbook.write_text(PLAYBOOK)
    inventory.write_text(f"mimical-1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    outcome = run_playbook(str(playbook), inventory, ["mimical-1"], run_dir=tmp_path / "run",
                           ident="render", extravars={"out": str(tmp_path)})
    hot = make_bundle({**h.good_files(), "sensors.txt": h.sensors(91.0)}, name="mimical-1")
    inv = load_inventory(h.PRODUCTION)
    results = run_checks(Facts(Bundle.load(hot)), Expectations.from_host(
        inv.hosts["mimical-1"], inv.fabric_addresses()), PHASES[1].verify, set())
    statuses = {r.id: r.status for r in results}
    assert statuses["THERMALS"] is Status.WARN and statuses["CPU-MODEL"] is Status.PASS
    report = HostPhaseReport("mimical-1", checks={"verify": results}, tasks=outcome.hosts["mimical-1"])

    n = {s: sum(1 for r in results if r.status is s) for s in Status}
    assert h.plain(Console(width=150).render_str(phase_line("phase-1", report)).plain) == (
        f"mimical-1 phase-1: checks {n[Status.PASS]} passed, 1 warned, 0 failed, "
        f"{n[Status.SKIP]} skipped; tasks 2 ok, 1 changed, 0 failed")

    console = Console(width=150, record=True)
    for item in phase_summary("phase-1", [report]):
        console.print(item)
    quiet = console.export_text()
    assert [r[2] for r in rows(quiet)] == ["THERMALS"]
    assert next(r for r in results if r.id == "THERMALS").hint.split()[0] in quiet
    console = Console(width=150, record=True)
    for item in phase_summary("phase-1", [report], verbose=True):
        console.print(item)
    assert [r[2] for r in rows(console.export_text())] == [r.id for r in results]
