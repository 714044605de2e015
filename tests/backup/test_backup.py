"""The backup against real restic and a real Postgres: run -> list -> verify ->
restore-drill, and each way it must fail."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from typer.testing import CliRunner

from sovereign.backup.engines import BackupRepositoryError
from sovereign.backup.run import list_snapshots, restore_drill, run_backup, verify
from sovereign.backup.settings import BackupSettings
from sovereign.cli.main import app
from sovereign.errors import ChecksFailed
from sovereign.knowledge import KnowledgeDB
from sovereign.knowledge.events import head

from .conftest import PASSWORD


def _config(settings: BackupSettings, path: Path) -> Path:
    data = json.loads(settings.model_dump_json(exclude={"source", "state_dir"}))
    data["password"] = settings.password.get_secret_value()
    data["postgres"]["dsn"] = settings.postgres.dsn.get_secret_value()
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


def test_run_list_verify_and_the_drill_pass_and_never_show_the_password(
        settings: BackupSettings, kdb: KnowledgeDB, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = str(_config(settings, tmp_path / "backup.yaml"))
    outputs = []
    code, out = _cli("backup", "run", "--config", config, "--json")
    outputs.append(out)
    assert code == 0, out
    ran = json.loads(out)
    assert ran["snapshot"]["files"] >= 4  # the dump, the head file, the manifest, router.yaml
    assert ran["manifest"]["databases"][0]["head"]["hash"] == head(kdb).hash
    assert ran["manifest"]["missing"] == [str(tmp_path / "no-qdrant")]

    code, out = _cli("backup", "list", "--config", config, "--json")
    outputs.append(out)
    assert code == 0 and [s["id"] for s in json.loads(out)] == [ran["snapshot"]["id"]]

    code, out = _cli("backup", "verify", "--config", config, "--json")
    outputs.append(out)
    checked = json.loads(out)
    assert code == 0 and checked["ok"], out
    assert len(checked["expected_files"]) == 3 and not checked["missing_files"]

    code, out = _cli("backup", "restore-drill", "--config", config, "--json")
    outputs.append(out)
    drill = json.loads(out)
    assert code == 0 and drill["ok"], out
    by_what = {c["what"]: c for c in drill["comparisons"]}
    events = by_what["rows sovereign.behavioral_events"]
    assert events["backup"] == events["restored"] == events["live"] == 50
    assert by_what["restored chain"]["restored"] == by_what["live chain"]["live"] == head(kdb).hash

    for command in ("verify", "list"):  # the human renderings too
        code, out = _cli("backup", command, "--config", config)
        outputs.append(out)
        assert code == 0, out
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in "\n".join(outputs) + logged


def test_a_row_edited_after_the_backup_fails_the_drill(settings: BackupSettings, kdb: KnowledgeDB) -> None:
    run_backup(settings)
    with kdb.db.transaction():
        kdb.run("SET LOCAL sovereign.maintenance = 'on'")
        kdb.run("UPDATE sovereign.behavioral_events SET subject = 'changed' WHERE seq = 7")
    drill = restore_drill(settings)
    assert not drill.ok
    live = next(c for c in drill.comparisons if c.what == "live chain")
    assert not live.ok and "seq 7" in live.message and "edited" in live.message
    restored = next(c for c in drill.comparisons if c.what == "restored chain")
    assert restored.ok  # the backup itself is sound


def test_a_row_appended_after_the_backup_is_reported(settings: BackupSettings, kdb: KnowledgeDB) -> None:
    from sovereign.knowledge.events import NewEvent, append

    run_backup(settings)
    append(kdb, NewEvent(kind="late", source="test"))
    drill = restore_drill(settings)
    rows = next(c for c in drill.comparisons if c.what == "rows sovereign.behavioral_events")
    assert not drill.ok and not rows.ok and (rows.backup, rows.restored, rows.live) == (50, 50, 51)


def test_a_snapshot_of_an_empty_path_set_fails_and_is_dropped(tmp_path: Path, restic: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = BackupSettings(repository=str(tmp_path / "repo"), password=SecretStr(PASSWORD), paths=[empty],
                              staging_dir=tmp_path)
    with pytest.raises(ChecksFailed, match="holds no data"):
        run_backup(settings)
    assert list_snapshots(settings) == []


@pytest.mark.parametrize("damage", ["garble", "delete"])
def test_a_corrupt_repository_fails_verify_naming_it(settings: BackupSettings, tmp_path: Path,
                                                     damage: str) -> None:
    run_backup(settings)
    packs = [p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()]
    pack = max(packs, key=lambda p: p.stat().st_size)  # the biggest: the dump's data
    if damage == "delete":
        pack.unlink()
    else:
        pack.chmod(0o644)
        with pack.open("r+b") as fh:
            fh.seek(16)
            fh.write(b"garbage-garbage")
    result = verify(settings, 100)
    assert not result.ok and not result.check.ok
    assert str(tmp_path / "repo") in result.check.message
    assert ("does not match" in result.check.message) if damage == "garble" else \
        ("does not exist" in result.check.message)
    code, out = _cli("backup", "verify", "--config", str(_config(settings, tmp_path / "b.yaml")))
    assert code == 4 and str(tmp_path / "repo") in out and PASSWORD not in out


def test_a_wrong_password_is_a_clear_error_and_changes_nothing(settings: BackupSettings) -> None:
    run_backup(settings)
    wrong = settings.model_copy(update={"password": SecretStr("not-the-password")})
    with pytest.raises(BackupRepositoryError, match=settings.repository) as info:
        run_backup(wrong)
    assert "not-the-password" not in info.value.message
    assert len(list_snapshots(settings)) == 1
