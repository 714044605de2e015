"""Run a service's ASGI app until it is stopped.

One place for what every service does at start: one BLAS thread (numpy's
small matrices gain nothing from more, and spinning BLAS threads would take
the CPU from the llama-servers beside it), INFO logging with the secrets
filter installed, quiet HTTP client logs, and a clear error when the address
cannot be listened on. `entry_point` is the module entry (`python -m
sovereign.<service>`) that the systemd units run: it needs no Ansible and no
CLI.

Shutdown is bounded. On SIGTERM or SIGINT the server stops accepting, gives
the requests in flight `drain_s` to finish (then cancels them), and runs the
app's shutdown, which the service bounds itself (`close_s`: it brings its
records to disk there). Whatever still holds the process `EXIT_MARGIN_S`
after both (a thread stuck on a frozen store, a hung shutdown) does not
keep it: it exits with status 1, saying so in the log.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
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


DRAIN_S = 10.0  # the requests in flight at a stop: finished or cancelled by then
EXIT_MARGIN_S = 10.0  # beyond the drain and the app's own shutdown: the process ends regardless


def _exit_now(name: str, bound: float) -> None:
    log.error("%s: shutdown did not finish within %gs; exiting now", name, bound)
    logging.shutdown()
    os._exit(1)


def serve(app: Any, host: str, port: int, *, name: str, drain_s: float = DRAIN_S,
          close_s: float = 0.0) -> None:
    """Serve `app` on host:port (blocking) until SIGTERM or SIGINT. The shutdown
    takes at most `drain_s` (the requests in flight) + `close_s` (the most the
    app's own shutdown takes) + `EXIT_MARGIN_S` seconds."""
    import uvicorn

    exit_s = drain_s + close_s + EXIT_MARGIN_S

    class Server(uvicorn.Server):
        guard: threading.Timer | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.guard is None:
                self.guard = threading.Timer(exit_s, _exit_now, (name, exit_s))
                self.guard.daemon = True
                self.guard.start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                            timeout_graceful_shutdown=max(1, round(drain_s)))
    server = Server(config)
    try:
        server.run()
    except OSError as exc:
        raise EnvironmentProblem(f"{name} cannot listen on {host}:{port}: {exc}") from None
    if not server.started:
        raise EnvironmentProblem(f"{name} did not start on {host}:{port} (the log above says why)")


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
