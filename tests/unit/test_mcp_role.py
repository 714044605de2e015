"""Role mcp's pin is the code's: a change to a tool's name, description or
schema fails here until the new pin is reviewed and written into the role."""

from __future__ import annotations

from pathlib import Path

import yaml

from sovereign.mcp.pin import code_pin

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mcp"


def test_the_roles_pin_is_the_codes() -> None:
    pinned = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["mcp_tools_pin"]
    assert pinned == code_pin(), (
        "the MCP tools' definitions changed: review `python -m sovereign.mcp --print-definitions`, then set "
        f"mcp_tools_pin in roles/mcp/defaults/main.yml to {code_pin()}")
