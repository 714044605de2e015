"""The backup's settings: the engine, its repository and password (a secret),
the Postgres databases to dump, the paths to snapshot, the keep policy.

In order, lowest first: the defaults here, /etc/sovereign/backup.yaml (or
`--config FILE`), the environment (`SOVEREIGN_BACKUP_PASSWORD`,
`SOVEREIGN_BACKUP_POSTGRES__DSN`, ...). The password and the DSN are
secrets: they reach the engine and pg_dump by environment only, never on a
command line, and are never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from sovereign.paths import state_dir
from sovereign.service.settings import (
    Section,
    ServiceConfigError,
    ServiceSettings,
    build_settings,
    service_config,
)

DEFAULT_CONFIG = Path("/etc/sovereign/backup.yaml")
QDRANT_SNAPSHOTS = Path("/var/lib/qdrant/snapshots")


def default_paths() -> list[Path]:
    """/etc/sovereign, the phase ledger's directory, Qdrant's snapshot directory."""
    return [Path("/etc/sovereign"), state_dir(), QDRANT_SNAPSHOTS]


def find_pg_bin() -> Path | None:
    """The newest Debian PostgreSQL binaries (/usr/lib/postgresql/N/bin) that hold pg_dump and initdb."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class PostgresSection(Section):
    """The databases to dump: `dsn` names the server (and its default database)."""

    dsn: SecretStr | None = None
    databases: list[str] = []  # empty: the DSN's own database


class KeepPolicy(Section):
    """How many snapshots `run` keeps after a backup (restic's and Kopia's --keep-*)."""

    last: int = Field(7, ge=1)
    daily: int = Field(7, ge=0)
    weekly: int = Field(4, ge=0)
    monthly: int = Field(6, ge=0)


class BackupSettings(ServiceSettings):
    service: ClassVar[str] = "backup"
    model_config = service_config("backup")

    engine: Literal["restic", "kopia"] = "restic"
    engine_binary: Path | None = None  # default: `restic` / `kopia` on PATH
    repository: str | None = None
    password: SecretStr | None = None
    postgres: PostgresSection = PostgresSection()
    paths: list[Path] = Field(default_factory=default_paths)
    pg_bin: Path | None = None
    staging_dir: Path | None = None  # where dumps are made before the snapshot (default: the temp dir)
    keep: KeepPolicy = KeepPolicy()
    check_read_data_percent: float = Field(10.0, gt=0, le=100)
    timeout_s: float = Field(3600.0, gt=0)

    def pg_tool(self, name: str) -> Path:
        """pg_dump, pg_restore, initdb, pg_ctl in `pg_bin` (or the newest Debian's)."""
        base = self.pg_bin or find_pg_bin()
        if base is None or not (base / name).exists():
            where = str(base) if base else "/usr/lib/postgresql/*/bin"
            raise ServiceConfigError(f"{name} not found in {where}",
                                     hint="set `pg_bin:` in the backup config, or apt-get install postgresql")
        return base / name


def backup_settings(config: Path | None = None) -> BackupSettings:
    """The settings of `config` (else /etc/sovereign/backup.yaml when it exists) and the
    environment; a repository and a password are required."""
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    settings = build_settings(BackupSettings, config_file=config)
    where = str(config) if config else "the environment"
    if not settings.repository:
        raise ServiceConfigError(f"{where}: repository: no backup repository is configured",
                                 hint="`repository:` (a path or URL) in --config FILE or "
                                      "SOVEREIGN_BACKUP_REPOSITORY")
    if settings.password is None or not settings.password.get_secret_value():
        raise ServiceConfigError(f"{where}: password: the repository's password is not set",
                                 hint="`password:` in the config (rendered from the vault) or "
                                      "SOVEREIGN_BACKUP_PASSWORD")
    return settings
