"""The CLI boundary: the lab's root requirement, error rendering, --version."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner
from unit_helpers import plain

from sovereign import __version__
from sovereign.cli.main import app
from sovereign.lab import lab, system


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unprivileged user; and should the root check not stop a command,
    nothing of the lab may happen."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the lab went past its root check")

    monkeypatch.setattr(system, "require_tools", forbidden)
    monkeypatch.setattr(lab, "ensure_rootfs", forbidden)
    monkeypatch.setattr(lab, "lab_nodes", forbidden)
    monkeypatch.setattr(lab, "_saved", forbidden)


@pytest.mark.parametrize("command", ["up", "down"])
def test_lab_needs_root(runner: CliRunner, not_root: None, command: str) -> None:
    result = runner.invoke(app, ["lab", command])
    assert result.exit_code == 7, result.output
    err = plain(result.stderr)
    assert "error: the lab needs root" in err
    assert "hint: run it as root, e.g. `sudo .venv/bin/sovereign lab up`" in err
    assert result.stdout == ""


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"sovereign {__version__}\n"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    # No command is wrong usage (docs/cli.md: 2), with the help printed.
    assert result.exit_code == 2
    for command in ("inventory", "provision", "status", "hw", "lab"):
        assert command in result.output


def test_an_expected_error_has_no_traceback(runner: CliRunner) -> None:
    result = runner.invoke(app, ["provision", "bogus"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert plain(result.stderr) == ("error: 'bogus' is not a phase\n"
                                    "hint: use phase-1 ... phase-8, or all\n")


@pytest.mark.parametrize("phase", ["phase-[red]", "[/x]"], ids=["swallowed", "crash"])
def test_error_text_is_printed_verbatim(runner: CliRunner, phase: str) -> None:
    result = runner.invoke(app, ["provision", phase])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert f"error: {phase!r} is not a phase" in plain(result.stderr)


def test_every_exit_code_is_documented_once() -> None:
    """docs/cli.md's table names each ExitCode, and only those: a code means one thing."""
    import re

    from sovereign.errors import ExitCode
    from sovereign.paths import project_root

    table = (project_root() / "docs" / "cli.md").read_text()
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)]
    assert sorted(documented) == sorted(int(c) for c in ExitCode), documented


# What `sovereign` may not import before a command runs: each costs its share
# of every start (perf/cli_start.py measures it); the command imports it.
NOT_AT_START = ("ansible", "ansible_runner", "paramiko", "jinja2", "numpy", "httpx",
                "sovereign.checks", "sovereign.inventory", "sovereign.hw", "sovereign.planner",
                "sovereign.lab", "sovereign.engine.provision", "sovereign.engine.status",
                "rich.markdown", "qdrant_client", "pypdf", "sovereign.rag")
# What the root's own start (`sovereign`, `sovereign --help`) does not need either.
NOT_AT_ROOT = (*NOT_AT_START, "pydantic", "yaml", "asyncio", "sovereign.router")


@pytest.mark.parametrize("args", [[], ["--help"], ["provision", "--help"], ["hw", "check", "--help"],
                                  ["status", "--help"], ["rag", "ingest", "--help"]],
                         ids=["import", "help", "provision-help", "hw-check-help", "status-help",
                              "rag-ingest-help"])
def test_the_cli_starts_without_what_its_commands_need(args: list[str]) -> None:
    """The import graph only, in a fresh interpreter: never a timing."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nsys.argv = ['sovereign', *sys.argv[1:]]\n"
            "from sovereign.cli.main import main\n"
            "try:\n    main() if len(sys.argv) > 1 else None\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert "sovereign.cli.provision" in loaded  # the probe did import the CLI
    names = NOT_AT_ROOT if args in ([], ["--help"]) else NOT_AT_START
    early = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))
    assert not early, f"`sovereign {' '.join(args)}` imported {early}"
