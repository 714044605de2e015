"""The router's settings: one object, built by the kit (sovereign.service.settings).

Precedence, lowest first: the defaults declared here → the typed inventory
models (`sovereign_router_tiers`, `sovereign_models`, `sovereign_egress` of
the orchestrator: only what the inventory states is taken, so each default
lives here once) → a YAML or JSON file (`--config`) →
`SOVEREIGN_ROUTER_*` environment variables, nested with `__`
(`SOVEREIGN_ROUTER_STORE__DSN=postgresql://…`,
`SOVEREIGN_ROUTER_EGRESS__KILL_SWITCH=true`) → command-line flags.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from sovereign.errors import InventoryError
from sovereign.service.settings import (
    Section,
    ServiceSettings,
    build_settings,
    deep_merge,
    env_prefix,
    service_config,
    validate_values,
)

if TYPE_CHECKING:
    from sovereign.inventory.loader import Host, Inventory

log = logging.getLogger(__name__)

SERVICE = "router"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host.strip("[]") in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

ENV_PREFIX = env_prefix(SERVICE)
SIMULATED = "cloud stand-in (simulated)"


class ListenSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    allowed_hosts: list[str] = Field(
        default=[], description="names and addresses the router answers to in a request's Host and Origin, "
        "besides listen.host, localhost and the loopback addresses (a request naming any other is refused: "
        "DNS rebinding)")
    cors_origins: list[str] = Field(
        default=[], description="origins (scheme://host[:port]) that browsers may call the API from; none by "
        "default (CORS off)")


class AuthSettings(Section):
    """Who may ask (callers.py). `keys`: every request to the API carries a
    caller's key; `none`: no keys, and then the router listens only on a
    loopback address."""

    mode: Literal["keys", "none"] = "keys"
    keys_file: Path | None = Field(default=None, description="the operator's keys, written by `sovereign "
                                   "router keys` (default <state>/callers.json)")
    managed_file: Path | None = Field(default=None, description="the keys role router renders from "
                                      "router_callers (never written by the CLI)")


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
    retrieve: bool = Field(default=False, description="add context from the RAG store to every request "
                           "(local tiers only; a request's sovereign.retrieve overrides it)")
    supports_tools: bool | None = Field(default=None, description="takes `tools` and answers with tool "
                                        "calls (default: cloud yes, local no)")
    supports_response_format: bool = Field(default=True, description="takes `response_format` "
                                           "(json_object, json_schema)")
    unconfigured: str | None = Field(default=None, description="why the tier cannot run (set by the loader)")

    @model_validator(mode="after")
    def _defaults(self) -> TierSettings:
        if self.scorer is None:
            self.scorer = "accept" if self.kind == "cloud" else "logprob"
        if self.supports_tools is None:
            self.supports_tools = self.kind == "cloud"
        if self.kind == "cloud" and not self.provider:
            raise ValueError("a cloud tier names its provider")
        if self.kind == "cloud" and self.retrieve:
            raise ValueError(f"tier {self.name}: retrieve is for local tiers only (the owner's documents "
                             "never leave: a cloud tier is never sent retrieved context)")
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
    # Privacy (sovereign/router/privacy.py): the owner's own identifiers
    # (names, addresses, account names), kept in wherever they appear; extra
    # lexicon words per domain; and what a request with only weak signals does.
    private_identifiers: list[str] = []
    private_terms: dict[str, list[str]] = {}
    when_unsure: Literal["stay", "leave"] = "stay"
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
    statement_timeout_s: float = Field(default=10.0, gt=0, description="Postgres statement_timeout; a "
                                       "call still waiting 2 s after it is cut off (a frozen server)")
    request_timeout_s: float = Field(default=0.5, gt=0, description="the most a request waits on the store "
                                     "(a crystal's confirmation; then it is served from the index)")
    write_timeout_s: float = Field(default=5.0, gt=0, description="a background write not done by then "
                                   "goes to the outbox")
    exact: bool = True
    semantic: bool = True
    semantic_threshold: float = Field(default=0.92, ge=0.0, le=1.0)
    ann: bool = Field(default=True, description="search large blocks through the ANN index (usearch); "
                      "false: exact search always")
    ann_min_vectors: int = Field(default=20_000, ge=1, description="a block (domain, system prompt) of at "
                                 "least this many crystals is searched through the ANN index")

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreSettings:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError("store.backend is postgres but store.dsn is not set")
        return self


class EmbeddingSettings(Section):
    backend: Literal["minilm", "hashed", "none"] = "minilm"
    model_dir: Path | None = None


class RagSection(Section):
    """Retrieval (retrieval.py): where the RAG store is (docs/rag.md) and how
    much of what it finds goes into a local tier's request."""

    config: Path | None = Field(default=None, description="the RAG store's settings file (default "
                                "/etc/sovereign/rag.yaml when it exists, else the RAG store's defaults)")
    store: dict[str, Any] = Field(default_factory=dict, description="RAG store settings given here (the "
                                  "keys of docs/rag.md), over the file's")
    limit: int = Field(default=4, ge=1, le=32, description="passages searched for per request")
    min_score: float = Field(default=0.3, ge=-1.0, le=1.0, description="the lowest cosine similarity of a "
                             "passage kept")
    max_chars: int = Field(default=4000, ge=100, description="characters of passages in the context, at "
                           "most")
    timeout_s: float = Field(default=5.0, gt=0, description="a search not done by then: the request is "
                             "answered without context")

    @model_validator(mode="after")
    def _store_keys(self) -> RagSection:
        if self.store:
            from pydantic import ValidationError

            from sovereign.rag.settings import RagSettings

            try:
                RagSettings.model_validate(self.store)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"rag.store.{where}: {first['msg']}") from None
        return self


class ScoringSettings(Section):
    min_weight: float = Field(default=0.2, ge=0.0, le=1.0,
                              description="weight α of the min-token probability in the log-prob score")
    truncation_penalty: float = Field(default=0.8, ge=0.0, le=1.0,
                                      description="factor applied when generation hit max_tokens")
    verify_prompt: str = ("Question: {question}\nProposed answer: {answer}\n"
                          "Is this answer correct? Answer yes or no.")
    verify_top_logprobs: int = Field(default=20, ge=1, le=20)


class RouterSettings(ServiceSettings):
    model_config = service_config(SERVICE)
    service: ClassVar[str] = SERVICE
    merge_by_name: ClassVar[tuple[str, ...]] = ("tiers",)

    listen: ListenSettings = ListenSettings()
    auth: AuthSettings = AuthSettings()
    tiers: list[TierSettings] = []
    providers: dict[str, ProviderSettings] = {}
    egress: EgressSettings = EgressSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    store: StoreSettings = StoreSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    scoring: ScoringSettings = ScoringSettings()
    rag: RagSection = RagSection()
    calibration_file: Path | None = None
    # The key the local tiers' llama-servers require (phase 4's
    # vault_llama_api_key): given here, or read from the environment variable
    # named by local_api_key_env (the router's unit sets it from the vault).
    local_api_key: SecretStr | None = None
    local_api_key_env: str = "SOVEREIGN_LLAMA_API_KEY"
    down_retry_s: float = Field(default=15.0, ge=0, description="a failed tier is skipped this long")
    max_request_bytes: int = 1_000_000
    stream_keepalive_s: float = Field(
        default=1.0, gt=0, description="a streamed request the ladder has not decided within this long gets "
        "an SSE comment at once and every this many seconds until it has")

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
        if self.auth.mode == "none" and not is_loopback(self.listen.host):
            raise ValueError(f"auth.mode is none, so the router listens only on a loopback address, and "
                             f"listen.host is {self.listen.host}: give callers keys (`sovereign router keys "
                             "add NAME`) or listen on 127.0.0.1")
        return self

    # ---------------------------------------------------------------- derived paths
    def sqlite_path(self) -> Path:
        return self.store.path or self.state() / "router.sqlite3"

    def spool_dir(self) -> Path:
        return self.state() / "spool"

    def calibration_path(self) -> Path:
        return self.calibration_file or self.state() / "calibration.json"

    def keys_path(self) -> Path:
        return self.auth.keys_file or self.state() / "callers.json"

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


# Where the cloud stand-in (simulated) listens unless told otherwise: its
# provider below points there (role router's router_cloud_standin_port).
STANDIN_PORT = 8099

# Public OpenAI-compatible endpoints of the providers the production inventory names.
# A provider still needs a `model` (and its key) before its tier can run.
KNOWN_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
    "anthropic": {"base_url": "https://api.anthropic.com/v1", "api_key_env": "ANTHROPIC_API_KEY"},
    "google": {"base_url": "https://generativelanguage.googleapis.com/v1beta/openai",
               "api_key_env": "GEMINI_API_KEY"},
    "cloud-standin": {"base_url": f"http://127.0.0.1:{STANDIN_PORT}/v1", "model": "cloud-standin",
                      "api_key_env": "SOVEREIGN_CLOUD_STANDIN_KEY", "simulated": True},
}



def router_host(inv: Inventory) -> Host:
    """The host whose variables configure the router: the orchestrator, else the first node."""
    nodes = inv.nodes()
    for name in nodes:
        if "sovereign_orchestrator" in inv.hosts[name].groups:
            return inv.hosts[name]
    if not nodes:
        raise InventoryError(f"{inv.path}: no host in sovereign_nodes", hint="the router reads its tiers "
                             "from the nodes' sovereign_router_tiers")
    return inv.hosts[nodes[0]]


def from_inventory(path: Path) -> tuple[dict[str, Any], str]:
    """The inventory's part of the router's settings, and where it came from."""
    from sovereign.inventory import load_inventory

    return settings_from_inventory(load_inventory(path))


def settings_from_inventory(inv: Inventory) -> tuple[dict[str, Any], str]:
    """What the validated inventory states about the router, as settings
    values, and a line naming the inventory and host. Only what the inventory
    sets is taken: the defaults are this module's."""
    host = router_host(inv)
    node = host.node
    if node is None:
        raise InventoryError(f"{inv.path}: {host.name} has no valid sovereign_* variables",
                             hint="`sovereign inventory check` names the problem")
    models = {m.name: m for m in node.sovereign_models}
    tiers: list[dict[str, Any]] = []
    providers: dict[str, dict[str, Any]] = {}
    for t in node.sovereign_router_tiers:
        tier: dict[str, Any] = t.model_dump(exclude_unset=True, exclude={"model", "provider"})
        if t.provider is not None:
            tier.update(kind="cloud", provider=t.provider)
            providers.setdefault(t.provider, {"name": t.provider, **KNOWN_PROVIDERS.get(t.provider, {})})
        else:
            tier.update(kind="local", model=t.model)
            model = models.get(t.model or "")
            head = inv.hosts.get(model.head) if model else None
            if model is not None and head is not None and model.port is not None:
                tier["endpoint"] = f"http://{head.vars.get('ansible_host', head.name)}:{model.port}"
            if model is not None and model.api is not None:
                tier["api"] = model.api
            if model is not None and not model.enabled:
                tier["enabled"] = False
        tiers.append(tier)
    out: dict[str, Any] = {"tiers": tiers, "providers": providers}
    # A plain key (the lab's, which is not secret); a vault-encrypted one is
    # not readable here and comes from the environment instead.
    key = host.vars.get("llama_server_api_key", host.vars.get("vault_llama_api_key"))
    if isinstance(key, str) and key and "{{" not in key:
        out["local_api_key"] = key
    if node.sovereign_egress is not None:
        out["egress"] = node.sovereign_egress.model_dump(exclude_unset=True)
    return out, f"inventory {inv.path} (host {host.name})"


def _mark_unconfigured(data: dict[str, Any]) -> None:
    """A local tier without an endpoint cannot run: say why (after every
    source is merged, so a file's endpoint counts)."""
    for tier in data.get("tiers", []):
        if tier.get("kind", "local") != "local":
            continue
        if tier.get("endpoint"):
            tier.pop("unconfigured", None)
        elif not tier.get("unconfigured"):
            tier["unconfigured"] = (f"model {tier.get('model')!r} has no `port` in sovereign_models (or is "
                                    "not placed); set it there or give the tier an endpoint in the router "
                                    "config")


def deployable_config(inv: Inventory, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The router's configuration file for a node, as role `router` renders it:
    the inventory's settings with `overrides` merged over them as a file's are
    (tiers by name), validated, without their provenance and without any
    secret (the unit passes keys in its environment)."""
    values, _ = settings_from_inventory(inv)
    data = deep_merge(values, overrides or {}, RouterSettings.merge_by_name)
    _mark_unconfigured(data)
    data.pop("local_api_key", None)
    for provider in data.get("providers", {}).values():
        provider.pop("api_key", None)
    (data.get("rag") or {}).get("store", {}).pop("api_key", None)  # the unit's SOVEREIGN_RAG_API_KEY
    store = data.get("store") if isinstance(data.get("store"), dict) else {}
    store.pop("dsn", None)
    checked = data
    if store.get("backend") == "postgres":
        # The DSN is a secret: the unit's environment gives it (SOVEREIGN_ROUTER_STORE__DSN).
        checked = {**data, "store": {**store, "dsn": "postgresql://from-the-environment"}}
    validate_values(RouterSettings, checked,
                    hint="fix sovereign_router_tiers, sovereign_models or router_config")
    return data


def load_settings(inventory: Path | None = None, config_file: Path | None = None) -> RouterSettings:
    """Build the settings: inventory, then file, then environment (the CLI then
    applies its flags to the returned object)."""
    part = from_inventory(inventory) if inventory is not None else None
    settings = build_settings(RouterSettings, inventory=part, config_file=config_file,
                              adjust=_mark_unconfigured)
    for t in settings.tiers:
        if t.kind == "cloud" and t.provider not in settings.providers:
            settings.providers[t.provider or ""] = ProviderSettings(
                name=t.provider or "", **KNOWN_PROVIDERS.get(t.provider or "", {}))
    return settings
