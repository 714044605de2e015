"""What `sovereign plan` returns: the cluster's capacity and each model's fit.

Memory is in GiB (2^30 bytes), bandwidth in GB/s (10^9 bytes per second, as
the inventory's `memory_bandwidth_gbps`), speeds in tokens per second.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class NodeCapacity(_Frozen):
    """One node of `sovereign_nodes`: its GPU pool and what is left of it."""

    name: str
    pool_gib: float
    # Where the pool comes from (kept in the JSON for scripts; the role option alone).
    pool_source: Literal["kernel_params_gpu_pool_gib"]
    headroom_gib: float
    always_warm: list[str]
    always_warm_gib: float
    # pool - headroom - always-warm residents: what an on-demand model may use.
    free_gib: float
    always_warm_fits: bool
    bandwidth_peak_gbps: float
    bandwidth_measured_gbps: float


class NodeShare(_Frozen):
    """A model's part on one node: all of it, or its layers' share in a layer split."""

    node: str
    ratio: float
    layers: int | None
    weights_gib: float
    kv_gib: float
    need_gib: float
    # What the node offers this model: pool - headroom - the always-warm
    # residents other than this model.
    free_gib: float
    fits: bool


class Roofline(_Frozen):
    """Decode speed bound: bandwidth / bytes read per token (weights only)."""

    bits_per_weight: float
    bits_source: Literal["table", "estimated"]
    bytes_per_token: float
    peak_tps: float
    measured_tps: float
    claimed_tps: list[float] | None
    # max(claimed) / peak roofline, set when the claim is above the roofline.
    claimed_over_roofline: float | None
    claim: Literal["none", "within", "above measured", "above roofline"]


class ModelPlan(_Frozen):
    name: str
    enabled: bool
    always_warm: bool
    quantization: str
    placement: list[str]
    mode: Literal["single node", "layer split"]
    context: int
    weights_gib: float
    kv_cache_type: str
    kv_bytes_per_token: float | None
    kv_source: Literal["architecture", "kv_bytes_per_token", "unknown"]
    kv_gib: float
    need_gib: float
    free_gib: float
    fits: bool
    # llama-server's --tensor-split for a layer split, e.g. "0.55,0.45".
    tensor_split: str | None
    shares: list[NodeShare]
    roofline: Roofline
    verdict: str
    warnings: list[str]


class ClusterPlan(_Frozen):
    inventory: str
    cluster: str
    fits: bool
    refused: list[str]
    nodes: list[NodeCapacity]
    models: list[ModelPlan]
    assumptions: list[str]
    warnings: list[str]
