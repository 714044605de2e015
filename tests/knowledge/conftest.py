"""Fixtures of the knowledge tests: a real Postgres (Debian's server binaries,
a private cluster in a temporary directory, one database per test), as the
router's tests start it (tests/support/testbed.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from pg_fixtures import pg_cluster, pg_dsn  # noqa: F401 (fixtures: tests/support/pg_fixtures.py)

from sovereign.knowledge import KnowledgeDB, KnowledgeSettings, open_knowledge


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    for var in list(os.environ):
        if var.startswith("SOVEREIGN_KNOWLEDGE_"):
            monkeypatch.delenv(var)


@pytest.fixture
def kdb(pg_dsn: str) -> Iterator[KnowledgeDB]:  # noqa: F811 (the fixture, imported above)
    """The owner's connection (the cluster's superuser), migrated."""
    db = open_knowledge(KnowledgeSettings(dsn=pg_dsn))
    yield db
    db.close()
