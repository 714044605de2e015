"""sovereign/engine/runner.py on a real ansible-runner run, on this machine
(`ansible_connection=local`, no root, no lab): a tiny playbook whose tasks
change, stay ok, are skipped and fail on purpose on a second host alias, and
what the engine makes of its events: per-host tallies, the failure's own
words, the skipped steps a play reports, and every update the progress display
(sovereign/cli/progress.py) receives."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sovereign.cli.progress import RichReporter
from sovereign.engine.runner import HostTally, PlaybookOutcome, run_playbook

PLAYBOOK = """\
---
- name: Exercise the runner's event handling
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        content: "{{ inventory_hostname }}\\n"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
        mode: "0644"

    - name: Read it back
      ansible.builtin.stat:
        path: "{{ out_dir }}/{{ inventory_hostname }}.txt"

    - name: Never on these hosts
      ansible.builtin.debug:
        msg: not shown
      when: false

    - name: Fail on beta
      ansible.builtin.assert:
        that: inventory_hostname != 'beta'
        fail_msg: beta fails on purpose

    - name: Report a skipped step
      ansible.builtin.set_fact:
        sovereign_skipped: ["update-grub (simulated hardware)"]
"""

TASKS = ["Write a file", "Read it back", "Never on these hosts", "Fail on beta", "Report a skipped step"]


@dataclass(frozen=True)
class Seen:
    """What the progress display was shown for a host at one event."""

    task: str
    ok: int
    changed: int
    failed: int
    skipped: int
    unreachable: bool


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[PlaybookOutcome, dict[str, list[Seen]],
                                                           RichReporter, Path]:
    root = tmp_path_factory.mktemp("localhost")
    playbook = root / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = root / "hosts.ini"
    inventory.write_text("[nodes]\nalpha\nbeta\n\n[nodes:vars]\nansible_connection=local\n"
                         f"ansible_python_interpreter={sys.executable}\n")
    out = root / "out"
    out.mkdir()
    seen: dict[str, list[Seen]] = {}
    display = RichReporter()

    def progress(host: str, tally: HostTally) -> None:
        seen.setdefault(host, []).append(Seen(tally.task, tally.ok, tally.changed, tally.failed,
                                              tally.skipped, tally.unreachable))
        display.task(host, tally)

    with pytest.MonkeyPatch.context() as env:
        # This checkout's ansible.cfg and roles (the autouse isolation is per test).
        env.delenv("SOVEREIGN_HOME", raising=False)
        # An absolute playbook path stands in for one under playbooks/.
        outcome = run_playbook(str(playbook), inventory, ["alpha", "beta"], run_dir=root / "run",
                               ident="localhost", extravars={"out_dir": str(out)}, progress=progress)
    return outcome, seen, display, out


def test_the_run_failed_with_ansible_s_code(run) -> None:
    outcome, _, _, out = run
    assert (outcome.status, outcome.rc, outcome.ok) == ("failed", 2, False)
    assert set(outcome.hosts) == {"alpha", "beta"}
    # The changing task did change both hosts.
    assert (out / "alpha.txt").read_text() == "alpha\n" and (out / "beta.txt").read_text() == "beta\n"
    # The artifacts stay on disk; ansible's own recap agrees with the tallies.
    assert (outcome.artifacts / "stdout").is_file()
    recap = {line.split()[0]: line for line in outcome.tail() if " : ok=" in line}
    assert "ok=4 " in recap["alpha"] and "failed=0 " in recap["alpha"]
    assert "ok=2 " in recap["beta"] and "failed=1 " in recap["beta"]


def test_per_host_tallies(run) -> None:
    outcome, _, _, _ = run
    alpha, beta = outcome.hosts["alpha"], outcome.hosts["beta"]
    assert (alpha.ok, alpha.changed, alpha.failed, alpha.skipped, alpha.unreachable) == (4, 1, 0, 1, False)
    assert alpha.failures == []
    assert alpha.task == "Report a skipped step"
    assert alpha.skipped_steps == ["update-grub (simulated hardware)"]
    assert (beta.ok, beta.changed, beta.failed, beta.skipped, beta.unreachable) == (2, 1, 1, 1, False)
    # The failure in the assertion's own words, after the task's name.
    assert beta.failures == ["Fail on beta: beta fails on purpose"]
    # beta stopped at its failure: it never reported a skipped step.
    assert beta.task == "Fail on beta" and beta.skipped_steps == []


def test_the_progress_display_sees_every_task_start_and_result(run) -> None:
    _, seen, _, _ = run
    # Each task shows first as started (the counts so far), then with its result.
    assert seen["alpha"] == [
        Seen(TASKS[0], 0, 0, 0, 0, False), Seen(TASKS[0], 1, 1, 0, 0, False),
        Seen(TASKS[1], 1, 1, 0, 0, False), Seen(TASKS[1], 2, 1, 0, 0, False),
        Seen(TASKS[2], 2, 1, 0, 0, False), Seen(TASKS[2], 2, 1, 0, 1, False),
        Seen(TASKS[3], 2, 1, 0, 1, False), Seen(TASKS[3], 3, 1, 0, 1, False),
        Seen(TASKS[4], 3, 1, 0, 1, False), Seen(TASKS[4], 4, 1, 0, 1, False),
    ]
    assert seen["beta"] == [
        Seen(TASKS[0], 0, 0, 0, 0, False), Seen(TASKS[0], 1, 1, 0, 0, False),
        Seen(TASKS[1], 1, 1, 0, 0, False), Seen(TASKS[1], 2, 1, 0, 0, False),
        Seen(TASKS[2], 2, 1, 0, 0, False), Seen(TASKS[2], 2, 1, 0, 1, False),
        Seen(TASKS[3], 2, 1, 0, 1, False), Seen(TASKS[3], 2, 1, 1, 1, False),
    ]


def test_the_display_s_rows_end_where_the_run_ended(run) -> None:
    _, _, display, _ = run
    rows = {h: (t.task, t.ok, t.changed, t.failed, t.unreachable) for h, t in display.rows.items()}
    assert rows == {"alpha": ("Report a skipped step", 4, 1, 0, False),
                    "beta": ("Fail on beta", 2, 1, 1, False)}
