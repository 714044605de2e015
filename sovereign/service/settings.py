"""A service's settings: one object, built in one order.

Precedence, lowest first:

1. the defaults declared on the service's settings model (each value has its
   one default there, nowhere else);
2. what the service reads from the *typed* inventory models
   (`sovereign.inventory.models`, validated by the loader; never raw host
   variables);
3. a YAML or JSON file (`--config`);
4. `SOVEREIGN_<SERVICE>_…` environment variables, nested with `__`
   (`SOVEREIGN_ROUTER_STORE__DSN=postgresql://…`).

A command line may then set a field or two on the returned object. Lists of
named entries (a router's tiers) merge by name, so a file can change one field
of one entry the inventory declared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sovereign.errors import ExitCode, SovereignError, validation_details
from sovereign.paths import state_dir

S = TypeVar("S", bound="ServiceSettings")


class ServiceConfigError(SovereignError):
    """A service's settings are invalid: the file, the environment or the inventory's keys."""

    exit_code = ExitCode.SERVICE_CONFIG_INVALID


class Section(BaseModel):
    """A nested section of a service's settings: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def env_prefix(service: str) -> str:
    return f"SOVEREIGN_{service.upper().replace('-', '_')}_"


class ServiceSettings(BaseSettings):
    """The base of every service's settings. A subclass sets `service` and its
    `model_config` (`service_config(name)`), and declares its sections."""

    service: ClassVar[str] = "service"
    # Keys of list-valued settings whose entries merge by their `name`.
    merge_by_name: ClassVar[tuple[str, ...]] = ()

    state_dir: Path | None = None
    source: list[str] = []

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the inventory and the file (both arrive as init kwargs).
        return (env_settings, init_settings)

    def state(self) -> Path:
        """The service's state directory (created): `state_dir`, else <state>/<service>."""
        path = self.state_dir or (state_dir() / self.service)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def public_dump(self) -> dict[str, Any]:
        """The effective settings with every secret masked."""
        return json.loads(self.model_dump_json())  # SecretStr dumps as '**********'


def service_config(service: str) -> SettingsConfigDict:
    """The model_config of a service's settings class."""
    return SettingsConfigDict(env_prefix=env_prefix(service), env_nested_delimiter="__",
                              extra="forbid", case_sensitive=False)


def deep_merge(base: dict[str, Any], over: dict[str, Any],
               by_name: tuple[str, ...] = ()) -> dict[str, Any]:
    """`over` merged into `base`: mappings recursively, the lists named in
    `by_name` entry by entry on their `name`, anything else replaced."""
    out = dict(base)
    for k, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], val, by_name)
        elif k in by_name and isinstance(val, list) and isinstance(out.get(k), list):
            merged = {e.get("name"): dict(e) for e in out[k]}
            order = [e.get("name") for e in out[k]]
            for e in val:
                if e.get("name") in merged:
                    merged[e["name"]].update(e)
                else:
                    merged[e.get("name")] = dict(e)
                    order.append(e.get("name"))
            out[k] = [merged[n] for n in order]
        else:
            out[k] = val
    return out


def read_config_file(path: Path, service: str) -> dict[str, Any]:
    """A YAML (or .json) mapping; every problem names the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ServiceConfigError(f"{path}: cannot read the {service} config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ServiceConfigError(f"{path}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ServiceConfigError(f"{path}: the {service} config must be a mapping")
    return data


def build_settings(cls: type[S], *, inventory: tuple[dict[str, Any], str] | None = None,
                   config_file: Path | None = None,
                   adjust: Callable[[dict[str, Any]], None] | None = None) -> S:
    """The settings of `cls` from, in order: its defaults, the inventory's part
    (`(values, where)`: what the service read from the typed inventory and a
    line saying from where), the file, the environment. `adjust` may rework
    the merged values (e.g. drop a field an override made moot) before
    validation."""
    data: dict[str, Any] = {}
    sources: list[str] = []
    if inventory is not None:
        values, where = inventory
        data = deep_merge(data, values, cls.merge_by_name)
        sources.append(where)
    if config_file is not None:
        data = deep_merge(data, read_config_file(config_file, cls.service), cls.merge_by_name)
        sources.append(f"file {config_file}")
    prefix = env_prefix(cls.service)
    if any(k.upper().startswith(prefix) for k in os.environ):
        sources.append(f"environment {prefix}*")
    if adjust is not None:
        adjust(data)
    data["source"] = sources
    try:
        return cls(**data)
    except ValidationError as exc:
        where = str(config_file or (inventory[1] if inventory else "settings"))
        raise ServiceConfigError(
            f"the {cls.service} configuration is not valid",
            hint=f"fix the keys above in {where} or the {prefix}* environment",
            details=validation_details(exc, where),
        ) from None


def validate_values(cls: type[S], values: dict[str, Any], hint: str) -> None:
    """Raise ServiceConfigError if `values` would not make valid settings."""
    try:
        cls(**values)
    except ValidationError as exc:
        raise ServiceConfigError(f"the inventory's {cls.service} settings are not valid", hint=hint,
                                 details=validation_details(exc)) from None


def read_env_file(path: Path) -> dict[str, str]:
    """A service's environment file (KEY=VALUE lines, as systemd's EnvironmentFile
    reads those the role writes; `#` comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#") or "=" not in text:
            continue
        key, _, value = text.partition("=")
        values[key.strip()] = value
    return values


def adopt_env_file(variable: str) -> Path | None:
    """On a node, an operator's command reads what the service reads: the
    environment file named by `variable` (the store's DSN, keys), when this
    user may read it; what the environment already sets wins."""
    name = os.environ.get(variable)
    if not name or not os.access(name, os.R_OK):
        return None
    for key, value in read_env_file(Path(name)).items():
        os.environ.setdefault(key, value)
    return Path(name)
