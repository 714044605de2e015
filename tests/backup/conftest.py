"""Fixtures of the backup tests: real restic (Debian's) and a real Postgres
(tests/support/pg_fixtures.py), a knowledge database with events in it."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from pg_fixtures import pg_cluster, pg_dsn  # noqa: F401 (fixtures: tests/support/pg_fixtures.py)

from sovereign.backup.settings import BackupSettings
from sovereign.knowledge import KnowledgeDB, KnowledgeSettings, open_knowledge
from sovereign.knowledge.events import NewEvent, append_many

PASSWORD = "pw-Zq81-never-printed"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOVEREIGN_STATE_DIR", str(tmp_path / "state"))
    for var in list(os.environ):
        if var.startswith(("SOVEREIGN_BACKUP_", "RESTIC_")):
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def restic() -> Path:
    found = shutil.which("restic")
    if found is None:
        pytest.skip("restic not installed: apt-get install restic")
    return Path(found)


@pytest.fixture
def kdb(pg_dsn: str) -> Iterator[KnowledgeDB]:  # noqa: F811 (the fixture, imported above)
    db = open_knowledge(KnowledgeSettings(dsn=pg_dsn))
    append_many(db, [NewEvent(kind="tool_call", source="test", subject=f"s{i}", payload={"i": i})
                     for i in range(50)])
    yield db
    db.close()


@pytest.fixture
def settings(tmp_path: Path, pg_dsn: str, kdb: KnowledgeDB, restic: Path) -> BackupSettings:  # noqa: F811
    etc = tmp_path / "etc-sovereign"
    etc.mkdir()
    (etc / "router.yaml").write_text("tiers: []\n")
    return BackupSettings(repository=str(tmp_path / "repo"), password=SecretStr(PASSWORD),
                          postgres={"dsn": SecretStr(pg_dsn)}, paths=[etc, tmp_path / "no-qdrant"],
                          staging_dir=tmp_path, check_read_data_percent=100)
