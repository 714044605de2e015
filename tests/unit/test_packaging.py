"""A node that runs a service gets the runtime alone: the package's own
requirements hold nothing of the provisioner (Ansible, ansible-runner,
paramiko, jinja2), and the CLI and the service run where those cannot be
imported."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sovereign.cli.render import PROVISIONER_MODULES
from sovereign.errors import ExitCode
from sovereign.paths import project_root
from sovereign.wheelhouse import import_closure, runtime_requirements

PROVISIONER = {"ansible", "ansible-core", "ansible-runner", "paramiko", "jinja2"}
# Run before anything else in the child: each import of these then fails as
# on a node (ModuleNotFoundError).
BLOCK = f"import sys; sys.modules.update(dict.fromkeys({sorted(PROVISIONER_MODULES)!r}))"


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", f"{BLOCK}\n{code}", *args], cwd=project_root(),
                          capture_output=True, text=True, timeout=120)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run("sys.argv = ['sovereign', *sys.argv[1:]]\nfrom sovereign.cli.main import main\nmain()", *args)


def test_the_runtime_requirements_hold_nothing_of_the_provisioner() -> None:
    runtime = names(runtime_requirements())
    assert runtime and not runtime & PROVISIONER
    assert {"pydantic", "typer", "uvicorn"} <= runtime


def test_each_requirement_is_declared_once() -> None:
    """The runtime's in `dependencies`, the provisioner's in its extra, none in two lists."""
    project = tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]
    lists = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    seen: dict[str, str] = {}
    for where, requirements in lists.items():
        for name in names(requirements):
            assert name not in seen, f"{name} is in both {seen[name]} and {where}"
            seen[name] = where
    assert {"ansible-core", "ansible-runner", "paramiko"} <= names(lists["provisioner"])


def test_the_service_imports_nothing_of_the_provisioner() -> None:
    """No module the router may run imports one, even lazily in a function."""
    offenders = []
    for name, path in import_closure("router").items():
        for node in ast.walk(ast.parse(path.read_bytes())):
            found = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{name}: {m}" for m in found if m.split(".")[0] in PROVISIONER_MODULES]
    assert not offenders


def test_the_blocked_modules_cannot_be_imported() -> None:
    """The child of these tests is a node: the block holds (a test that could not fail otherwise)."""
    proc = run("import ansible_runner")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["router", "--help"], ["router", "serve", "--help"]])
def test_the_cli_runs_without_the_provisioner(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_the_service_imports_without_the_provisioner() -> None:
    """Every module of the router's closure (its entry point's imports included)."""
    modules = [m for m in import_closure("router") if not m.endswith("__main__")]
    proc = run("import importlib\nfor m in sys.argv[1:]:\n    importlib.import_module(m)", *modules)
    assert proc.returncode == 0, proc.stderr


def test_the_service_entry_point_runs_without_the_provisioner() -> None:
    """`python -m sovereign.router`, as its unit runs it."""
    proc = run("import runpy\nsys.argv = ['sovereign.router', '--help']\n"
               "runpy.run_module('sovereign.router', run_name='__main__', alter_sys=True)")
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout


def test_a_provisioning_command_says_what_to_install() -> None:
    proc = cli("provision", "all")
    assert proc.returncode == int(ExitCode.ENVIRONMENT), proc.stderr
    assert "needs ansible_runner" in proc.stderr
    assert "pip install 'sovereign[provisioner]'" in proc.stderr
    assert "Traceback" not in proc.stderr
