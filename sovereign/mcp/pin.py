"""The pin of the tool definitions: what a client is told each tool is and takes.

A tool's definition is its name, description, input schema, output schema and
annotations, as `tools/list` sends them. The pin is the SHA-256 of the
canonical JSON (keys sorted, no spaces, UTF-8) of the definitions sorted by
name. Role `mcp` records it at deploy (`python -m sovereign.mcp --print-pin`)
into `tools_pin`, and the server refuses to start when the code's
definitions hash to anything else: a tool that changed what it says or takes
(an edit, a dependency that rewrote a schema) is not served until someone
re-pins it deliberately (docs/mcp.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from mcp.server.mcpserver import MCPServer

from sovereign.service.settings import ServiceConfigError

FIELDS = ("name", "description", "inputSchema", "outputSchema", "annotations")


class PinMismatch(ServiceConfigError):
    """The tool definitions are not the ones recorded at deploy (or none were recorded):
    a bad setting's exit code."""


def definitions(server: MCPServer) -> list[dict[str, Any]]:
    """The server's tool definitions as `tools/list` sends them, sorted by name."""
    tools = asyncio.run(server.list_tools())
    out = []
    for tool in tools:
        wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        out.append({k: wire[k] for k in FIELDS if k in wire})
    return sorted(out, key=lambda d: d["name"])


def pin_of(defs: list[dict[str, Any]]) -> str:
    """The sha256 hex of the canonical JSON of `defs`."""
    canonical = json.dumps(defs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def code_pin() -> str:
    """The pin of the definitions in this code."""
    from sovereign.mcp.tools import build_server

    return pin_of(definitions(build_server(None)))


def check_pin(recorded: str | None, actual: str, where: str) -> None:
    """Refuse to serve unless `recorded` (the settings' tools_pin) is `actual`."""
    if recorded is None:
        raise PinMismatch(f"{where}: tools_pin is not set: the MCP server serves only tool definitions "
                          f"recorded at deploy (the code's are {actual})",
                          hint="role mcp records it; by hand: tools_pin from `python -m sovereign.mcp "
                               "--print-pin`, after reviewing the definitions (docs/mcp.md)")
    if recorded != actual:
        raise PinMismatch(f"{where}: the tool definitions drifted from the pin: tools_pin is {recorded}, "
                          f"the code's definitions hash to {actual}",
                          hint="review what changed (`python -m sovereign.mcp --print-definitions`), then "
                               "re-pin deliberately: redeploy with role mcp, or set tools_pin (docs/mcp.md)")
