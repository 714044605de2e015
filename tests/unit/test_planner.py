"""The capacity planner: the arithmetic against hand-computed figures, the
production and lab plans, and crafted inventories for each way a plan fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from unit_helpers import GIB, PRODUCTION, edit_yaml

from sovereign.errors import ExitCode, InventoryError, PlanDoesNotFit
from sovereign.inventory import load_inventory
from sovereign.inventory.models import ModelSpec
from sovereign.planner import ClusterPlan, ModelPlan, assert_plan_fits, llama_server_split, plan
from sovereign.planner.capacity import (
    MEASURED_FRACTION,
    bytes_per_token,
    decode_tps,
    headroom_gib,
    kv_bytes_per_token,
    kv_cache_gib,
    layers_per_node,
    split_ratios,
    tensor_split_arg,
)
from sovereign.planner.quant import bits_per_weight

POOL_FREE = 124 - 6.2  # a 124 GiB pool less its 5 % headroom


def spec(**fields: Any) -> ModelSpec:
    base: dict[str, Any] = {"name": "m", "quantization": "Q4_K_M", "params_total_b": 8,
                            "params_active_b": 8, "size_gib": 4.5, "context": 4096,
                            "placement": ["mimical-1"]}
    return ModelSpec.model_validate({**base, **fields})


def model(result: ClusterPlan, name: str) -> ModelPlan:
    return next(m for m in result.models if m.name == name)


def set_models(lab: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    edit_yaml(lab / "group_vars" / "all.yml", lambda d: change(d["sovereign_models"]))


def add_model(lab: Path, **fields: Any) -> None:
    entry: dict[str, Any] = {"name": "big", "quantization": "Q4_K_M", "params_total_b": 70,
                             "params_active_b": 70, "size_gib": 40, "context": 8192,
                             "placement": ["mimical-1"], "layers": 80, "kv_heads": 8,
                             "head_dim": 128}
    entry.update(fields)
    set_models(lab, lambda models: models.append(entry))


# -- the arithmetic ------------------------------------------------------------------------

def test_roofline_of_a_moe_at_q4_k_m_on_peak_bandwidth() -> None:
    # 3.8B active at 4.85 bits: 256e9 / (3.8e9 * 4.85 / 8) = 111.1 tokens/s.
    per_token = bytes_per_token(3.8, 4.85)
    assert per_token == pytest.approx(2.30375e9)
    assert decode_tps(per_token, [(1.0, 256)]) == pytest.approx(111.12, abs=0.01)
    assert decode_tps(per_token, [(1.0, 215)]) == pytest.approx(93.33, abs=0.01)


def test_layer_split_roofline_adds_each_nodes_time() -> None:
    # 10 GB per token, half read at 200 GB/s and half at 100 GB/s:
    # 0.025 s + 0.05 s = 0.075 s per token.
    assert decode_tps(10e9, [(0.5, 200), (0.5, 100)]) == pytest.approx(1 / 0.075)
    # Two equal nodes: the split neither helps nor hurts the bound.
    assert decode_tps(10e9, [(0.55, 256), (0.45, 256)]) == pytest.approx(25.6)


def test_kv_cache_from_the_architecture() -> None:
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 x 2 (K, V) x 2 bytes = 23040 bytes per token.
    smol = spec(layers=30, kv_heads=3, head_dim=64, context=2048)
    assert kv_bytes_per_token(smol) == (23040, "architecture")
    assert kv_cache_gib(smol) * GIB == pytest.approx(23040 * 2048)
    q8 = spec(layers=30, kv_heads=3, head_dim=64, kv_cache_type="q8_0")
    assert kv_bytes_per_token(q8)[0] == pytest.approx(30 * 3 * 64 * 2 * 34 / 32)
    q4 = spec(layers=30, kv_heads=3, head_dim=64, kv_cache_type="q4_0")
    assert kv_bytes_per_token(q4)[0] == pytest.approx(30 * 3 * 64 * 2 * 18 / 32)


def test_kv_bytes_per_token_is_given_at_f16_and_scaled_by_the_cache_type() -> None:
    assert kv_bytes_per_token(spec(kv_bytes_per_token=215040)) == (215040, "kv_bytes_per_token")
    assert kv_bytes_per_token(spec(kv_bytes_per_token=215040, kv_cache_type="q8_0"))[0] == \
        pytest.approx(215040 * 34 / 64)
    assert kv_bytes_per_token(spec()) == (None, "unknown")
    assert kv_cache_gib(spec()) == 0


@pytest.mark.parametrize("fields, problem", [
    ({"kv_heads": 8, "layers": 32}, "kv_heads and head_dim go together"),
    ({"kv_heads": 8, "head_dim": 128}, "kv_heads and head_dim need layers"),
    ({"kv_heads": 8, "head_dim": 128, "layers": 32, "kv_bytes_per_token": 1000}, "not both"),
    ({"kv_cache_type": "q5_1"}, "kv_cache_type"),
])
def test_kv_fields_are_validated(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        spec(**fields)


def test_headroom_is_five_percent_with_a_one_gib_floor() -> None:
    assert headroom_gib(124) == pytest.approx(6.2)
    assert headroom_gib(10) == 1.0


@pytest.mark.parametrize("quant, bits", [
    ("Q4_K_M", 4.85), ("q4_k_m", 4.85), ("Q4_0", 4.5), ("Q4_1", 5.0), ("Q5_K_M", 5.69),
    ("Q6_K", 6.56), ("Q8_0", 8.5), ("F16", 16), ("BF16", 16), ("MXFP4", 4.25), ("FP8", 8),
])
def test_bits_per_weight_table(quant: str, bits: float) -> None:
    assert bits_per_weight(spec(quantization=quant)) == (bits, "table")


def test_unknown_quantization_is_estimated_from_the_file_size() -> None:
    # 10 GiB for 20B parameters: 10 * 2^30 * 8 / 20e9 = 4.295 bits.
    bits, source = bits_per_weight(spec(quantization="EXL3_4bpw", size_gib=10, params_total_b=20,
                                        params_active_b=20))
    assert source == "estimated"
    assert bits == pytest.approx(10 * GIB * 8 / 20e9)


def test_split_ratios_follow_free_memory() -> None:
    ratios = split_ratios([117.8, 95.6])
    assert sum(ratios) == pytest.approx(1)
    assert ratios[0] == pytest.approx(117.8 / 213.4)
    assert tensor_split_arg(ratios) == "0.55,0.45"
    assert split_ratios([50, -10]) == [1.0, 0.0]
    assert split_ratios([0, 0]) == [0.5, 0.5]
    assert tensor_split_arg([1 / 3, 1 / 3, 1 / 3]) == "0.33,0.33,0.34"
    assert layers_per_node(43, ratios) == [24, 19]
    assert sum(layers_per_node(61, [0.2, 0.3, 0.5])) == 61


# -- production ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def production() -> ClusterPlan:
    return plan(load_inventory(PRODUCTION))


def test_production_nodes(production: ClusterPlan) -> None:
    one, two = production.nodes
    assert (one.name, one.pool_gib, one.pool_source) == ("mimical-1", 124, "kernel_params_gpu_pool_gib")
    assert one.headroom_gib == pytest.approx(6.2)
    assert one.always_warm == [] and one.free_gib == pytest.approx(POOL_FREE)
    assert two.always_warm == ["gemma-4-26b-moe"]
    # 15.6 GiB of weights + 215040 bytes x 32768 tokens of KV.
    warm = 15.6 + 215040 * 32768 / GIB
    assert two.always_warm_gib == pytest.approx(warm, abs=1e-3)
    assert two.free_gib == pytest.approx(POOL_FREE - warm, abs=1e-3)
    assert (one.bandwidth_peak_gbps, one.bandwidth_measured_gbps) == (256, 215)


def test_production_fits_because_v4_pro_is_disabled(production: ClusterPlan) -> None:
    assert production.fits and production.refused == []
    assert assert_plan_fits(load_inventory(PRODUCTION)).fits


def test_v4_pro_is_refused_with_numbers(production: ClusterPlan) -> None:
    pro = model(production, "deepseek-v4-pro")
    assert not pro.fits and not pro.enabled
    assert pro.mode == "layer split"
    assert pro.verdict == (
        "deepseek-v4-pro: needs 800.0 GiB of weights + 1.20 GiB KV @ 131072 on 2 nodes "
        "(layer split) with 117.8 + 95.6 = 213.4 GiB free beside the always-warm "
        "gemma-4-26b-moe: refused (disabled: evaluated, never deployed)")
    assert any(not s.fits for s in pro.shares)


def test_v4_flash_is_a_layer_split_over_both_nodes(production: ClusterPlan) -> None:
    flash = model(production, "deepseek-v4-flash")
    assert flash.fits and flash.mode == "layer split"
    assert [s.node for s in flash.shares] == ["mimical-1", "mimical-2"]
    assert sum(s.ratio for s in flash.shares) == pytest.approx(1, abs=1e-3)
    assert flash.tensor_split == "0.55,0.45"
    for share in flash.shares:
        assert share.fits and share.need_gib <= share.free_gib
    # It needs both: more than either node has free on its own.
    assert flash.need_gib > max(s.free_gib for s in flash.shares)
    assert flash.need_gib == pytest.approx(163 + 6882 * 131072 / GIB, abs=1e-3)
    assert [s.layers for s in flash.shares] == [24, 19]
    # MXFP4 at 13B active: 256e9 / (13e9 * 4.25 / 8) = 37.07 tokens/s.
    assert flash.roofline.peak_tps == pytest.approx(37.07, abs=0.01)
    assert flash.roofline.measured_tps == pytest.approx(37.07 * MEASURED_FRACTION, abs=0.01)
    assert flash.roofline.claim == "within"


def test_gemma_moe_fits_on_mimical_2(production: ClusterPlan) -> None:
    gemma = model(production, "gemma-4-26b-moe")
    assert gemma.fits and gemma.placement == ["mimical-2"] and gemma.tensor_split is None
    assert gemma.roofline.peak_tps == pytest.approx(111.12, abs=0.01)
    assert gemma.roofline.claim == "within" and gemma.roofline.claimed_over_roofline is None


def test_a_claim_above_the_roofline_is_flagged(production: ClusterPlan) -> None:
    dense = model(production, "gemma-4-31b")
    # 31B dense at 4.85 bits: 256e9 / 18.79e9 = 13.6 tokens/s; the seed claims 25-35.
    assert dense.roofline.peak_tps == pytest.approx(13.62, abs=0.01)
    assert dense.roofline.claim == "above roofline"
    assert dense.roofline.claimed_over_roofline == pytest.approx(35 / 13.62, abs=0.01)
    assert any(w.startswith("gemma-4-31b: claimed 25–35 tok/s is above the roofline")
               for w in production.warnings)


# -- the lab -------------------------------------------------------------------------------

def test_the_lab_models_fit(lab_copy: Path) -> None:
    result = plan(load_inventory(lab_copy))
    assert result.fits
    smol, gemma = result.models
    assert smol.kv_source == "architecture" and gemma.kv_source == "architecture"
    assert smol.kv_gib == pytest.approx(23040 * 2048 / GIB, abs=1e-3)
    # Gemma 3 270M: 18 layers x 1 KV head x 256 x 2 x 2 bytes.
    assert gemma.kv_bytes_per_token == 18 * 256 * 4
    assert gemma.mode == "layer split" and [s.layers for s in gemma.shares] == [9, 9]
    assert result.nodes[1].always_warm == ["smollm2-135m"]
    assert any("simulated hardware" in line for line in result.assumptions)
    assert result.warnings == []


# -- crafted inventories -------------------------------------------------------------------

def test_a_model_too_big_for_one_node_is_refused(lab_copy: Path) -> None:
    add_model(lab_copy, size_gib=130)
    inv = load_inventory(lab_copy)
    result = plan(inv)
    big = model(result, "big")
    kv = 80 * 8 * 128 * 4 * 8192 / GIB  # 2.5 GiB
    assert not big.fits and result.refused == ["big"] and not result.fits
    assert big.verdict == (f"big: needs 130.0 GiB of weights + {kv:.2f} GiB KV @ 8192 on "
                           "mimical-1 with 117.8 GiB free: refused")
    with pytest.raises(PlanDoesNotFit) as caught:
        assert_plan_fits(inv)
    assert caught.value.exit_code == ExitCode.PLAN_DOES_NOT_FIT == 10
    assert caught.value.details == [big.verdict]
    assert "quantization" in (caught.value.hint or "")


def test_a_split_fits_only_thanks_to_the_second_node(lab_copy: Path) -> None:
    add_model(lab_copy, name="alone", size_gib=200)
    add_model(lab_copy, name="split", size_gib=200, placement=["mimical-1", "mimical-2"])
    result = plan(load_inventory(lab_copy))
    assert not model(result, "alone").fits
    split = model(result, "split")
    assert split.fits and split.need_gib > POOL_FREE
    assert all(s.fits and s.need_gib <= s.free_gib for s in split.shares)
    assert sum(s.ratio for s in split.shares) == pytest.approx(1, abs=1e-3)
    # mimical-2 keeps the always-warm SmolLM2, so it takes slightly less.
    assert split.shares[0].ratio > split.shares[1].ratio
    assert split.verdict.startswith("split: fits as a layer split over mimical-1, mimical-2 "
                                    "(--tensor-split 0.50,0.50)")
    assert result.refused == ["alone"]


def test_always_warm_models_that_overflow_a_node_together(lab_copy: Path) -> None:
    add_model(lab_copy, name="warm-a", size_gib=70, placement=["mimical-2"], always_warm=True)
    add_model(lab_copy, name="warm-b", size_gib=60, placement=["mimical-2"], always_warm=True)
    add_model(lab_copy, name="on-demand", size_gib=10, placement=["mimical-2"])
    result = plan(load_inventory(lab_copy))
    node = result.nodes[1]
    assert node.always_warm == ["smollm2-135m", "warm-a", "warm-b"]
    assert not node.always_warm_fits and node.free_gib < 0
    a, b = model(result, "warm-a"), model(result, "warm-b")
    # Each alone would fit its 117.8 GiB; together they do not.
    assert a.need_gib < POOL_FREE and b.need_gib < POOL_FREE
    assert not a.fits and not b.fits
    assert a.verdict == (
        "warm-a: needs 70.0 GiB of weights + 2.50 GiB KV @ 8192 on mimical-2 with 55.2 GiB free "
        "beside the always-warm smollm2-135m, warm-b: refused; the always-warm models on mimical-2 "
        "need 135.1 GiB together, 117.8 available")
    assert not model(result, "on-demand").fits
    assert set(result.refused) == {"smollm2-135m", "warm-a", "warm-b", "on-demand"}
    assert any(w.startswith("mimical-2: the always-warm models (smollm2-135m, warm-a, warm-b) "
                            "need 135.1 GiB together") for w in result.warnings)


def test_on_demand_models_are_checked_alone(lab_copy: Path) -> None:
    # Two on-demand models of 100 GiB on one node: each fits alone.
    add_model(lab_copy, name="a", size_gib=100)
    add_model(lab_copy, name="b", size_gib=100)
    assert plan(load_inventory(lab_copy)).fits


def test_a_disabled_model_is_evaluated_but_never_blocks(lab_copy: Path) -> None:
    add_model(lab_copy, size_gib=500, enabled=False, always_warm=True)
    result = plan(load_inventory(lab_copy))
    big = model(result, "big")
    assert not big.fits and result.fits and result.refused == []
    assert big.verdict.endswith("refused (disabled: evaluated, never deployed)")
    # Disabled models are never resident.
    assert result.nodes[0].always_warm == []


def test_missing_architecture_warns_and_counts_no_kv(lab_copy: Path) -> None:
    set_models(lab_copy, lambda models: [models[1].pop(k) for k in ("kv_heads", "head_dim")])
    result = plan(load_inventory(lab_copy))
    gemma = model(result, "gemma-3-270m")
    assert gemma.fits and gemma.kv_source == "unknown" and gemma.kv_gib == 0
    assert gemma.kv_bytes_per_token is None
    assert result.warnings == [
        "gemma-3-270m: KV cache unknown (set layers, kv_heads and head_dim, or kv_bytes_per_token, "
        "in sovereign_models); counted as 0 GiB"]


def test_unknown_quantization_is_estimated_and_said(lab_copy: Path) -> None:
    set_models(lab_copy, lambda models: models[0].update(quantization="IQ1_XYZ"))
    result = plan(load_inventory(lab_copy))
    smol = model(result, "smollm2-135m")
    bits = 0.09 * GIB * 8 / 0.135e9
    assert smol.roofline.bits_source == "estimated"
    assert smol.roofline.bits_per_weight == pytest.approx(bits, abs=1e-3)
    assert smol.roofline.peak_tps == pytest.approx(256e9 / (0.135e9 * bits / 8), rel=1e-3)
    assert result.warnings == [f"smollm2-135m: quantization 'IQ1_XYZ' is not in the bits-per-weight "
                               f"table; {bits:.2f} bits estimated from size_gib / params_total_b"]


def test_a_quantized_kv_cache_makes_a_model_fit(lab_copy: Path) -> None:
    # 100 GiB of weights + 20 GiB of f16 KV does not fit 117.8; at q4_0 (5.6 GiB) it does.
    add_model(lab_copy, size_gib=100, kv_bytes_per_token=20 * GIB // 65536, context=65536,
              kv_heads=None, head_dim=None)
    set_models(lab_copy, lambda models: [models[-1].pop(k) for k in ("kv_heads", "head_dim")])
    assert not model(plan(load_inventory(lab_copy)), "big").fits
    set_models(lab_copy, lambda models: models[-1].update(kv_cache_type="q4_0"))
    big = model(plan(load_inventory(lab_copy)), "big")
    assert big.fits and big.kv_gib == pytest.approx(20 * 18 / 64, abs=1e-3)


def test_each_nodes_own_pool_is_used(lab_copy: Path) -> None:
    edit_yaml(lab_copy / "host_vars" / "mimical-2.yml",
              lambda d: d.update(kernel_params_gpu_pool_gib=96))
    result = plan(load_inventory(lab_copy))
    assert [n.pool_gib for n in result.nodes] == [124, 96]
    assert result.nodes[1].headroom_gib == pytest.approx(4.8)
    gemma = model(result, "gemma-3-270m")
    free = [s.free_gib for s in gemma.shares]
    assert [s.ratio for s in gemma.shares] == pytest.approx([f / sum(free) for f in free], abs=1e-4)


def test_an_invalid_kv_shape_is_an_inventory_error(lab_copy: Path) -> None:
    set_models(lab_copy, lambda models: models[0].pop("head_dim"))
    with pytest.raises(InventoryError) as caught:
        load_inventory(lab_copy)
    assert caught.value.exit_code == 3
    assert any("sovereign_models.0" in d and "kv_heads and head_dim go together" in d
               for d in caught.value.details)


def test_llama_server_takes_the_workers_first_and_the_head_last(lab_copy: Path) -> None:
    add_model(lab_copy, name="split", size_gib=200, placement=["mimical-1", "mimical-2"])
    result = plan(load_inventory(lab_copy))
    split = model(result, "split")
    nodes, arg = llama_server_split(split)
    assert nodes == ["mimical-2", "mimical-1"]
    assert [float(x) for x in arg.split(",")] == pytest.approx(
        [split.shares[1].ratio, split.shares[0].ratio], abs=0.01)
    assert llama_server_split(model(result, "smollm2-135m")) is None
