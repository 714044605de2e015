"""A capture bundle on disk: one file per source plus `manifest.json`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from pydantic import BaseModel, ValidationError

from sovereign.errors import BundleUnreadable, InventoryError

PROFILES_DIR = Path(__file__).parent / "profiles"


class SourceEntry(BaseModel):
    command: str = ""
    kind: str = "tool"
    status: str = "ok"  # ok | failed | missing
    exit_code: int | None = 0
    stderr: str = ""
    reason: str | None = None
    simulated: bool = False


class Manifest(BaseModel):
    host: str = "unknown"
    time: str | None = None
    collector_version: int | None = None
    simulated: bool = False
    profile: str | None = None
    files: dict[str, SourceEntry] = {}


class Bundle:
    def __init__(self, path: Path, manifest: Manifest):
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Read a bundle directory (or a .tar.gz of one)."""
        path = Path(path)
        if path.is_file() and tarfile.is_tarfile(path):
            target = path.with_suffix("").with_suffix("")
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                tar.extractall(target, filter="data")
            path = target
        if not path.is_dir():
            raise BundleUnreadable(f"{path}: no such bundle directory",
                                   hint="collect one with `sovereign hw collect --out DIR`")
        manifest_file = path / "manifest.json"
        if manifest_file.is_file():
            try:
                manifest = Manifest.model_validate(json.loads(manifest_file.read_text()))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise BundleUnreadable(f"{manifest_file}: unreadable manifest ({exc})",
                                       hint="re-collect the bundle") from exc
        else:
            # A bundle assembled by hand: every file present counts as collected.
            files = {p.name: SourceEntry(command="(no manifest)") for p in sorted(path.iterdir())
                     if p.is_file()}
            if not files:
                raise BundleUnreadable(f"{path}: empty directory, not a bundle",
                                       hint="collect one with `sovereign hw collect --out DIR`")
            manifest = Manifest(host=path.name, files=files)
        return cls(path, manifest)

    @property
    def host(self) -> str:
        return self.manifest.host

    def entry(self, name: str) -> SourceEntry | None:
        return self.manifest.files.get(name)

    def text(self, name: str) -> str | None:
        """The captured text of a source, or None if it was not collected."""
        entry = self.entry(name)
        if entry is None or entry.status == "missing":
            return None
        file = self.path / name
        text = file.read_text(errors="replace") if file.is_file() else None
        if entry.status == "failed" and not (text or "").strip():
            return None  # nothing to judge: why_missing() quotes the command's stderr
        return text

    def why_missing(self, name: str) -> str:
        entry = self.entry(name)
        if entry is None:
            return f"source not collected ({name} is not in the bundle)"
        if entry.status == "missing":
            return f"source not collected ({entry.reason or 'missing on the node'})"
        if entry.status == "failed":
            detail = entry.stderr.strip().splitlines()[-1:] or [f"exit {entry.exit_code}"]
            return f"{name}: `{entry.command}` failed: {detail[0]}"
        return f"{name}: empty"


def profile_dir(name: str) -> Path:
    path = PROFILES_DIR / name
    if not path.is_dir():
        known = ", ".join(sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir()))
        raise InventoryError(f"sovereign_hw_profile: no recorded hardware profile {name!r}",
                             hint=f"known: {known}")
    return path
