"""The knowledge database's settings: its DSN (a secret) and its bounds.

In order, lowest first: the defaults here, a YAML/JSON file (`--config`,
keys as below), the environment (`SOVEREIGN_KNOWLEDGE_DSN`, ...), then a
command line's `--dsn`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from sovereign.service.settings import ServiceConfigError, ServiceSettings, build_settings, service_config


class KnowledgeSettings(ServiceSettings):
    """Where the owner's knowledge lives (Postgres only: the `sovereign` schema)."""

    service: ClassVar[str] = "knowledge"
    model_config = service_config("knowledge")

    dsn: SecretStr | None = None
    connect_timeout_s: float = Field(3.0, gt=0)
    statement_timeout_s: float = Field(10.0, gt=0)


def knowledge_settings(config: Path | None = None, dsn: str | None = None) -> KnowledgeSettings:
    """The settings from the file, the environment and `dsn`; one DSN is required."""
    settings = build_settings(KnowledgeSettings, config_file=config)
    if dsn:
        settings.dsn = SecretStr(dsn)
        settings.source.append("--dsn")
    if settings.dsn is None or not settings.dsn.get_secret_value().strip():
        raise ServiceConfigError("no knowledge database is configured",
                                 hint="pass --dsn, set SOVEREIGN_KNOWLEDGE_DSN, or `dsn:` in a --config file")
    return settings
