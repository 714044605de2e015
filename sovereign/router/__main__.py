"""`python -m sovereign.router [--config FILE] [--host H] [--port N]`: the
router as its systemd unit runs it, from the file that role `router`
rendered and the unit's environment, without the CLI or any inventory."""

from __future__ import annotations

import sys
from pathlib import Path

from sovereign.service.serve import entry_point


def run(config: Path | None, host: str | None, port: int | None) -> None:
    from sovereign.router.app import serve
    from sovereign.router.config import load_settings

    settings = load_settings(None, config)
    if host is not None:
        settings.listen.host = host
    if port is not None:
        settings.listen.port = port
    serve(settings)


if __name__ == "__main__":
    sys.exit(entry_point("router", run))
