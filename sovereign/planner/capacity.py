"""The capacity planner: does each model fit where the inventory places it,
and how fast can it decode at best?

Memory. Each node's GPU pool is `kernel_params_gpu_pool_gib` (the
ttm.pages_limit the kernel_params role sets). From it we keep a headroom for
llama.cpp's compute buffers and the ROCm runtime: max(1 GiB, 5 % of the
pool), 6.2 GiB of a 124 GiB pool. Why that much: a llama-server's compute
buffer at the default 512-token micro-batch is a few hundred MiB to ~1.5 GiB
(Gemma's 262k-entry vocabulary alone makes a 512 MiB logits buffer), an RPC
server keeps its own, and the HIP runtime allocates beside them; 5 % covers
two or three such processes, and 1 GiB is the floor for small pools.
Always-warm models are resident together, so their sum (weights + KV) must
fit the pool less the headroom; every other model is loaded on demand and is
checked alone against what the always-warm residents leave.

A model placed on several nodes runs as a llama.cpp RPC *layer* split
(pipeline parallel, not tensor parallel: DESIGN.md §4): its layers, and so
its weights and KV cache, are split in proportion to each node's free
memory, the ratios llama-server takes as `--tensor-split`. It fits when each
node's share fits that node.

Speed. Decode reads every active weight once per token, so it is bounded by
memory bandwidth / bytes per token, bytes per token = active parameters x
bits per weight / 8 (see quant.py). The peak is the inventory's
`memory_bandwidth_gbps` (LPDDR5X-8000 on a 256-bit bus: 256 GB/s); about
215 GB/s is what is measured on these boxes (DESIGN.md §4), hence
MEASURED_FRACTION = 215/256. In a layer split each node reads its share at
its own bandwidth, one after the other: the times add up. The figure ignores
the KV-cache reads (which grow with the context) and the RPC hop between the
nodes, so it is a ceiling, never a forecast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sovereign.errors import InventoryError, PlanDoesNotFit
from sovereign.inventory.loader import Inventory
from sovereign.inventory.models import GIB, ModelSpec
from sovereign.planner.model import ClusterPlan, ModelPlan, NodeCapacity, NodeShare, Roofline
from sovereign.planner.quant import bits_per_weight

HEADROOM_MIN_GIB = 1.0
HEADROOM_FRACTION = 0.05
# 215 GB/s measured of 256 GB/s peak on Strix Halo's LPDDR5X-8000 (DESIGN.md §4).
MEASURED_FRACTION = 215 / 256

# Bytes per cached K or V element: llama.cpp's q8_0 stores 32 values in 34
# bytes, q4_0 in 18 (ggml-common.h block_q8_0, block_q4_0).
KV_BYTES_PER_ELEMENT: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

_EPS = 1e-9

FIX_HINT = ("lower its quantization (a smaller size_gib), place it on more nodes (a layer split), "
            "shorten its context or quantize its KV cache (kv_cache_type: q8_0), "
            "or set `enabled: false`; `sovereign plan` re-checks")


# -- the arithmetic ------------------------------------------------------------------------

def headroom_gib(pool_gib: float) -> float:
    """What a node keeps back for compute buffers and the runtime."""
    return max(HEADROOM_MIN_GIB, HEADROOM_FRACTION * pool_gib)


def kv_bytes_per_token(spec: ModelSpec) -> tuple[float | None, str]:
    """Bytes of KV cache per token of context at the model's cache type, and the source."""
    element = KV_BYTES_PER_ELEMENT[spec.kv_cache_type]
    if spec.layers is not None and spec.kv_heads is not None and spec.head_dim is not None:
        return spec.layers * spec.kv_heads * spec.head_dim * 2 * element, "architecture"
    if spec.kv_bytes_per_token is not None:
        # Given at f16 (2 bytes per element).
        return spec.kv_bytes_per_token * element / KV_BYTES_PER_ELEMENT["f16"], "kv_bytes_per_token"
    return None, "unknown"


def kv_cache_gib(spec: ModelSpec) -> float:
    """The KV cache at the model's configured context (0 when unknown)."""
    per_token, _ = kv_bytes_per_token(spec)
    return 0.0 if per_token is None else per_token * spec.context / GIB


def bytes_per_token(params_active_b: float, bits: float) -> float:
    """Bytes of weights read to decode one token."""
    return params_active_b * 1e9 * bits / 8


def decode_tps(per_token: float, parts: list[tuple[float, float]]) -> float:
    """Tokens/s when each (ratio, bandwidth GB/s) part reads its share of
    `per_token` bytes in turn: the roofline of a single node or a layer split."""
    seconds = sum(ratio * per_token / (gbps * 1e9) for ratio, gbps in parts if ratio > 0)
    return 1 / seconds if seconds > 0 else float("inf")


def split_ratios(free: list[float]) -> list[float]:
    """Layer-split ratios in proportion to each node's free memory (none below 0)."""
    usable = [max(f, 0.0) for f in free]
    total = sum(usable)
    if total <= 0:
        return [1 / len(free)] * len(free)
    return [u / total for u in usable]


def tensor_split_arg(ratios: list[float]) -> str:
    """llama-server's `--tensor-split` value, two decimals that sum to 1."""
    head = [round(r, 2) for r in ratios[:-1]]
    return ",".join(f"{r:.2f}" for r in [*head, max(0.0, round(1 - sum(head), 2))])


def llama_server_split(model: ModelPlan) -> tuple[list[str], str] | None:
    """A layer split as llama-server takes it: the nodes in device order and the
    `--tensor-split` value in that order. llama-server puts the RPC devices
    first, in `--rpc` order, and its own GPU after them (llama.cpp
    src/llama.cpp: "add RPC servers at the front of the list"), so the
    workers come first and the head's share last. Where the head serves its
    share through a local rpc-server (the lab), that one is listed last in
    `--rpc` to keep the same order. None for a single-node model."""
    if len(model.shares) < 2:
        return None
    ordered = [*model.shares[1:], model.shares[0]]
    return [s.node for s in ordered], tensor_split_arg([s.ratio for s in ordered])


def layers_per_node(layers: int, ratios: list[float]) -> list[int]:
    """Whole layers per node, as a cumulative split assigns them."""
    bounds, cumulative = [0], 0.0
    for r in ratios:
        cumulative += r
        bounds.append(round(cumulative * layers))
    bounds[-1] = layers
    return [b - a for a, b in itertools.pairwise(bounds)]


def fmt_gib(value: float) -> str:
    """A GiB figure with the precision its size deserves."""
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# -- the plan ------------------------------------------------------------------------------

@dataclass
class _Node:
    name: str
    pool: float
    pool_source: str
    headroom: float
    bandwidth: float
    resident: dict[str, float] = field(default_factory=dict)

    @property
    def warm_total(self) -> float:
        return sum(self.resident.values())

    def free_for(self, model: str | None) -> float:
        """Pool less headroom less the always-warm residents other than `model`."""
        others = self.warm_total - (self.resident.get(model, 0.0) if model else 0.0)
        return self.pool - self.headroom - others


def _nodes(inventory: Inventory) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for name in inventory.nodes():
        host = inventory.hosts[name]
        node = host.node
        if node is None:  # the loader refuses such an inventory; be safe anyway
            raise InventoryError(f"{name}: no validated node variables",
                                 hint="`sovereign inventory check` shows what is wrong")
        pool = host.vars.get("kernel_params_gpu_pool_gib")
        if not isinstance(pool, int | float) or isinstance(pool, bool):
            raise InventoryError(
                f"{name}: no GPU pool size",
                hint=f"set kernel_params_gpu_pool_gib (the pool in GiB) for {name}, "
                     "e.g. in group_vars/sovereign_nodes.yml")
        nodes[name] = _Node(name=name, pool=float(pool), pool_source="kernel_params_gpu_pool_gib",
                            headroom=headroom_gib(float(pool)),
                            bandwidth=float(node.sovereign_hardware.memory_bandwidth_gbps))
    return nodes


def _roster(inventory: Inventory, names: list[str], warnings: list[str]) -> list[ModelSpec]:
    rosters = [(n, inventory.hosts[n].node.sovereign_models)  # type: ignore[union-attr]
               for n in names]
    if not rosters:
        return []
    first, models = rosters[0]
    for other, theirs in rosters[1:]:
        if theirs != models:
            warnings.append(f"{other}'s sovereign_models differ from {first}'s; "
                            f"the plan uses {first}'s")
    return list(models)


def _targets(spec: ModelSpec) -> list[str]:
    return list(dict.fromkeys(spec.placement))


def _place_warm(roster: list[ModelSpec], nodes: dict[str, _Node]) -> dict[str, list[float]]:
    """Put the enabled always-warm models into their nodes' residents: the
    single-node ones first, then the layer splits over what those leave.
    Returns each warm split's ratios."""
    warm = [m for m in roster if m.enabled and m.always_warm
            and all(t in nodes for t in _targets(m))]
    ratios: dict[str, list[float]] = {}
    for spec in (m for m in warm if len(_targets(m)) == 1):
        nodes[spec.placement[0]].resident[spec.name] = spec.size_gib + kv_cache_gib(spec)
    for spec in (m for m in warm if len(_targets(m)) > 1):
        targets = _targets(spec)
        ratios[spec.name] = split_ratios([nodes[t].free_for(None) for t in targets])
        need = spec.size_gib + kv_cache_gib(spec)
        for t, r in zip(targets, ratios[spec.name], strict=True):
            nodes[t].resident[spec.name] = need * r
    return ratios


def _roofline(spec: ModelSpec, parts: list[tuple[float, float]], name: str,
              warnings: list[str]) -> Roofline:
    bits, source = bits_per_weight(spec)
    if source == "estimated":
        warnings.append(f"{name}: quantization {spec.quantization!r} is not in the bits-per-weight "
                        f"table; {bits:.2f} bits estimated from size_gib / params_total_b")
    per_token = bytes_per_token(spec.params_active_b, bits)
    peak = decode_tps(per_token, parts)
    measured = decode_tps(per_token, [(r, bw * MEASURED_FRACTION) for r, bw in parts])
    claimed = [float(c) for c in spec.claimed_tps] if spec.claimed_tps else None
    over = None
    claim = "none"
    if claimed:
        top = max(claimed)
        if top > peak:
            claim, over = "above roofline", round(top / peak, 2)
            span = f"{min(claimed):g}–{top:g}" if len(claimed) > 1 else f"{top:g}"
            warnings.append(f"{name}: claimed {span} tok/s is above the roofline "
                            f"({peak:.1f} tok/s at peak bandwidth): {over:.2f}x what "
                            "memory bandwidth allows")
        elif top > measured:
            claim = "above measured"
        else:
            claim = "within"
    return Roofline(bits_per_weight=round(bits, 3), bits_source=source,
                    bytes_per_token=round(per_token), peak_tps=round(peak, 2),
                    measured_tps=round(measured, 2), claimed_tps=claimed,
                    claimed_over_roofline=over, claim=claim)  # type: ignore[arg-type]


def _free_one(value: float) -> str:
    return fmt_gib(value) if value >= 0 else f"0 (over by {fmt_gib(-value)})"


def _free_text(values: list[float]) -> str:
    if len(values) == 1:
        return _free_one(values[0])
    total = fmt_gib(sum(max(v, 0.0) for v in values))
    if len({round(v, 1) for v in values}) == 1 and values[0] >= 0:
        return f"{len(values)} × {fmt_gib(values[0])} = {total}"
    return " + ".join(_free_one(v) for v in values) + f" = {total}"


def _plan_model(spec: ModelSpec, nodes: dict[str, _Node],
                warm_ratios: dict[str, list[float]]) -> ModelPlan:
    warnings: list[str] = []
    targets = _targets(spec)
    per_token, kv_source = kv_bytes_per_token(spec)
    kv = kv_cache_gib(spec)
    if per_token is None:
        warnings.append(f"{spec.name}: KV cache unknown (set layers, kv_heads and head_dim, or "
                        "kv_bytes_per_token, in sovereign_models); counted as 0 GiB")
    need = spec.size_gib + kv
    resident = spec.enabled and spec.always_warm
    known = [t for t in targets if t in nodes]
    unknown = [t for t in targets if t not in nodes]
    free = [nodes[t].free_for(spec.name if resident else None) for t in known]
    ratios = (warm_ratios[spec.name] if resident and spec.name in warm_ratios
              else split_ratios(free) if known else [])
    layers = layers_per_node(spec.layers, ratios) if spec.layers and ratios else [None] * len(known)
    shares = []
    for t, f, r, n_layers in zip(known, free, ratios, layers, strict=True):
        part = need * r
        shares.append(NodeShare(
            node=t, ratio=round(r, 4), layers=n_layers, weights_gib=round(spec.size_gib * r, 3),
            kv_gib=round(kv * r, 3), need_gib=round(part, 3), free_gib=round(f, 3),
            fits=part <= max(f, 0.0) + _EPS))
    fits = not unknown and bool(shares) and all(s.fits for s in shares)
    split = len(targets) > 1
    parts = [(r, nodes[t].bandwidth) for t, r in zip(known, ratios, strict=True)]
    if not parts:  # placed on no node at all: bound it by the fastest node's bandwidth
        parts = [(1.0, max((n.bandwidth for n in nodes.values()), default=1.0))]
    roofline = _roofline(spec, parts, spec.name, warnings)

    kv_text = f"{fmt_gib(kv)} GiB KV @ {spec.context}" if per_token is not None else "KV unknown"
    if unknown:
        verdict = (f"{spec.name}: placed on {', '.join(unknown)}, not in sovereign_nodes: refused")
    elif fits:
        used = " + ".join(f"{fmt_gib(s.need_gib)} of {fmt_gib(s.free_gib)}" for s in shares)
        verdict = (f"{spec.name}: fits as a layer split over {', '.join(known)} "
                   f"(--tensor-split {tensor_split_arg(ratios)}): {used} GiB"
                   if split else f"{spec.name}: fits on {known[0]}: {used} GiB free")
    else:
        where = f"{len(known)} nodes (layer split)" if split else known[0]
        beside = sorted({w for t in known for w in nodes[t].resident if w != spec.name})
        verdict = (f"{spec.name}: needs {fmt_gib(spec.size_gib)} GiB of weights + {kv_text} on "
                   f"{where} with {_free_text(free)} GiB free"
                   + (f" beside the always-warm {', '.join(beside)}" if beside else "")
                   + ": refused")
        crowded = [nodes[t] for t in known if nodes[t].free_for(None) < -_EPS]
        if resident and crowded:
            verdict += "; " + "; ".join(
                f"the always-warm models on {n.name} need {fmt_gib(n.warm_total)} GiB together, "
                f"{fmt_gib(n.pool - n.headroom)} available" for n in crowded)
    if not spec.enabled:
        verdict += " (disabled: evaluated, never deployed)"
    return ModelPlan(
        name=spec.name, enabled=spec.enabled, always_warm=spec.always_warm,
        quantization=spec.quantization, placement=targets,
        mode="layer split" if split else "single node", context=spec.context,
        weights_gib=float(spec.size_gib), kv_cache_type=spec.kv_cache_type,
        kv_bytes_per_token=None if per_token is None else round(per_token, 2),
        kv_source=kv_source, kv_gib=round(kv, 3), need_gib=round(need, 3),  # type: ignore[arg-type]
        free_gib=round(sum(max(f, 0.0) for f in free), 3), fits=fits,
        tensor_split=tensor_split_arg(ratios) if split and known else None,
        shares=shares, roofline=roofline, verdict=verdict, warnings=warnings)


def assumptions() -> list[str]:
    """The rules the plan applies, printed under it."""
    return [
        "GPU pool per node: kernel_params_gpu_pool_gib (ttm.pages_limit); sizes in GiB",
        f"headroom per node for compute buffers and the runtime: max({HEADROOM_MIN_GIB:g} GiB, "
        f"{HEADROOM_FRACTION:.0%} of the pool)",
        "always-warm models stay resident together; every other model is checked alone "
        "against the pool less the headroom and the always-warm residents",
        "a multi-node placement is a llama.cpp RPC layer split (pipeline, not tensor parallel): "
        "layers, weights and KV cache split in proportion to each node's free memory "
        "(llama-server --tensor-split)",
        "KV cache = context × layers × kv_heads × head_dim × 2 (K and V) × bytes per element "
        "(f16 2, q8_0 34/32, q4_0 18/32), or context × kv_bytes_per_token",
        "decode roofline = memory bandwidth ÷ weight bytes read per token (active params × "
        "bits per weight ÷ 8); peak = memory_bandwidth_gbps, measured = "
        f"{MEASURED_FRACTION:.0%} of it (215 of 256 GB/s on LPDDR5X-8000); it ignores KV-cache "
        "reads and the RPC hop of a layer split: a ceiling, not a forecast",
    ]


def plan(inventory: Inventory) -> ClusterPlan:
    """Size every model of the roster (enabled or not) against the nodes."""
    warnings: list[str] = []
    nodes = _nodes(inventory)
    roster = _roster(inventory, list(nodes), warnings)
    warm_ratios = _place_warm(roster, nodes)
    models = [_plan_model(spec, nodes, warm_ratios) for spec in roster]
    for m in models:
        warnings.extend(m.warnings)
    capacities = []
    for node in nodes.values():
        free = node.free_for(None)
        capacities.append(NodeCapacity(
            name=node.name, pool_gib=node.pool, pool_source=node.pool_source,  # type: ignore[arg-type]
            headroom_gib=round(node.headroom, 3), always_warm=list(node.resident),
            always_warm_gib=round(node.warm_total, 3), free_gib=round(free, 3),
            always_warm_fits=free >= -_EPS, bandwidth_peak_gbps=node.bandwidth,
            bandwidth_measured_gbps=round(node.bandwidth * MEASURED_FRACTION, 1)))
        if free < -_EPS:
            warnings.append(
                f"{node.name}: the always-warm models ({', '.join(node.resident)}) need "
                f"{fmt_gib(node.warm_total)} GiB together, more than the "
                f"{fmt_gib(node.pool - node.headroom)} GiB its pool leaves after the headroom")
    refused = [m.name for m in models if m.enabled and not m.fits]
    rules = assumptions()
    if inventory.simulated:
        rules.append("simulated hardware: pools and bandwidths are the inventory's recorded "
                     "profile, not this machine's")
    return ClusterPlan(inventory=str(inventory.path), cluster=inventory.cluster_name,
                       fits=not refused, refused=refused, nodes=capacities, models=models,
                       assumptions=rules, warnings=warnings)


def refusal(result: ClusterPlan) -> PlanDoesNotFit | None:
    """The error for a plan in which an enabled model does not fit, else None."""
    if result.fits:
        return None
    lines = [m.verdict for m in result.models if m.enabled and not m.fits]
    return PlanDoesNotFit(
        f"{len(lines)} enabled model(s) do not fit: {', '.join(result.refused)}",
        hint=FIX_HINT, details=lines)


def assert_plan_fits(inventory: Inventory) -> ClusterPlan:
    """The plan, or PlanDoesNotFit (one detail line per refused enabled model).
    `sovereign provision` calls it before it deploys models."""
    result = plan(inventory)
    error = refusal(result)
    if error is not None:
        raise error
    return result
