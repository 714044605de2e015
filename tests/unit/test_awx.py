"""AWX as code (sovereign/awx/, playbooks/awx.yml, awx/). AWX itself cannot run
here, so the configuration is proven against what can: the awx.awx modules'
own argument specs (the collection the `ansible` package ships), the project's
playbooks and roles (every template's playbook exists and reads its survey),
ansible-playbook run as AWX runs it (the project's ansible.cfg alone, from a
copy of the project root), ansible-builder on the execution environment, and
a real `sovereign awx apply` through ansible-runner up to the AWX it cannot
reach."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from unit_helpers import PRODUCTION, PROJECT, plain

from sovereign.awx import argspecs, model, render
from sovereign.awx.playbooks import scan
from sovereign.engine import phases
from sovereign.engine.phases import PHASES, Phase

BIN = Path(sys.executable).parent
AWX_PLAYBOOK = PROJECT / "playbooks" / "awx.yml"
EE_DIR = PROJECT / "awx"


@pytest.fixture(scope="module")
def config() -> model.AwxConfig:
    return model.build(inventory=PRODUCTION)


def _awx_tasks(playbook: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(task name, awx.awx module, its arguments with the play's module_defaults)."""
    defaults = playbook.get("module_defaults", {}).get("group/awx.awx.controller", {})
    out = []
    for task in playbook["tasks"]:
        for key, args in task.items():
            if key.startswith("awx.awx."):
                out.append((task["name"], key.removeprefix("awx.awx."), {**defaults, **args}))
    return out


# -- the awx.awx modules' argument specs ------------------------------------------------------------------


def test_every_call_of_the_committed_playbook_passes_its_modules_argument_spec() -> None:
    play = yaml.safe_load(AWX_PLAYBOOK.read_text())[0]
    tasks = _awx_tasks(play)
    modules = {m for _, m, _ in tasks}
    assert {"organization", "project", "inventory", "inventory_source", "credential", "job_template",
            "workflow_job_template", "workflow_job_template_node", "execution_environment"} <= modules
    found = {name: argspecs.problems(module, args) for name, module, args in tasks}
    assert {name: p for name, p in found.items() if p} == {}


@pytest.mark.parametrize(("module", "change", "expected"), [
    ("job_template", lambda p: p.update(playbok=p.pop("playbook")), "playbok"),
    ("job_template", lambda p: p.update(job_type="dry-run"), "job_type must be one of"),
    ("job_template", lambda p: p.pop("name"), "name"),
    ("inventory_source", lambda p: p.update(source="git"), "source must be one of"),
    ("project", lambda p: p.update(scm_update_on_launch="sometimes"), "scm_update_on_launch"),
    ("workflow_job_template_node",
     lambda p: p.get("approval_node") and p["approval_node"].update(timout=p["approval_node"].pop("timeout")),
     "approval_node: unsupported parameter timout"),
])
def test_a_wrong_key_or_value_is_caught(config: model.AwxConfig, module: str, change: Any,
                                        expected: str) -> None:
    calls = [c for c in render.calls(config) if c.module == module
             and (module != "workflow_job_template_node" or "approval_node" in c.params)]
    assert calls, f"no call of {module} rendered"
    params = json.loads(json.dumps(calls[0].params))
    assert argspecs.problems(module, params) == []
    change(params)
    assert any(expected in p for p in argspecs.problems(module, params)), argspecs.problems(module, params)


def test_the_committed_files_are_the_render_of_this_tree(config: model.AwxConfig) -> None:
    assert AWX_PLAYBOOK.read_text() == render.playbook_document(config), \
        "playbooks/awx.yml is stale: run `sovereign awx render`"
    assert (EE_DIR / "config.yml").read_text() == render.config_document(config), \
        "awx/config.yml is stale: run `sovereign awx render`"


# -- the model: derived from the phase registry, the playbooks, the inventory -----------------------------


def test_one_template_per_built_phase_plus_validate_and_bench(config: model.AwxConfig) -> None:
    playbooks = [t.playbook for t in config.templates]
    built = [p.playbook for p in PHASES.values() if p.built]
    assert playbooks == [*built, "validate.yml", "bench.yml"]
    for t in config.templates:
        assert (PROJECT / "playbooks" / t.playbook).is_file()
    names = [t.name for t in config.templates]
    assert len(set(names)) == len(names)


def test_every_survey_variable_is_read_by_its_playbook_or_its_roles(config: model.AwxConfig) -> None:
    asked = {(t.playbook, q.variable) for t in config.templates for q in t.survey}
    assert ("phase-2-os-igpu.yml", "kernel_params_reboot_ok") in asked
    assert ("validate.yml", "sovereign_validate_phase") in asked
    assert {(p, v) for p, v in asked if not scan(p).reads(v)} == set()
    # ... and the check can fail: phase 1 never reads phase 2's gate, nor bench a validate option.
    assert not scan("phase-1-baseline.yml").reads("kernel_params_reboot_ok")
    assert not scan("bench.yml").reads("sovereign_validate_phase")


def test_the_workflow_approves_before_each_reboot_and_verifies_each_phase(config: model.AwxConfig) -> None:
    ids = [n.identifier for n in config.workflow]
    built = [p.name for p in PHASES.values() if p.built]
    assert [i for i in ids if i in built] == built
    for name in built:
        assert ids[ids.index(name) + 1] == f"verify-{name}"
    assert ids[ids.index("phase-2") - 1] == "approve-phase-2"
    approvals = [n.identifier for n in config.workflow if n.approval]
    assert approvals == ["approve-phase-2"]
    phase2 = next(n for n in config.workflow if n.identifier == "phase-2")
    assert phase2.extra_data == {"kernel_params_reboot_ok": True}
    # Rendered last node first, each pointing at the next: every success node exists when named.
    nodes = [c.params for c in render.calls(config) if c.module == "workflow_job_template_node"]
    created: set[str] = set()
    for node in nodes:
        assert set(node.get("success_nodes", [])) <= created
        created.add(node["identifier"])
    assert created == set(ids)


def test_a_new_phase_gets_its_template_and_its_place_without_an_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Phase 3 built on phase 2's playbook (its reboot gate included), only in the registry.
    extended = dict(PHASES)
    extended[3] = Phase(3, "vfio-vm", "VFIO and the Windows VM", playbook="phase-2-os-igpu.yml")
    monkeypatch.setattr(phases, "PHASES", extended)
    monkeypatch.setattr(model, "PHASES", extended)
    c = model.build(inventory=PRODUCTION)
    assert any(t.name.startswith("sovereign phase-3:") for t in c.templates)
    ids = [n.identifier for n in c.workflow]
    assert ids.index("approve-phase-3") == ids.index("phase-3") - 1
    assert ids.index("verify-phase-2") < ids.index("approve-phase-3") < ids.index("phase-4")


# -- the playbooks, run as AWX runs them -------------------------------------------------------------------


@pytest.fixture(scope="module")
def awx_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project root as AWX checks it out: what git tracks, no venv."""
    root = tmp_path_factory.mktemp("project")
    for name in ("ansible.cfg", "playbooks", "roles", "plugins", "inventory", "sovereign"):
        src = PROJECT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", ".bundles"))
        else:
            shutil.copy2(src, root / name)
    return root


def _as_awx(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No user or site configuration, no roles path but the project's: ANSIBLE_* of this
    # shell dropped, HOME empty, ansible.cfg the project root's alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    home = root.parent / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory/production", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("playbook", sorted({t.playbook for t in model.build(inventory=PRODUCTION).templates}
                                            | {"awx.yml"}))
def test_each_template_playbook_parses_and_lists_its_tasks_as_awx_runs_it(awx_project: Path,
                                                                          playbook: str) -> None:
    path = f"playbooks/{playbook}"
    syntax = _as_awx(awx_project, "--syntax-check", path)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    listed = _as_awx(awx_project, "--list-tasks", path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "TASK TAGS" in listed.stdout or "tasks:" in listed.stdout


def test_a_playbook_naming_a_missing_role_fails_as_awx_runs_it(awx_project: Path) -> None:
    broken = awx_project / "playbooks" / "broken.yml"
    broken.write_text("---\n- name: Broken\n  hosts: all\n  roles:\n    - role: no_such_role\n")
    try:
        result = _as_awx(awx_project, "--syntax-check", "playbooks/broken.yml")
    finally:
        broken.unlink()
    assert result.returncode != 0
    assert "no_such_role" in result.stdout + result.stderr


# -- the execution environment -----------------------------------------------------------------------------


def _pins() -> dict[str, str]:
    extra = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {re.split(r"[<>=!~ ]", p, maxsplit=1)[0]: p for p in extra["provisioner"]}


def test_ansible_builder_creates_the_execution_environment(tmp_path: Path) -> None:
    builder = BIN / "ansible-builder"
    assert builder.is_file(), "ansible-builder is in the test extra: make setup installs it"
    out = tmp_path / "context"
    result = subprocess.run([str(builder), "create", "-f", str(EE_DIR / "execution-environment.yml"),
                             "-c", str(out), "-v", "3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (out / "Containerfile").read_text()
    assert "sovereign-src[provisioner]" in containerfile
    assert (out / "_build" / "sovereign" / "pyproject.toml").is_file()
    assert (out / "_build" / "sovereign" / "sovereign" / "awx" / "model.py").is_file()


def test_the_execution_environment_pins_what_pyproject_pins() -> None:
    ee = yaml.safe_load((EE_DIR / "execution-environment.yml").read_text())
    deps, pins = ee["dependencies"], _pins()
    assert deps["ansible_core"]["package_pip"] == pins["ansible-core"]
    assert deps["ansible_runner"]["package_pip"] == pins["ansible-runner"]


def _shipped_collections() -> dict[str, str]:
    import ansible_collections

    out = {}
    for base in ansible_collections.__path__:
        for manifest in Path(base).glob("*/*/MANIFEST.json"):
            info = json.loads(manifest.read_text())["collection_info"]
            out[f"{info['namespace']}.{info['name']}"] = info["version"]
    return out


def test_the_collections_are_those_the_ansible_package_ships_and_cover_every_module_used() -> None:
    wanted = {c["name"]: c["version"]
              for c in yaml.safe_load((EE_DIR / "requirements.yml").read_text())["collections"]}
    shipped = _shipped_collections()
    assert {n: v for n, v in wanted.items() if shipped.get(n) != v} == {}, \
        "awx/requirements.yml must pin the versions the `ansible` package ships"
    used: set[str] = set()
    fqcn = re.compile(r"^\s*-?\s*([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", re.M)
    for path in [*(PROJECT / "playbooks").glob("*.yml"), *(PROJECT / "roles").rglob("*.yml")]:
        used |= {m for m in fqcn.findall(path.read_text()) if m in shipped}
    used.discard("ansible.builtin")
    assert used - set(wanted) == set()
    assert "awx.awx" in used


# -- the command -----------------------------------------------------------------------------------------


@pytest.fixture
def app() -> Any:
    from sovereign.cli.main import app

    return app


def test_render_writes_both_files(app: Any, runner: Any, tmp_path: Path) -> None:
    result = runner.invoke(app, ["awx", "render", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "awx.yml").read_text() == AWX_PLAYBOOK.read_text()
    assert yaml.safe_load((tmp_path / "awx-config.yml").read_text())[0]["module"] == "awx.awx.organization"


def test_apply_names_the_missing_vault_keys(app: Any, runner: Any, lab_copy: Path, tmp_path: Path) -> None:
    password = tmp_path / "pass"
    password.write_text("x\n")
    result = runner.invoke(app, ["awx", "apply", "-i", str(lab_copy), "--scm-url", "https://example.invalid/s.git",
                                 "--vault-password-file", str(password)])
    assert result.exit_code == 3, result.output
    out = plain(result.output)
    for key in ("vault_awx_url", "vault_awx_token", "vault_awx_ssh_private_key"):
        assert f"group_vars/all/vault.yml: {key}: missing" in out


def test_apply_without_a_vault_password_says_how_to_give_one(app: Any, runner: Any, lab_copy: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    result = runner.invoke(app, ["awx", "apply", "-i", str(lab_copy), "--scm-url", "https://example.invalid/s"])
    assert result.exit_code == 7, result.output
    assert "--vault-password-file" in plain(result.output)


def test_apply_runs_the_playbook_through_ansible_runner_up_to_the_awx(app: Any, runner: Any, lab_copy: Path,
                                                                     tmp_path: Path) -> None:
    """A real run: the assert passes, the first awx.awx call reaches for an AWX
    where nothing listens (AWX cannot run here), and its own words come back."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    vault = lab_copy / "group_vars" / "all"
    vault.mkdir()
    (vault / "vault.yml").write_text(f"---\nvault_awx_url: http://127.0.0.1:{port}\n"
                                     "vault_awx_token: token-not-secret\n"
                                     "vault_awx_ssh_private_key: key-not-secret\n")
    password = tmp_path / "pass"
    password.write_text("x\n")
    result = runner.invoke(app, ["awx", "apply", "-i", str(lab_copy), "--scm-url", "https://example.invalid/s",
                                 "--vault-password-file", str(password)])
    assert result.exit_code == 5, result.output
    out = plain(result.output)
    assert "Organization: Mimical-Sovereign" in out
    assert f"127.0.0.1:{port}/api/v2/organizations" in out
    assert "Connection refused" in out
