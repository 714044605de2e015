"""The wheelhouse's identity of the sources (what the router role compares)
and its refusals; building it for real is the router's molecule scenario."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sovereign.errors import SovereignError
from sovereign.paths import project_root
from sovereign.wheelhouse import build, build_wheel, source_hash


def test_source_hash_follows_the_package_and_nothing_else(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(project_root() / "sovereign", tree / "sovereign",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(project_root() / "pyproject.toml", tree / "pyproject.toml")
    first = source_hash(tree)
    assert first == source_hash(tree)
    (tree / "README.md").write_text("not part of the wheel\n")
    (tree / "sovereign" / "__pycache__").mkdir(exist_ok=True)
    (tree / "sovereign" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert source_hash(tree) == first
    edited = tree / "sovereign" / "errors.py"
    edited.write_text(edited.read_text() + "\n# edit\n")
    assert source_hash(tree) != first


@pytest.mark.parametrize("version", ["3", "python3.11", "3.11.2", ""])
def test_a_python_version_must_be_major_minor(version: str, tmp_path: Path) -> None:
    with pytest.raises(SovereignError) as caught:
        build(version, tmp_path)
    assert "is not of the form 3.N" in caught.value.message
    assert not any(tmp_path.iterdir())


def test_the_wheel_carries_every_data_file(tmp_path: Path) -> None:
    """What the package reads at run time (profiles, migrations) is in its wheel."""
    import zipfile

    names = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    data = {str(p.relative_to(project_root())) for p in (project_root() / "sovereign").rglob("*")
            if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts}
    assert data and data <= names, sorted(data - names)
