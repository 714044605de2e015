"""The router's settings: one object, from the inventory, a file and the environment.

Precedence, lowest first: built-in defaults → the inventory (`sovereign_router_tiers`,
`sovereign_models`, `sovereign_egress`, and, once the inventory models carry
them, `sovereign_router_providers` / `sovereign_router`) → a YAML or JSON file
(`--config`) → `SOVEREIGN_ROUTER_*` environment variables, nested with `__`
(`SOVEREIGN_ROUTER_STORE__DSN=postgresql://…`,
`SOVEREIGN_ROUTER_EGRESS__KILL_SWITCH=true`) → command-line flags.

The inventory is read leniently here: keys the inventory models do not know
yet (a model's `port`, a tier's `timeout_s`) are picked up when present and
defaulted when not, so the router runs on today's inventory and on tomorrow's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sovereign.errors import ExitCode, InventoryError, SovereignError, validation_details
from sovereign.paths import state_dir

if TYPE_CHECKING:
    from sovereign.inventory.loader import Inventory

log = logging.getLogger(__name__)

ENV_PREFIX = "SOVEREIGN_ROUTER_"
SIMULATED = "cloud stand-in (simulated)"


class RouterConfigError(SovereignError):
    """The router's configuration is invalid (exit code 3, like the inventory)."""

    exit_code = ExitCode.INVALID_CONFIG


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListenSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)


class TierSettings(Section):
    """One rung of the ladder: a local OpenAI-compatible endpoint or a cloud provider."""

    name: str
    kind: Literal["local", "cloud"]
    model: str | None = Field(default=None, description="roster model (local) or provider model id (cloud)")
    provider: str | None = None
    endpoint: str | None = Field(default=None, description="base URL of a local tier, http://host:port")
    api: Literal["chat", "completion"] = Field(
        default="chat", description="chat: /v1/chat/completions; completion: llama-server /completion "
        "(base models without a chat template)")
    threshold: float = Field(default=0.85, ge=0.0, le=1.0)
    timeout_s: float = Field(default=30.0, gt=0)
    max_tokens: int = Field(default=256, gt=0, description="cap on generated tokens per attempt")
    scorer: Literal["logprob", "verify", "logprob+verify", "accept"] | None = None
    verifier: str | None = Field(default=None, description="tier that verifies this one's answers")
    top_logprobs: int = Field(default=5, ge=0, le=20)
    prompt_template: str = "Question: {prompt}\nAnswer:"
    stop: list[str] = ["\n\n", "\nQuestion:"]
    enabled: bool = True
    unconfigured: str | None = Field(default=None, description="why the tier cannot run (set by the loader)")

    @model_validator(mode="after")
    def _defaults(self) -> TierSettings:
        if self.scorer is None:
            self.scorer = "accept" if self.kind == "cloud" else "logprob"
        if self.kind == "cloud" and not self.provider:
            raise ValueError("a cloud tier names its provider")
        return self


class ProviderSettings(Section):
    """A cloud provider's OpenAI-compatible endpoint. The key is read from the
    environment variable named by `api_key_env` (the role renders it from the
    vault into the unit's EnvironmentFile) or given directly; it is a SecretStr
    and never logged, recorded or echoed."""

    name: str
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    cost_per_1k_prompt_usd: float = Field(default=0.0, ge=0)
    cost_per_1k_completion_usd: float = Field(default=0.0, ge=0)
    simulated: bool = False


class BudgetSettings(Section):
    calls: int = Field(default=100, ge=0)
    tokens: int = Field(default=200000, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class EgressSettings(Section):
    allow_providers: list[str] = []
    never_leave_domains: list[str] = []
    daily_budget: BudgetSettings = BudgetSettings()
    kill_switch: bool = False
    kill_switch_file: Path | None = Field(
        default=None, description="egress is off while this file exists (default: <state>/egress.off)")


DEFAULT_DOMAINS: dict[str, list[str]] = {
    "financial": [r"\b(bank|iban|swift|invoice|salary|payroll|tax(es)?|credit card|debit|loan|mortgage|"
                  r"account number|portfolio|stock|dividend|budget|expense|revenue)\b"],
    "health": [r"\b(diagnos\w*|symptom\w*|medication|prescription|dose|disease|patient|"
               r"therapy|blood|doctor|clinic|allerg\w*)\b"],
    "communications": [r"\b(e-?mail|inbox|sms|text message|voicemail|phone call|chat log|"
                       r"whatsapp|signal message)\b"],
    "code": [r"```", r"\b(def|class|function|import|compile|stack trace|traceback|regex|sql|python|"
             r"javascript|rust|golang|bash)\b"],
    "math": [r"\d+\s*[-+*/^×÷=]\s*\d+", r"\b(integral|derivative|equation|prove|theorem|probability)\b"],
}

DEFAULT_COMPLEX: list[str] = [
    r"\b(prove|derive|design|architect|analy[sz]e|compare|trade-?offs?|step by step|explain why|"
    r"optimi[sz]e|refactor|plan)\b",
]


class ClassifierSettings(Section):
    """Pre-assessment. `rules`: regular expressions pick the domain; length,
    turns and "complex" cues pick the class. `model`: a local tier is asked for
    the class (A/B/C) and its answer read from log-probabilities; rules stay the
    fallback and always pick the domain."""

    mode: Literal["rules", "model"] = "rules"
    model_tier: str | None = None
    domains: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_DOMAINS))
    complex_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_COMPLEX))
    b_min_words: int = 40
    c_min_words: int = 200
    start: dict[Literal["A", "B", "C"], str] = Field(
        default_factory=dict, description="class → first tier name (default: A → first tier, "
        "B → second local tier, C → last local tier)")


class StoreSettings(Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = Field(default=None, description="SQLite file (default <state>/router.sqlite3)")
    dsn: SecretStr | None = Field(default=None, description="Postgres DSN (libpq form or URL)")
    connect_timeout_s: float = 3.0
    exact: bool = True
    semantic: bool = True
    semantic_threshold: float = Field(default=0.92, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreSettings:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError("store.backend is postgres but store.dsn is not set")
        return self


class EmbeddingSettings(Section):
    backend: Literal["minilm", "hashed", "none"] = "minilm"
    model_dir: Path | None = None


class ScoringSettings(Section):
    min_weight: float = Field(default=0.2, ge=0.0, le=1.0,
                              description="weight α of the min-token probability in the log-prob score")
    truncation_penalty: float = Field(default=0.8, ge=0.0, le=1.0,
                                      description="factor applied when generation hit max_tokens")
    verify_prompt: str = ("Question: {question}\nProposed answer: {answer}\n"
                          "Is this answer correct? Answer yes or no.")
    verify_top_logprobs: int = Field(default=20, ge=1, le=20)


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      extra="forbid", case_sensitive=False)

    listen: ListenSettings = ListenSettings()
    tiers: list[TierSettings] = []
    providers: dict[str, ProviderSettings] = {}
    egress: EgressSettings = EgressSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    store: StoreSettings = StoreSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    scoring: ScoringSettings = ScoringSettings()
    state_dir: Path | None = None
    calibration_file: Path | None = None
    # The key the local tiers' llama-servers require (phase 4's
    # vault_llama_api_key): given here, or read from the environment variable
    # named by local_api_key_env (the router's unit sets it from the vault).
    local_api_key: SecretStr | None = None
    local_api_key_env: str = "SOVEREIGN_LLAMA_API_KEY"
    down_retry_s: float = Field(default=15.0, ge=0, description="a failed tier is skipped this long")
    max_request_bytes: int = 1_000_000
    source: list[str] = Field(default_factory=list, description="where the settings came from")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the inventory and the file (both arrive as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _cross(self) -> RouterSettings:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names repeat: {names}")
        for t in self.tiers:
            if t.verifier and t.verifier not in names:
                raise ValueError(f"tier {t.name}: verifier {t.verifier!r} is not a tier")
            if "verify" in (t.scorer or "") and not t.verifier:
                t.verifier = t.name
        for cls_, tier in self.classifier.start.items():
            if tier not in names:
                raise ValueError(f"classifier.start.{cls_}: {tier!r} is not a tier")
        return self

    # ---------------------------------------------------------------- derived paths
    def state(self) -> Path:
        path = self.state_dir or (state_dir() / "router")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sqlite_path(self) -> Path:
        return self.store.path or self.state() / "router.sqlite3"

    def spool_dir(self) -> Path:
        return self.state() / "spool"

    def calibration_path(self) -> Path:
        return self.calibration_file or self.state() / "calibration.json"

    def kill_switch_path(self) -> Path:
        return self.egress.kill_switch_file or self.state() / "egress.off"

    def local_key(self) -> SecretStr | None:
        if self.local_api_key is not None:
            return self.local_api_key
        value = os.environ.get(self.local_api_key_env)
        return SecretStr(value) if value else None

    def provider_key(self, name: str) -> SecretStr | None:
        p = self.providers.get(name)
        if p is None:
            return None
        if p.api_key is not None:
            return p.api_key
        if p.api_key_env and os.environ.get(p.api_key_env):
            return SecretStr(os.environ[p.api_key_env])
        return None

    def public_dump(self) -> dict[str, Any]:
        """The effective settings with every secret masked."""
        return json.loads(self.model_dump_json())  # SecretStr dumps as '**********'


# Public OpenAI-compatible endpoints of the providers the production inventory names.
# A provider still needs a `model` (and its key) before its tier can run.
KNOWN_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
    "anthropic": {"base_url": "https://api.anthropic.com/v1", "api_key_env": "ANTHROPIC_API_KEY"},
    "google": {"base_url": "https://generativelanguage.googleapis.com/v1beta/openai",
               "api_key_env": "GEMINI_API_KEY"},
    "cloud-standin": {"base_url": "http://127.0.0.1:8099/v1", "model": "cloud-standin",
                      "api_key_env": "SOVEREIGN_CLOUD_STANDIN_KEY", "simulated": True},
}

_TIER_KEYS = set(TierSettings.model_fields) - {"kind", "unconfigured"}


def _router_host(inv: Any) -> Any:
    """The host whose variables configure the router: the orchestrator, else the first node."""
    nodes = inv.nodes()
    for name in nodes:
        if "sovereign_orchestrator" in inv.hosts[name].groups:
            return inv.hosts[name]
    if not nodes:
        raise InventoryError(f"{inv.path}: no host in sovereign_nodes", hint="the router reads its tiers "
                             "from the nodes' sovereign_router_tiers")
    return inv.hosts[nodes[0]]


def from_inventory(path: Path) -> dict[str, Any]:
    """Router settings (as a plain dict) from an inventory directory."""
    from sovereign.inventory import load_inventory

    return settings_from_inventory(load_inventory(path))


def settings_from_inventory(inv: Inventory) -> dict[str, Any]:
    """Router settings (as a plain dict) from a loaded inventory, or from the
    hosts of a running play (sovereign.inventory.loader.inventory_from_vars)."""
    host = _router_host(inv)
    v = host.vars
    models = {m.get("name"): m for m in v.get("sovereign_models", []) if isinstance(m, dict)}
    tiers: list[dict[str, Any]] = []
    providers: dict[str, dict[str, Any]] = {}
    for raw in v.get("sovereign_router_tiers", []) or []:
        tier = {k: raw[k] for k in raw if k in _TIER_KEYS}
        if raw.get("provider"):
            tier["kind"] = "cloud"
            providers.setdefault(raw["provider"], {"name": raw["provider"],
                                                   **KNOWN_PROVIDERS.get(raw["provider"], {})})
        else:
            tier["kind"] = "local"
            model = models.get(raw.get("model"), {})
            if "endpoint" not in tier:
                placement = model.get("placement") or []
                head = inv.hosts.get(placement[0]) if placement else None
                address = head.vars.get("ansible_host", head.name) if head else None
                port = model.get("port")
                if address and port:
                    tier["endpoint"] = f"http://{address}:{port}"
                else:
                    tier["unconfigured"] = (f"model {raw.get('model')!r} has no `port` in sovereign_models; "
                                            "set it there or give the tier an endpoint in the router config")
            if "api" not in tier and model.get("api"):
                tier["api"] = model["api"]
            if model.get("enabled") is False:
                tier["enabled"] = False
        tiers.append(tier)
    for raw in v.get("sovereign_router_providers", []) or []:
        if isinstance(raw, dict) and raw.get("name"):
            providers[raw["name"]] = {**providers.get(raw["name"], {}), **raw}
    out: dict[str, Any] = {"tiers": tiers, "providers": providers,
                           "source": [f"inventory {inv.path} (host {host.name})"]}
    # A plain key (the lab's, which is not secret); a vault-encrypted one is
    # not readable here and comes from the environment instead.
    key = v.get("llama_server_api_key", v.get("vault_llama_api_key"))
    if isinstance(key, str) and key and "{{" not in key:
        out["local_api_key"] = key
    egress = v.get("sovereign_egress")
    if isinstance(egress, dict):
        out["egress"] = dict(egress)
    extra = v.get("sovereign_router")
    if isinstance(extra, dict):
        out = _deep_merge(out, extra)
    return out


def deployable_config(inv: Inventory, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The router's configuration file for a node, as role `router` renders it:
    the inventory's settings with `overrides` merged over them as a file's are
    (tiers by name), validated, without their provenance and without any
    secret (the unit passes keys in its environment)."""
    data = _deep_merge(settings_from_inventory(inv), overrides or {})
    data.pop("source", None)
    data.pop("local_api_key", None)
    for provider in data.get("providers", {}).values():
        provider.pop("api_key", None)
    try:
        RouterSettings(**data)
    except ValidationError as exc:
        raise RouterConfigError(
            "the inventory's router settings are not valid",
            hint="fix sovereign_router_tiers, sovereign_router_providers or sovereign_router",
            details=validation_details(exc),
        ) from None
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], val)
        elif k == "tiers" and isinstance(val, list) and isinstance(out.get(k), list):
            # Tiers merge by name: a file can override one field of one inventory tier.
            by_name = {t.get("name"): dict(t) for t in out[k]}
            order = [t.get("name") for t in out[k]]
            for t in val:
                if t.get("name") in by_name:
                    by_name[t["name"]].update(t)
                    if "endpoint" in t:
                        by_name[t["name"]].pop("unconfigured", None)
                else:
                    by_name[t.get("name")] = dict(t)
                    order.append(t.get("name"))
            out[k] = [by_name[n] for n in order]
        else:
            out[k] = val
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RouterConfigError(f"{path}: cannot read the router config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise RouterConfigError(f"{path}: not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RouterConfigError(f"{path}: the router config must be a mapping")
    return data


def load_settings(inventory: Path | None = None, config_file: Path | None = None) -> RouterSettings:
    """Build the settings: inventory, then file, then environment (the CLI then
    applies its flags to the returned object)."""
    data: dict[str, Any] = {}
    sources: list[str] = []
    if inventory is not None:
        inv = from_inventory(inventory)
        sources += inv.pop("source", [])
        data = _deep_merge(data, inv)
    if config_file is not None:
        data = _deep_merge(data, read_config_file(config_file))
        sources.append(f"file {config_file}")
    if any(k.upper().startswith(ENV_PREFIX) for k in os.environ):
        sources.append(f"environment {ENV_PREFIX}*")
    data["source"] = sources
    try:
        settings = RouterSettings(**data)
    except ValidationError as exc:
        where = str(config_file or inventory or "settings")
        raise RouterConfigError(
            "the router configuration is not valid",
            hint=f"fix the keys above in {where} or the {ENV_PREFIX}* environment",
            details=validation_details(exc, where),
        ) from None
    for t in settings.tiers:
        if t.kind == "cloud" and t.provider not in settings.providers:
            settings.providers[t.provider or ""] = ProviderSettings(
                name=t.provider or "", **KNOWN_PROVIDERS.get(t.provider or "", {}))
    return settings
