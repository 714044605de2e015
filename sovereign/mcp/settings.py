"""The MCP data server's settings: where it listens, who may call it, what it reads, and its pin.

In order, lowest first: the defaults here, a YAML/JSON file (`--config`, else
/etc/sovereign/mcp.yaml when it exists: role `mcp` renders it on a node), then
the environment (`SOVEREIGN_MCP_LISTEN__PORT`, `SOVEREIGN_MCP_KNOWLEDGE`, ...).

- `listen`: the address and port, the names the server answers to in a
  request's Host (`allowed_hosts`) and the browser origins it accepts
  (`origins`, none by default): anything else is refused (DNS rebinding);
- `callers`: `{name: key}`, each key a secret from the vault, sent by a
  client as `Authorization: Bearer <key>`;
- `knowledge`: the DSN of the knowledge database (the `sovereign` schema),
  `crystals`: the DSN of the router's Postgres store; both as a login that
  can only read, and the server's sessions are read-only besides;
- `rag`: the RAG store's settings file (default /etc/sovereign/rag.yaml);
- `tools_pin`: the SHA-256 of the tool definitions recorded at deploy
  (`python -m sovereign.mcp --print-pin`); the server refuses to start
  without it or when the code's definitions differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from sovereign.service.settings import Section, ServiceSettings, build_settings, service_config

SERVICE = "mcp"
DEFAULT_CONFIG = Path("/etc/sovereign/mcp.yaml")
MIN_KEY = 24


class ListenSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8095, ge=0, le=65535)
    allowed_hosts: list[str] = Field(
        default=[], description="names and addresses the server answers to in a request's Host and Origin, "
        "besides listen.host, this machine's name, localhost and the loopback addresses")
    origins: list[str] = Field(
        default=[], description="browser origins (scheme://host[:port]) that may call the server; none by "
        "default")


class McpSettings(ServiceSettings):
    """The MCP data server: read-only tools over the owner's knowledge, the RAG store and the crystals."""

    service: ClassVar[str] = SERVICE
    model_config = service_config(SERVICE)

    listen: ListenSettings = ListenSettings()
    callers: dict[str, SecretStr] = Field(default={}, description="caller name -> bearer key (the vault)")
    knowledge: SecretStr | None = Field(default=None, description="DSN of the knowledge database, a "
                                        "read-only login")
    crystals: SecretStr | None = Field(default=None, description="DSN of the router's Postgres store, a "
                                       "read-only login")
    rag: Path | None = Field(default=None, description="the RAG store's settings file (default "
                             "/etc/sovereign/rag.yaml when it exists)")
    tools_pin: str | None = Field(default=None, description="sha256 of the tool definitions, recorded at "
                                  "deploy")
    connect_timeout_s: float = Field(3.0, gt=0)
    statement_timeout_s: float = Field(10.0, gt=0)

    @field_validator("callers")
    @classmethod
    def _keys_long_enough(cls, callers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        short = sorted(name for name, key in callers.items() if len(key.get_secret_value().strip()) < MIN_KEY)
        if short:
            raise ValueError(f"the key of {', '.join(short)} is shorter than {MIN_KEY} characters")
        return callers

    @field_validator("tools_pin")
    @classmethod
    def _hex_digest(cls, pin: str | None) -> str | None:
        if pin is None:
            return None
        pin = pin.strip().lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise ValueError("tools_pin is a sha256 hex digest (64 hex digits): "
                             "`python -m sovereign.mcp --print-pin` prints it")
        return pin


def mcp_settings(config: Path | None = None) -> McpSettings:
    """The settings from `config` (else /etc/sovereign/mcp.yaml if it exists) and the environment."""
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    return build_settings(McpSettings, config_file=config)
