"""A scratch Postgres cluster for the restore drill: initdb in a temporary
directory, a unix socket there and a free loopback port, trust authentication
for its own superuser, fsync off (it lives for one drill). When this process
is root the server runs as the `postgres` user (Postgres refuses root). It
never touches a system cluster, and `stop` always removes it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from sovereign.errors import EnvironmentProblem


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScratchPostgres:
    """A private cluster in `root`: the drill's (no TCP, removed by `stop`); the
    tests' harness (tests/support/testbed.py) listens on the loopback too and
    is stopped and started again."""

    def __init__(self, pg_bin: Path, root: Path, port: int | None = None, listen: str = "") -> None:
        self.bin, self.root = pg_bin, root
        self.data, self.sock = root / "data", root / "sock"
        self.port = port or free_port()
        self.listen = listen
        self.as_user: str | None = "postgres" if os.geteuid() == 0 else None
        self.started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), "runuser")
        cmd = [*([runuser, "-u", self.as_user, "--"] if self.as_user else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise EnvironmentProblem(f"scratch Postgres in {self.root}: {Path(args[0]).name} failed: "
                                     f"{proc.stderr.strip()[-400:]}")
        return proc

    def dsn_for(self, db: str) -> str:
        return f"host={self.sock} port={self.port} user=postgres dbname={db}"

    def start(self) -> ScratchPostgres:
        """initdb (unless the directory holds a cluster already), then start the server."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self.as_user:
            self.root.chmod(0o755)
            shutil.chown(self.root, self.as_user)
            shutil.chown(self.sock, self.as_user)
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "--no-sync", "-E", "UTF8", "--locale=C")
        opts = (f"-k {self.sock} -p {self.port} -c listen_addresses='{self.listen}' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "pg.log"),
                  "-w", "-t", "60", "start")
        self.started = True
        return self

    def create_db(self, name: str) -> str:
        self._run(str(self.bin / "createdb"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres",
                  name)
        return self.dsn_for(name)

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its directory (it can start again)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        self.started = False

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove its directory."""
        if self.started:
            self.halt("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
