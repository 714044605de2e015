"""The rule of imports (docs/architecture.md), read from the source with ast:
lazy imports inside functions count as much as the ones at the top.

- the kit, sovereign/service/, imports only sovereign.inventory, .errors and .paths;
- a service (sovereign/router/, ...) never imports another service, nor
  sovereign.engine, .checks, .hw or .cli.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign.service import SERVICES
from sovereign.wheelhouse import imports_of as module_imports

PKG = Path(__file__).resolve().parents[2] / "sovereign"
KIT_MAY_IMPORT = ("sovereign.service", "sovereign.inventory", "sovereign.errors", "sovereign.paths")
SERVICE_MAY_NOT = ("sovereign.engine", "sovereign.checks", "sovereign.hw", "sovereign.cli")
# A data module built on another data module (the backup keeps the knowledge chain's head).
ALSO_MAY_IMPORT = {"backup": ("sovereign.knowledge",)}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `sovereign` import in a file (the wheelhouse's reader)."""
    module = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
    return [(line, name) for line, name in module_imports(module, path)
            if name == "sovereign" or name.startswith("sovereign.")]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _files(package: str) -> list[Path]:
    return sorted((PKG / package).rglob("*.py"))


def test_the_walker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    probe = PKG / "service" / "_probe_for_test.py"
    probe.write_text("from . import sql\n\ndef f():\n    from sovereign.engine import ledger\n")
    try:
        found = {name for _, name in imports_of(probe)}
    finally:
        probe.unlink()
    assert {"sovereign.service", "sovereign.engine"} <= found


@pytest.mark.parametrize("package", ["service", "knowledge", "rag", "backup"])  # the kit, data modules
def test_the_kit_imports_only_inventory_errors_and_paths(package: str) -> None:
    allowed = (*KIT_MAY_IMPORT, f"sovereign.{package}", *ALSO_MAY_IMPORT.get(package, ()))
    bad = [f"{p.relative_to(PKG.parent)}:{line}: {name}" for p in _files(package)
           for line, name in imports_of(p)
           if not _within(name, allowed) and name != "sovereign"]
    assert not bad, f"sovereign/{package}/ imports outside the kit's rule:\n" + "\n".join(bad)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_nor_the_provisioner(service: str) -> None:
    assert (PKG / service).is_dir(), f"sovereign/{service}/ is named in SERVICES but does not exist"
    others = tuple(f"sovereign.{s}" for s in SERVICES if s != service)
    bad = [f"{p.relative_to(PKG.parent)}:{line}: {name}" for p in _files(service)
           for line, name in imports_of(p) if _within(name, SERVICE_MAY_NOT + others)]
    assert not bad, f"{service} imports what a service may not:\n" + "\n".join(bad)


def test_every_service_package_is_declared() -> None:
    """A package built on the kit's serve helper is a service and must be in SERVICES."""
    serving = {p.relative_to(PKG).parts[0] for p in PKG.rglob("__main__.py")
               if "sovereign.service.serve" in {n for _, n in imports_of(p)}}
    assert serving <= set(SERVICES), f"undeclared services: {serving - set(SERVICES)}"
