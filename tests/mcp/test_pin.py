"""The pin: the server refuses to start without it, with another, or when the
code's tool definitions drifted from it (the real entry point, in a process)."""

from __future__ import annotations

from pathlib import Path

from mcp_helpers import Bed, run_server, write_config

from sovereign.errors import ExitCode
from sovereign.mcp.pin import code_pin, definitions, pin_of
from sovereign.mcp.tools import build_server

BAD_SETTING = int(ExitCode.SERVICE_CONFIG_INVALID)
# The code's definitions with one more tool, as an edit would add it: the
# real entry point, started with the pin of the code as it is.
DRIFTED = ("import sys, sovereign.mcp.tools as t\n"
           "built = t.build_server\n"
           "def build(sources):\n"
           "    server = built(sources)\n"
           "    server.add_tool(lambda path: path, name='remove_file', description='Removes a file.')\n"
           "    return server\n"
           "t.build_server = build\n"
           "from sovereign.mcp.__main__ import main\n"
           "sys.exit(main(sys.argv[1:]))\n")


def test_the_pin_is_stable_and_printed_for_the_role(bed: Bed) -> None:
    assert code_pin() == code_pin() == pin_of(definitions(build_server(None)))
    proc = run_server(Path("/dev/null"), bed.tmp, "-m", "sovereign.mcp", "--print-pin")
    assert proc.returncode == 0 and proc.stdout.strip() == code_pin()


def test_a_changed_description_changes_the_pin() -> None:
    server = build_server(None)
    before = pin_of(definitions(server))
    server.add_tool(lambda: None, name="list_events_too", description="x")
    assert pin_of(definitions(server)) != before


def test_a_missing_pin_refuses_start(bed: Bed, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.yaml", {k: v for k, v in bed.config.items() if k != "tools_pin"})
    proc = run_server(config, bed.tmp, "-m", "sovereign.mcp")
    assert proc.returncode == BAD_SETTING, proc.stderr
    assert "tools_pin is not set" in proc.stderr and code_pin() in proc.stderr


def test_another_pin_refuses_start_naming_both_hashes(bed: Bed, tmp_path: Path) -> None:
    other = "0" * 64
    config = write_config(tmp_path / "mcp.yaml", {**bed.config, "tools_pin": other})
    proc = run_server(config, bed.tmp, "-m", "sovereign.mcp")
    assert proc.returncode == BAD_SETTING, proc.stderr
    assert "drifted" in proc.stderr and other in proc.stderr and code_pin() in proc.stderr
    assert str(config) in proc.stderr


def test_a_drifted_definition_refuses_start(bed: Bed, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.yaml", bed.config)  # pinned to the code as it is
    proc = run_server(config, bed.tmp, "-c", DRIFTED)
    assert proc.returncode == BAD_SETTING, proc.stderr
    assert "drifted" in proc.stderr and code_pin() in proc.stderr
    drifted = [line for line in proc.stderr.split() if len(line.strip(",.")) == 64 and line != code_pin()]
    assert drifted, proc.stderr  # the drifted definitions' hash is named too


def test_a_malformed_pin_or_a_short_key_is_a_bad_setting(bed: Bed, tmp_path: Path) -> None:
    config = write_config(tmp_path / "mcp.yaml", {**bed.config, "tools_pin": "abc"})
    proc = run_server(config, bed.tmp, "-m", "sovereign.mcp")
    assert proc.returncode == BAD_SETTING and "tools_pin" in proc.stderr
    config = write_config(tmp_path / "mcp.yaml", {**bed.config, "callers": {"owner": "short"}})
    proc = run_server(config, bed.tmp, "-m", "sovereign.mcp")
    assert proc.returncode == BAD_SETTING and "callers" in proc.stderr and "short" not in proc.stdout
    config = write_config(tmp_path / "mcp.yaml", {**bed.config, "callers": {}})
    proc = run_server(config, bed.tmp, "-m", "sovereign.mcp")
    assert proc.returncode == BAD_SETTING and "no caller has a key" in proc.stderr
