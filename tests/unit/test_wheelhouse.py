"""The wheelhouse: the identity of a service's sources (what role
sovereign_service compares on the node), the wheel it ships, and its
refusals; building it for real is the molecule scenarios' (sovereign_service,
router)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sovereign.errors import SovereignError
from sovereign.paths import project_root
from sovereign.wheelhouse import (
    DATA_WHEELS,
    build,
    build_wheel,
    import_closure,
    main,
    package_hash,
    runtime_requirements,
    source_files,
    source_hash,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the wheel is built from."""
    root = tmp_path / "tree"
    shutil.copytree(project_root() / "sovereign", root / "sovereign",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(project_root() / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel")))


def edit(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_a_hardware_parser_is_not_the_routers_source(tree: Path) -> None:
    """What the router runs changes its hash; a parser it never imports does not."""
    first = source_hash("router", tree)
    assert first == source_hash("router", tree)
    edit(tree / "sovereign/hw/parsers/lspci.py")
    edit(tree / "sovereign/hw/profiles/strix-halo-128g/free.txt", "\n")
    (tree / "README.md").write_text("not part of the wheel\n")
    (tree / "sovereign/router/__pycache__").mkdir(exist_ok=True)
    (tree / "sovereign/router/__pycache__/x.pyc").write_bytes(b"\0")
    assert source_hash("router", tree) == first
    edit(tree / "sovereign/errors.py")
    assert source_hash("router", tree) != first


@pytest.mark.parametrize("changed", [
    "pyproject.toml",
    "sovereign/__init__.py",
    # Imported by the router's package, not part of it.
    "sovereign/service/sql.py",
    "sovereign/inventory/models.py",
    # Data of a package in the closure.
    "sovereign/router/store/migrations/sqlite/0001_init.sql",
])
def test_what_the_router_runs_changes_its_hash(tree: Path, changed: str) -> None:
    first = source_hash("router", tree)
    edit(tree / changed, "\n-- edited\n" if changed.endswith(".sql") else "\n# edited\n")
    assert source_hash("router", tree) != first


def test_relative_and_lazy_imports_are_followed(tree: Path) -> None:
    """An import inside a function, written relative to the package, brings
    the imported module (and its package's __init__) into the closure."""
    parser = tree / "sovereign/hw/parsers/lspci.py"
    first = source_hash("router", tree)
    edit(parser)
    assert source_hash("router", tree) == first
    (tree / "sovereign/router/probe.py").write_text(
        "def lspci():\n    from ..hw.parsers import lspci\n\n    return lspci\n")
    closure = import_closure("router", tree)
    assert {"sovereign.router.probe", "sovereign.hw.parsers", "sovereign.hw.parsers.lspci"} <= set(closure)
    second = source_hash("router", tree)
    edit(parser)
    assert source_hash("router", tree) != second


def test_the_closure_of_the_router(tree: Path) -> None:
    closure = set(import_closure("router", tree))
    assert {"sovereign", "sovereign.errors", "sovereign.router", "sovereign.router.config"} <= closure
    assert not {m for m in closure if m.startswith(("sovereign.hw", "sovereign.engine", "sovereign.cli",
                                                    "sovereign.checks", "sovereign.lab"))}
    files = {str(p.relative_to(tree)) for p in source_files("router", tree)}
    assert "sovereign/router/store/migrations/postgres/0001_init.sql" in files
    assert not any(f.startswith("sovereign/hw/") for f in files)


@pytest.mark.parametrize("service", ["nope", "Router", "../hw", ""])
def test_a_service_must_be_a_package_of_sovereign(tree: Path, service: str) -> None:
    with pytest.raises(SovereignError) as caught:
        source_hash(service, tree)
    assert "e.g. router" in (caught.value.hint or "")


def test_the_wheelhouse_is_rebuilt_for_any_change_of_the_package(tree: Path) -> None:
    """The wheel is the whole package, whatever service a build reports on."""
    first = package_hash(tree)
    edit(tree / "sovereign/hw/parsers/lspci.py")
    assert package_hash(tree) != first


@pytest.mark.parametrize("version", ["3", "python3.11", "3.11.2", ""])
def test_a_python_version_must_be_major_minor(version: str, tmp_path: Path) -> None:
    with pytest.raises(SovereignError) as caught:
        build(version, tmp_path)
    assert "is not of the form 3.N" in caught.value.message
    assert not any(tmp_path.iterdir())


def test_an_unknown_service_builds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--python-version", "3.11", "--service", "nope", "--dest", str(tmp_path)]) != 0
    assert "no package sovereign.nope" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_wheel_carries_every_data_file(wheel: zipfile.ZipFile) -> None:
    """What the package reads at run time (profiles, migrations) is in its wheel."""
    names = set(wheel.namelist())
    data = {str(p.relative_to(project_root())) for p in (project_root() / "sovereign").rglob("*")
            if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts}
    assert data and data <= names, sorted(data - names)


def _key(requirement: str) -> tuple[str, str, tuple[str, ...], str]:
    r = Requirement(requirement)
    return canonicalize_name(r.name), str(r.specifier), tuple(sorted(r.extras)), str(r.marker or "")


def test_the_wheel_requires_the_runtime_alone(wheel: zipfile.ZipFile) -> None:
    """A node installs the wheel with its own requirements: the runtime's;
    the provisioner's only behind its extra."""
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    plain = sorted(_key(r) for r in requires if "extra ==" not in r)
    assert plain == sorted(_key(r) for r in runtime_requirements())
    assert any(r.startswith("ansible-core") and 'extra == "provisioner"' in r for r in requires)


def test_data_wheels_are_services_of_the_package() -> None:
    for service in DATA_WHEELS:
        assert import_closure(service)
