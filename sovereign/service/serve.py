"""Run a service's ASGI app until it is stopped.

One place for what every service does at start: one BLAS thread (numpy's
small matrices gain nothing from more, and spinning BLAS threads would take
the CPU from the llama-servers beside it), INFO logging with the secrets
filter installed, quiet HTTP client logs, and a clear error when the address
cannot be listened on. `entry_point` is the module entry (`python -m
sovereign.<service>`) that the systemd units run: it needs no Ansible and no
CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sovereign.errors import EnvironmentProblem, SovereignError, report
from sovereign.service.redact import install_log_filter

log = logging.getLogger(__name__)


def quiet_blas() -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_filter()


def serve(app: Any, host: str, port: int, *, name: str) -> None:
    """Serve `app` on host:port (blocking)."""
    import uvicorn

    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    except OSError as exc:
        raise EnvironmentProblem(f"{name} cannot listen on {host}:{port}: {exc}") from None


def entry_point(service: str, run: Callable[[Path | None, str | None, int | None], None],
                argv: list[str] | None = None) -> int:
    """`python -m sovereign.<service> [--config FILE] [--host H] [--port N]`:
    settings from the file and the environment alone (no inventory), as on a node."""
    parser = argparse.ArgumentParser(prog=f"python -m sovereign.{service}",
                                     description=f"Run the {service} service (settings: the file, then "
                                                 f"SOVEREIGN_{service.upper()}_* variables).")
    config_env = f"SOVEREIGN_{service.upper()}_CONFIG"
    parser.add_argument("--config", "-c", type=Path, default=os.environ.get(config_env) or None,
                        help=f"YAML/JSON settings file (default ${config_env})")
    parser.add_argument("--host", default=None, help="address to listen on (default: from the settings)")
    parser.add_argument("--port", type=int, default=None, help="port (default: from the settings)")
    args = parser.parse_args(argv)
    quiet_blas()
    configure_logging()
    try:
        run(args.config, args.host, args.port)
    except SovereignError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return 130
    return 0
