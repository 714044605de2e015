"""Process helpers shared by the router's tests and benchmark: real llama-server
processes on loopback and an ASGI app served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from sovereign.backup.scratch import ScratchPostgres, free_port
from sovereign.errors import EnvironmentProblem

LLAMA_ENV = "SOVEREIGN_LLAMA_SERVER"


def find_llama_server() -> Path | None:
    """$SOVEREIGN_LLAMA_SERVER, else `llama-server` on PATH."""
    env = os.environ.get(LLAMA_ENV)
    if env:
        return Path(env) if Path(env).is_file() and os.access(env, os.X_OK) else None
    found = shutil.which("llama-server")
    return Path(found) if found else None


class LlamaServer:
    """One llama-server process: `--host 127.0.0.1 --port P -m FILE -c 2048 -t 1 --metrics`."""

    def __init__(self, binary: Path, model: Path, *, port: int | None = None, threads: int = 1,
                 ctx: int = 2048, log_file: Path | None = None, extra: list[str] | None = None) -> None:
        self.binary, self.model = binary, model
        self.port = port or free_port()
        self.threads, self.ctx = threads, ctx
        self.log_file = log_file
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LlamaServer:
        cmd = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port), "-m", str(self.model),
               "-c", str(self.ctx), "-t", str(self.threads), "--metrics", *self.extra]
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise EnvironmentProblem(f"llama-server exited with {self.proc.returncode} "
                                         f"(log: {self.log_file})")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise EnvironmentProblem(f"llama-server on port {self.port} not healthy within {timeout:g}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class ThreadedServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.host, self.port = host, port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's event loop and wait for its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise EnvironmentProblem(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(RuntimeError):
            self.thread.join(15)


def find_pg_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries (/usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def install_postgres() -> Path | None:
    """apt-get install postgresql (as root only); the binaries' folder or None."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=False, env=env,
                   capture_output=True)
    return find_pg_bin()


class PostgresCluster(ScratchPostgres):
    """The tests' private cluster (sovereign/backup/scratch.py's, on the
    loopback too): stopped and started again by the tests that kill it."""

    def __init__(self, bin_dir: Path, root: Path, port: int | None = None) -> None:
        super().__init__(bin_dir, root, port, listen="127.0.0.1")

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def stop(self, mode: str = "fast") -> None:  # type: ignore[override]
        self.halt(mode)
