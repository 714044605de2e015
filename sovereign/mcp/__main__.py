"""`python -m sovereign.mcp [--config FILE] [--host H] [--port N]`: the MCP
data server as its systemd unit runs it, from the file that role `mcp`
rendered and the unit's environment.

`--print-pin` prints the pin of the code's tool definitions (what role `mcp`
records as `tools_pin` at deploy); `--print-definitions` prints the
definitions themselves, as canonical JSON, to review before re-pinning.
Neither reads any settings.

At start the server refuses (a bad setting's exit code) when `tools_pin` is
missing or differs from the code's pin, naming both, and when no caller has a
key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sovereign.service.serve import entry_point

EXTRA_HELP = """
pin (no settings read, then exit):
  --print-pin           print the sha256 of the tool definitions (the value of tools_pin)
  --print-definitions   print the tool definitions the pin is made of (JSON)"""


def run(config: Path | None, host: str | None, port: int | None) -> None:
    from sovereign.mcp.app import create_app
    from sovereign.mcp.pin import check_pin, code_pin
    from sovereign.mcp.settings import mcp_settings
    from sovereign.mcp.tools import Sources
    from sovereign.service.redact import register, register_dsn
    from sovereign.service.serve import serve
    from sovereign.service.settings import ServiceConfigError

    settings = mcp_settings(config)
    if host is not None:
        settings.listen.host = host
    if port is not None:
        settings.listen.port = port
    where = ", ".join(settings.source) or "the MCP server's settings"
    check_pin(settings.tools_pin, code_pin(), where)
    if not settings.callers:
        raise ServiceConfigError(f"{where}: callers: no caller has a key, so every request would be refused",
                                 hint="callers: {NAME: KEY} (role mcp renders them from the vault)")
    for key in settings.callers.values():
        register(key)
    register_dsn(settings.knowledge)
    register_dsn(settings.crystals)
    sources = Sources(settings)
    try:
        serve(create_app(settings, sources), settings.listen.host, settings.listen.port, name="mcp")
    finally:
        sources.close()


def main(argv: list[str] | None = None) -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--print-pin", action="store_true")
    extra.add_argument("--print-definitions", action="store_true")
    opts, rest = extra.parse_known_args(sys.argv[1:] if argv is None else argv)
    if opts.print_pin or opts.print_definitions:
        from sovereign.mcp.pin import code_pin, definitions
        from sovereign.mcp.tools import build_server

        print(code_pin() if opts.print_pin else json.dumps(definitions(build_server(None)), indent=2))
        return 0
    try:
        return entry_point("mcp", run, rest)
    except SystemExit as done:
        if done.code == 0 and {"-h", "--help"} & set(rest):
            print(EXTRA_HELP)
        raise


if __name__ == "__main__":
    sys.exit(main())
