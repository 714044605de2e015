"""The backup engines behind one interface: restic (Debian's, exercised for
real by the tests and the lab) and Kopia (the nodes' engine, from its release;
implemented from its documented CLI, not exercised here: the lab has no
binary).

The repository's password reaches the engine by environment only
(`RESTIC_PASSWORD`, `KOPIA_PASSWORD`), never on a command line; every
engine error names the repository and the engine's own error line, with the
known secrets redacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, SecretStr

from sovereign.errors import ExitCode, SovereignError
from sovereign.service.redact import redact, register

TAG = "sovereign-backup"
# restic's progress lines on stderr, which are not its error.
_NOISE = ("using temporary cache", "create exclusive lock", "load indexes", "check all packs",
          "check snapshots", "read ", "[", "repository ", "created restic repository", "Please note",
          "the repository", "irrecoverably", "no errors were found", "found ")


class BackupRepositoryError(SovereignError):
    """The repository cannot be opened, written or read: nothing is changed."""

    exit_code = ExitCode.STORE_UNAVAILABLE


class Snapshot(BaseModel):
    id: str
    short_id: str
    time: datetime
    paths: list[str]
    tags: list[str] = []
    files: int | None = None  # the files the backup wrote (known right after `backup`)
    bytes: int | None = None
    parts: list[str] = []  # Kopia: one snapshot per source path, their ids


class EngineCheck(BaseModel):
    """The engine's own check of the repository: ok only with no errors."""

    ok: bool
    errors: int
    read_data_percent: float
    expected_files: int | None = None  # Kopia's verify: the files the snapshots hold
    message: str


class BackupEngine(Protocol):
    name: str
    repository: str

    def init(self) -> bool: ...  # True when it created the repository
    def backup(self, paths: list[Path], tags: list[str], exclude: Sequence[Path] = ()) -> Snapshot: ...
    def drop(self, snapshot: Snapshot) -> None: ...  # forget one snapshot (an empty one)
    def snapshots(self, tag: str | None = TAG) -> list[Snapshot]: ...
    def files(self, snapshot: Snapshot) -> list[str]: ...
    def check(self, read_data_percent: float) -> EngineCheck: ...
    def restore(self, snapshot: Snapshot, target: Path, include: list[str] | None = None) -> None: ...
    def forget(self, keep: dict[str, int], tag: str = TAG) -> None: ...


def error_line(stderr: str) -> str:
    """The engine's own error from its stderr: the lines that are not progress, up to a
    Go panic's goroutine dump."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if line.startswith("goroutine "):
            break
        if line and not line.startswith(_NOISE):
            lines.append(line)
    return redact("; ".join(lines[:4]) or "no message")


class _Cli:
    """One engine binary run with the repository and password in its environment."""

    name = "engine"

    def __init__(self, repository: str, password: SecretStr, *, binary: Path | None = None,
                 cache_dir: Path | None = None, timeout_s: float = 3600.0) -> None:
        found = str(binary) if binary else shutil.which(self.name)
        if found is None or not Path(found).exists():
            raise SovereignError(f"the {self.name} binary is not installed (not on PATH)",
                                 hint=f"apt-get install {self.name}, or set `engine_binary:`")
        self.binary, self.repository, self.password = found, repository, password
        self.cache_dir, self.timeout_s = cache_dir, timeout_s
        register(password)

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def run(self, *args: str, what: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run([self.binary, *args], capture_output=True, text=True, check=False,
                                  env=self.env(), timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackupRepositoryError(f"{self.name} {what} on repository {self.repository} did not end "
                                        f"within {self.timeout_s:g}s") from None
        if proc.returncode not in ok:
            raise BackupRepositoryError(
                f"{self.name} {what} on repository {self.repository} failed (exit {proc.returncode}): "
                f"{error_line(proc.stderr)}",
                hint="docs/backup.md: a repository that fails its check is left as it is; nothing was "
                     "written to it")
        return proc


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


# --------------------------------------------------------------------------- restic


class Restic(_Cli):
    """restic (`--json` where it has it: backup, snapshots, ls; `check` speaks text)."""

    name = "restic"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(RESTIC_REPOSITORY=self.repository, RESTIC_PASSWORD=self.password.get_secret_value())
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def init(self) -> bool:
        probe = subprocess.run([self.binary, "cat", "config"], capture_output=True, text=True, check=False,
                               env=self.env(), timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        if probe.returncode == 0:
            return False
        if "Is there a repository at the following location?" not in probe.stderr:
            raise BackupRepositoryError(f"restic cannot open repository {self.repository}: "
                                        f"{error_line(probe.stderr)}",
                                        hint="a wrong password, or a damaged `config`/`keys/`: the "
                                             "repository is left as it is")
        self.run("init", what="init")
        return True

    def backup(self, paths: list[Path], tags: list[str], exclude: Sequence[Path] = ()) -> Snapshot:
        args = [f"--tag={t}" for t in tags] + [f"--exclude={p}" for p in exclude]
        proc = self.run("backup", "--json", *args, *[str(p) for p in paths], what="backup")
        summary = next((m for m in reversed(_json_lines(proc.stdout)) if m.get("message_type") == "summary"),
                       None)
        if summary is None:
            raise BackupRepositoryError(f"restic backup to {self.repository} printed no summary")
        found = [s for s in self.snapshots(None) if s.id.startswith(summary["snapshot_id"])]
        if not found:
            raise BackupRepositoryError(f"restic backup's snapshot {summary['snapshot_id']} is not in "
                                        f"{self.repository}")
        return found[0].model_copy(update={"files": int(summary.get("total_files_processed", 0)),
                                           "bytes": int(summary.get("total_bytes_processed", 0))})

    def snapshots(self, tag: str | None = TAG) -> list[Snapshot]:
        proc = self.run("snapshots", "--json", *([f"--tag={tag}"] if tag else []), what="snapshots")
        return sorted((Snapshot(id=s["id"], short_id=s.get("short_id", s["id"][:8]), time=s["time"],
                                paths=s.get("paths", []), tags=s.get("tags") or [])
                       for s in json.loads(proc.stdout or "[]")), key=lambda s: s.time)

    def files(self, snapshot: Snapshot) -> list[str]:
        proc = self.run("ls", "--json", snapshot.id, what="ls")
        return [n["path"] for n in _json_lines(proc.stdout)
                if n.get("struct_type") == "node" and n.get("type") == "file"]

    def check(self, read_data_percent: float) -> EngineCheck:
        """The structure first (a missing pack is found from the listing, without the read's
        retries), then `read_data_percent` of the data read back."""
        for extra in ([], [f"--read-data-subset={read_data_percent:g}%"]):
            proc = subprocess.run([self.binary, "check", *extra], capture_output=True, text=True, check=False,
                                  env=self.env(), timeout=self.timeout_s, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                break
        if proc.returncode == 0:
            return EngineCheck(ok=True, errors=0, read_data_percent=read_data_percent,
                               message="restic check: no errors were found")
        problems = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(_NOISE)]
        return EngineCheck(ok=False, errors=max(1, len(problems) - 1), read_data_percent=read_data_percent,
                           message=f"restic check of repository {self.repository} failed: "
                                   f"{error_line(proc.stderr)}")

    def restore(self, snapshot: Snapshot, target: Path, include: list[str] | None = None) -> None:
        args = [f"--include={p}" for p in include or []]
        self.run("restore", snapshot.id, f"--target={target}", *args, what="restore")

    def forget(self, keep: dict[str, int], tag: str = TAG) -> None:
        args = [f"--keep-{k}={v}" for k, v in keep.items() if v]
        proc = self.run("forget", "--json", f"--tag={tag}", *args, what="forget")
        groups = json.loads(proc.stdout or "[]") or []
        if any(g.get("remove") for g in groups):  # prune only when the policy removed a snapshot
            self.run("prune", what="prune")

    def drop(self, snapshot: Snapshot) -> None:
        self.run("forget", snapshot.id, what="forget")


# --------------------------------------------------------------------------- Kopia (not exercised here)


def kopia_snapshot(manifest: dict[str, Any]) -> Snapshot:
    """A snapshot from one entry of `kopia snapshot create/list --json` (its manifest)."""
    stats = manifest.get("stats") or {}
    tags = [f"{k.removeprefix('tag:')}:{v}" if v not in ("", None) else k.removeprefix("tag:")
            for k, v in (manifest.get("tags") or {}).items()]
    sid = str(manifest["id"])
    return Snapshot(id=sid, short_id=sid[:8], time=manifest["startTime"],
                    paths=[manifest.get("source", {}).get("path", "")], tags=tags,
                    files=stats.get("fileCount"), bytes=stats.get("totalSize"))


def judge_kopia_verify(verify: dict[str, Any] | None, snapshots: list[Snapshot],
                       read_data_percent: float) -> EngineCheck:
    """`kopia snapshot verify --json` is accepted only with errorCount == 0 AND files to
    verify (the snapshots' fileCount) > 0: zero errors over zero files proves nothing."""
    expected = sum(s.files or 0 for s in snapshots)
    if verify is None or not isinstance(verify.get("errorCount"), int):
        return EngineCheck(ok=False, errors=1, read_data_percent=read_data_percent, expected_files=expected,
                           message="kopia snapshot verify printed no errorCount: not a proof")
    errors = int(verify["errorCount"])
    if errors:
        return EngineCheck(ok=False, errors=errors, read_data_percent=read_data_percent,
                           expected_files=expected, message=f"kopia snapshot verify found {errors} errors")
    if expected <= 0:
        return EngineCheck(ok=False, errors=0, read_data_percent=read_data_percent, expected_files=0,
                           message="kopia snapshot verify: zero errors over zero expected files is no proof")
    return EngineCheck(ok=True, errors=0, read_data_percent=read_data_percent, expected_files=expected,
                       message=f"kopia snapshot verify: no errors over {expected} files")


class Kopia(_Cli):
    """Kopia's CLI on a filesystem repository (`repository create|connect filesystem --path`).
    Kopia snapshots each source path on its own: a backup is one snapshot per path, the
    first (the staging directory) naming it, the rest in `parts`."""

    name = "kopia"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOPIA_")}
        env.update(KOPIA_PASSWORD=self.password.get_secret_value(), KOPIA_CHECK_FOR_UPDATES="false")
        if self.cache_dir is not None:
            env["KOPIA_CONFIG_PATH"] = str(self.cache_dir / "repository.config")
            env["KOPIA_CACHE_DIRECTORY"] = str(self.cache_dir / "cache")
        return env

    def init(self) -> bool:
        path = self.repository.removeprefix("filesystem:")
        try:
            self.run("repository", "connect", "filesystem", f"--path={path}", what="repository connect")
            return False
        except BackupRepositoryError:
            if Path(path, "kopia.repository.f").exists():
                raise
        self.run("repository", "create", "filesystem", f"--path={path}", what="repository create")
        return True

    def backup(self, paths: list[Path], tags: list[str], exclude: Sequence[Path] = ()) -> Snapshot:
        # Kopia's ignore rules are policies; `exclude` names paths outside the sources here.
        kv = [f"--tags={t if ':' in t else t + ':yes'}" for t in dict.fromkeys([TAG, *tags])]
        proc = self.run("snapshot", "create", "--json", *kv, *[str(p) for p in paths], what="snapshot create")
        made = [kopia_snapshot(m) for m in _json_lines(proc.stdout) if "id" in m]
        if not made:
            raise BackupRepositoryError(f"kopia snapshot create on {self.repository} printed no snapshot")
        first = made[0]
        return first.model_copy(update={"paths": [p for s in made for p in s.paths],
                                        "parts": [s.id for s in made],
                                        "files": sum(s.files or 0 for s in made),
                                        "bytes": sum(s.bytes or 0 for s in made), "tags": [TAG, *tags]})

    def snapshots(self, tag: str | None = TAG) -> list[Snapshot]:
        proc = self.run("snapshot", "list", "--all", "--json", what="snapshot list")
        found = [kopia_snapshot(m) for m in json.loads(proc.stdout or "[]")]
        if tag:
            found = [s for s in found if any(t.split(":")[0] == tag for t in s.tags)]
        return sorted(found, key=lambda s: s.time)

    def files(self, snapshot: Snapshot) -> list[str]:
        out = []
        for part, root in zip(snapshot.parts or [snapshot.id], snapshot.paths, strict=False):
            proc = self.run("ls", "--recursive", part, what="ls")
            out += [f"{root}/{line.strip()}" for line in proc.stdout.splitlines()
                    if line.strip() and not line.strip().endswith("/")]
        return out

    def check(self, read_data_percent: float) -> EngineCheck:
        proc = self.run("snapshot", "verify", f"--verify-files-percent={read_data_percent:g}", "--json",
                        what="snapshot verify", ok=(0, 1))
        found = _json_lines(proc.stdout)
        return judge_kopia_verify(found[-1] if found else None, self.snapshots(None), read_data_percent)

    def restore(self, snapshot: Snapshot, target: Path, include: list[str] | None = None) -> None:
        for part, root in zip(snapshot.parts or [snapshot.id], snapshot.paths, strict=False):
            if include and not any(root.startswith(i) or i.startswith(root) for i in include):
                continue
            dest = target / root.lstrip("/")
            dest.mkdir(parents=True, exist_ok=True)
            self.run("snapshot", "restore", part, str(dest), what="snapshot restore")

    def forget(self, keep: dict[str, int], tag: str = TAG) -> None:
        args = [f"--keep-{k}={v}" for k, v in keep.items() if v]
        self.run("policy", "set", "--global", *args, what="policy set")

    def drop(self, snapshot: Snapshot) -> None:
        for part in snapshot.parts or [snapshot.id]:
            self.run("snapshot", "delete", part, "--delete", what="snapshot delete")


ENGINES: dict[str, type[_Cli]] = {"restic": Restic, "kopia": Kopia}


def open_engine(name: str, repository: str, password: SecretStr, *, binary: Path | None = None,
                cache_dir: Path | None = None, timeout_s: float = 3600.0) -> BackupEngine:
    return ENGINES[name](repository, password, binary=binary, cache_dir=cache_dir,  # type: ignore[return-value]
                         timeout_s=timeout_s)
