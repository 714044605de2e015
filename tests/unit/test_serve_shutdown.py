"""The kit's serve helper bounds a stop: a service whose own shutdown hangs
is still gone `drain_s + close_s + EXIT_MARGIN_S` after SIGTERM, with status
1 and the reason in its log; one that shuts down in time ends as usual. A real
uvicorn process on a loopback port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sovereign.service.serve import EXIT_MARGIN_S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from testbed import free_port

APP = """
import contextlib, sys, time
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from sovereign.service.serve import configure_logging, serve

@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    if sys.argv[2] == "hang":
        time.sleep(3600)  # a shutdown stuck for good (the event loop with it)

async def ok(request):
    return PlainTextResponse("ok")

configure_logging()
serve(Starlette(routes=[Route("/", ok)], lifespan=lifespan), "127.0.0.1", int(sys.argv[1]), name="demo",
      drain_s=1.0, close_s=0.5)
"""


def _served(how: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port), how], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the demo service did not start: {proc.communicate()[0]}")


@pytest.mark.parametrize("how", ["hang", "clean"])
def test_a_stop_ends_within_its_bound(how: str) -> None:
    proc, _ = _served(how)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    bound = 1.0 + 0.5 + EXIT_MARGIN_S
    if how == "hang":
        assert proc.returncode == 1 and bound - 1 < took < bound + 3, (took, out)
        assert "shutdown did not finish within 11.5s; exiting now" in out
    else:
        assert proc.returncode == -signal.SIGTERM and took < 5, (proc.returncode, took, out)
