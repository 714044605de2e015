"""`python -m sovereign.backup` as sovereign-backup.service runs it: a real
process, real restic (and a real Postgres for the drill), the password in the
environment as the unit's environment file gives it, the settings in a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from sovereign.backup.settings import BackupSettings

from .conftest import PASSWORD


def _module(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sovereign.backup", *args], capture_output=True, text=True,
                          env={**os.environ, "SOVEREIGN_INVENTORY": "none", **env}, timeout=300, check=False)


def _unit_env(password: str = PASSWORD, dsn: str | None = None) -> dict[str, str]:
    """The environment file's variables: the secrets, never in the settings file."""
    return {"SOVEREIGN_BACKUP_PASSWORD": password, **({"SOVEREIGN_BACKUP_POSTGRES__DSN": dsn} if dsn else {})}


def _paths_config(tmp_path: Path, paths: list[Path], repository: Path | None = None) -> Path:
    config = tmp_path / "backup.yml"
    config.write_text(yaml.safe_dump({"repository": str(repository or tmp_path / "repo"),
                                      "paths": [str(p) for p in paths], "staging_dir": str(tmp_path),
                                      "state_dir": str(tmp_path / "state" / "backup"),
                                      "check_read_data_percent": 100}))
    return config


def _etc(tmp_path: Path) -> Path:
    etc = tmp_path / "etc-sovereign"
    etc.mkdir()
    (etc / "router.yml").write_text("tiers: []\n")
    return etc


def test_init_run_list_verify_as_the_unit_runs_them(tmp_path: Path, restic: Path) -> None:
    config = str(_paths_config(tmp_path, [_etc(tmp_path), tmp_path / "no-qdrant"]))
    outputs = []
    for command, created in (("init", True), ("init", False)):
        done = _module(command, "--config", config, env=_unit_env())
        outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["created"] is created
    ran = _module("run", "--config", config, env=_unit_env())
    outputs += [ran.stdout, ran.stderr]
    assert ran.returncode == 0, ran.stderr
    snapshot = json.loads(ran.stdout)["snapshot"]
    assert snapshot["files"] == 2  # the manifest and router.yml
    assert "… snapshot of 0 dumps and 1 paths" in ran.stderr  # progress goes to stderr
    listed = _module("list", "--config", config, env=_unit_env())
    outputs += [listed.stdout, listed.stderr]
    assert [s["id"] for s in json.loads(listed.stdout)] == [snapshot["id"]]
    checked = _module("verify", "--config", config, env=_unit_env())
    outputs += [checked.stdout, checked.stderr]
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"], checked.stderr
    assert PASSWORD not in "\n".join(outputs)


def test_an_empty_path_set_exits_4_and_keeps_no_snapshot(tmp_path: Path, restic: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = str(_paths_config(tmp_path, [empty]))
    ran = _module("run", "--config", config, env=_unit_env())
    assert ran.returncode == 4, ran.stderr
    assert "holds no data" in ran.stderr and ran.stdout == ""
    assert json.loads(_module("list", "--config", config, env=_unit_env()).stdout) == []


def test_verify_of_an_empty_repository_exits_4_naming_it(tmp_path: Path, restic: Path) -> None:
    config = str(_paths_config(tmp_path, [_etc(tmp_path)]))
    assert _module("init", "--config", config, env=_unit_env()).returncode == 0
    checked = _module("verify", "--config", config, env=_unit_env())
    assert checked.returncode == 4
    assert json.loads(checked.stdout)["ok"] is False
    assert f"error: backup repository {tmp_path / 'repo'} failed verification" in checked.stderr


def test_a_repository_under_a_snapshotted_path_is_not_backed_up_into_itself(tmp_path: Path,
                                                                            restic: Path) -> None:
    """The node's default: the repository in /var/lib/sovereign/backup, under the ledger's directory."""
    data = tmp_path / "var-lib-sovereign"
    (data / "ledger").mkdir(parents=True)
    (data / "ledger" / "ledger.db").write_text("phases\n")
    config = str(_paths_config(tmp_path, [data], repository=data / "backup" / "repository"))
    for _ in range(2):  # the second snapshot would hold the first one's packs
        ran = _module("run", "--config", config, env=_unit_env())
        assert ran.returncode == 0, ran.stderr
    settings = BackupSettings(repository=str(data / "backup" / "repository"), password=PASSWORD)
    from sovereign.backup.run import engine_of

    engine = engine_of(settings)
    files = engine.files(engine.snapshots()[-1])
    assert str(data / "ledger" / "ledger.db") in files
    assert not [f for f in files if f.startswith(str(data / "backup"))], files


def test_bad_settings_exit_11_and_a_wrong_password_12(tmp_path: Path, restic: Path) -> None:
    config = str(_paths_config(tmp_path, [_etc(tmp_path)]))
    missing = _module("run", "--config", config, env={})
    assert missing.returncode == 11 and "password" in missing.stderr
    assert _module("run", "--config", config, env=_unit_env()).returncode == 0
    wrong = _module("run", "--config", config, env=_unit_env("not-the-password-at-all"))
    assert wrong.returncode == 12 and str(tmp_path / "repo") in wrong.stderr
    assert "not-the-password-at-all" not in wrong.stderr + wrong.stdout


def test_the_drill_as_the_unit_runs_it(settings: BackupSettings, tmp_path: Path) -> None:
    assert settings.postgres.dsn is not None
    config = tmp_path / "drill.yml"
    config.write_text(yaml.safe_dump({"repository": settings.repository, "staging_dir": str(tmp_path),
                                      "paths": [str(p) for p in settings.paths],
                                      "postgres": {"databases": []}}))
    env = _unit_env(dsn=settings.postgres.dsn.get_secret_value())
    assert _module("run", "--config", str(config), env=env).returncode == 0
    drill = _module("restore-drill", "--config", str(config), env=env)
    assert drill.returncode == 0, drill.stderr
    assert json.loads(drill.stdout)["ok"] is True
    assert PASSWORD not in drill.stdout + drill.stderr
