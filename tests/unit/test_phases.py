"""Phase names, built phases, the fingerprint, and the argument errors of
`sovereign provision` (all before any playbook would run)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner
from unit_helpers import LAB, PROJECT, edit_yaml, plain

from sovereign.checks import REGISTRY
from sovereign.cli.main import app
from sovereign.engine import provision as engine
from sovereign.engine.phases import (
    PHASES,
    parse_phase_list,
    parse_phase_name,
    phase,
    require_built,
)
from sovereign.errors import ExitCode, PhaseNotBuilt, SovereignError


@pytest.fixture(autouse=True)
def _no_ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach a playbook run."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"run_playbook called: {args}")

    monkeypatch.setattr(engine, "run_playbook", refuse)


# -- names --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "number"), [
    ("phase-2", 2), ("2", 2), ("all", None), ("ALL", None), (" Phase-1 ", 1), ("phase8", 8),
])
def test_parse_phase_name(text: str, number: int | None) -> None:
    assert parse_phase_name(text) == number


@pytest.mark.parametrize(("text", "message"), [
    ("phase-9", "there is no phase 9"),
    ("0", "there is no phase 0"),
    ("bogus", "'bogus' is not a phase"),
    ("phase-", "'phase-' is not a phase"),
    ("-1", "'-1' is not a phase"),
])
def test_parse_phase_name_rejects(text: str, message: str) -> None:
    with pytest.raises(SovereignError) as caught:
        parse_phase_name(text)
    assert caught.value.message == message
    assert caught.value.hint
    assert caught.value.exit_code == ExitCode.ERROR


@pytest.mark.parametrize(("text", "numbers"), [
    ("1,2", [1, 2]), ("2,1,2", [1, 2]), ("phase-2", [2]), ("1, phase-2,", [1, 2]), ("", []),
])
def test_parse_phase_list(text: str, numbers: list[int]) -> None:
    assert parse_phase_list(text) == numbers


@pytest.mark.parametrize("text", ["all", "1,all", "1,9", "1,x"])
def test_parse_phase_list_rejects(text: str) -> None:
    with pytest.raises(SovereignError):
        parse_phase_list(text)


def test_the_eight_phases() -> None:
    assert list(PHASES) == list(range(1, 9))
    assert [p.number for p in PHASES.values() if p.built] == [1, 2, 4, 6, 7]
    assert phase(7).group == "sovereign_orchestrator"
    assert [p.number for p in PHASES.values() if p.deploys_models] == [4]
    assert phase(2).name == "phase-2"
    assert phase(2).playbook == "phase-2-os-igpu.yml"
    for p in PHASES.values():
        if p.built:
            assert (PROJECT / "playbooks" / str(p.playbook)).is_file()
        # Every check a phase names is registered.
        assert set(p.preflight) | set(p.verify) <= set(REGISTRY)


def test_require_built() -> None:
    assert require_built(PHASES[1]) is PHASES[1]
    with pytest.raises(PhaseNotBuilt) as caught:
        require_built(PHASES[3])
    assert caught.value.exit_code == ExitCode.NOT_BUILT == 8
    assert caught.value.message == "phase 3 (VFIO and the Windows VM) is not built yet"
    assert caught.value.hint == "phases built so far: 1, 2, 4, 6, 7"


# -- the fingerprint --------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's playbooks and roles, used as SOVEREIGN_HOME."""
    root = tmp_path / "home"
    for part in ("playbooks", "roles"):
        shutil.copytree(PROJECT / part, root / part)
    monkeypatch.setenv("SOVEREIGN_HOME", str(root))
    return root


def test_fingerprint_is_stable(lab_copy: Path) -> None:
    first = engine.fingerprint(PHASES[2], lab_copy)
    assert first == engine.fingerprint(PHASES[2], lab_copy)
    assert re.fullmatch(r"[0-9a-f]{16}", first), first
    assert first != engine.fingerprint(PHASES[1], lab_copy)


def test_fingerprint_changes_with_the_inventory(lab_copy: Path) -> None:
    before = {n: engine.fingerprint(PHASES[n], lab_copy) for n in (1, 2)}
    edit_yaml(lab_copy / "host_vars/mimical-2.yml", lambda d: d.update(kernel_params_gpu_pool_gib=96))
    after = {n: engine.fingerprint(PHASES[n], lab_copy) for n in (1, 2)}
    assert after[1] != before[1] and after[2] != before[2]


def test_fingerprint_changes_with_a_new_inventory_file(lab_copy: Path) -> None:
    before = engine.fingerprint(PHASES[1], lab_copy)
    (lab_copy / "group_vars/sovereign_inference.yml").write_text("---\nrocm_users: [llama]\n")
    assert engine.fingerprint(PHASES[1], lab_copy) != before


def test_fingerprint_changes_with_a_role_of_the_phase_only(home: Path) -> None:
    before = {n: engine.fingerprint(PHASES[n], LAB) for n in (1, 2)}
    template = home / "roles/kernel_params/templates/90-sovereign-ttm.conf.j2"
    template.write_text(template.read_text() + "# one more line\n")
    after = {n: engine.fingerprint(PHASES[n], LAB) for n in (1, 2)}
    assert after[2] != before[2]
    assert after[1] == before[1]  # phase 1 does not run kernel_params


def test_fingerprint_changes_with_the_playbook(home: Path) -> None:
    before = engine.fingerprint(PHASES[1], LAB)
    playbook = home / "playbooks/phase-1-baseline.yml"
    playbook.write_text(playbook.read_text() + "# edited\n")
    assert engine.fingerprint(PHASES[1], LAB) != before


# -- `sovereign provision` argument errors -------------------------------------------------------

def provision(runner: CliRunner, *args: str):
    return runner.invoke(app, ["provision", *args])


def test_provision_an_unbuilt_phase(runner: CliRunner) -> None:
    result = provision(runner, "phase-3")
    assert result.exit_code == 8, result.output
    err = plain(result.stderr)
    assert "error: phase 3 (VFIO and the Windows VM) is not built yet" in err
    assert "hint: phases built so far: 1, 2" in err


def test_provision_all_only_an_unbuilt_phase(runner: CliRunner) -> None:
    result = provision(runner, "all", "--only", "1,3")
    assert result.exit_code == 8, result.output
    assert "phase 3" in plain(result.stderr)


@pytest.mark.parametrize(("args", "message"), [
    (["all", "--from", "9"], "there is no phase 9"),
    (["all", "--from", "all"], "--from takes one phase, e.g. --from 2"),
    (["all", "--from", "8"], "no built phase selected"),
    (["all", "--only", "1", "--from", "2"], "no built phase selected"),
    (["all", "--only", "all"], "--only takes phase numbers, e.g. --only 1,2"),
    (["bogus"], "'bogus' is not a phase"),
    (["phase-9"], "there is no phase 9"),
    (["all", "--ignore-preflight-errors", "NOPE"], "unknown check id(s): NOPE"),
    (["all", "--ignore-preflight-errors", "mem-total,Nope,CPU-X"],
     "unknown check id(s): CPU-X, NOPE"),
])
def test_provision_argument_errors(runner: CliRunner, args: list[str], message: str) -> None:
    result = provision(runner, *args)
    assert result.exit_code == ExitCode.ERROR, result.output
    assert f"error: {message}" in plain(result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["phase-2", "--from", "1"], ["phase-2", "--only", "1"]])
def test_options_that_do_not_go_together_are_wrong_usage(runner: CliRunner, args: list[str]) -> None:
    result = provision(runner, *args)
    assert result.exit_code == ExitCode.USAGE == 2, result.output
    assert "error: --from and --only go with `provision all`" in plain(result.stderr)


def test_unknown_check_id_hint(runner: CliRunner) -> None:
    result = provision(runner, "all", "--ignore-preflight-errors", "NOPE")
    assert "hint: `sovereign hw checks` lists them" in plain(result.stderr)


def test_provision_with_a_missing_inventory(runner: CliRunner, tmp_path: Path) -> None:
    result = provision(runner, "all", "-i", str(tmp_path / "nowhere"))
    assert result.exit_code == 3, result.output
    assert f"{tmp_path / 'nowhere'}: not an inventory directory" in plain(result.stderr)


def test_provision_with_an_invalid_inventory(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars/mimical-1.yml", lambda d: d.pop("sovereign_hardware"))
    result = provision(runner, "phase-1", "-i", str(lab_copy))
    assert result.exit_code == 3, result.output
    assert "lab/host_vars/mimical-1.yml: sovereign_hardware" in plain(result.stderr)


def test_provision_with_an_unknown_limit(runner: CliRunner) -> None:
    result = provision(runner, "phase-1", "--limit", "mimical-7")
    assert result.exit_code == 3, result.output
    assert "--limit names mimical-7" in plain(result.stderr)
