"""`sovereign plan` through typer's CliRunner: tables, JSON, exit codes and hints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner
from unit_helpers import PRODUCTION, edit_yaml, plain

from sovereign.cli.main import app


def add_big_model(lab: Path, **fields: Any) -> None:
    entry = {"name": "big", "quantization": "Q8_0", "params_total_b": 120, "params_active_b": 120,
             "size_gib": 127.5, "context": 4096, "placement": ["mimical-1"], "layers": 88,
             "kv_heads": 8, "head_dim": 128, **fields}
    edit_yaml(lab / "group_vars" / "all.yml", lambda d: d["sovereign_models"].append(entry))


def test_production_plan_exits_0_and_shows_every_model(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "-i", str(PRODUCTION)])
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    for name in ("gemma-4-26b-moe", "gemma-4-31b", "deepseek-v4-flash", "deepseek-v4-pro"):
        assert name in out
    assert "0.55,0.45" in out and "(layer split)" in out
    assert "2.57×)" in out  # claimed above the roofline, in the table
    assert "refused (disabled: evaluated, never deployed)" in out
    assert ("deepseek-v4-pro: needs 800.0 GiB of weights + 1.20 GiB KV @ 131072 on 2 nodes "
            "(layer split) with 117.8 + 95.6 = 213.4 GiB free") in out
    assert "llama.cpp RPC layer split (pipeline, not tensor parallel)" in out
    assert "measured = 84% of it (215 of 256 GB/s" in out
    assert "22.2 GiB (gemma-4-26b-moe)" in out  # mimical-2's always-warm resident
    assert "warning: gemma-4-31b: claimed 25–35 tok/s is above the roofline" in plain(result.stderr)


def test_lab_plan_is_the_default_and_fits(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan"])
    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert "smollm2-135m" in out and "gemma-3-270m" in out
    assert "simulated hardware" in out
    assert result.stderr == ""


def test_an_enabled_model_that_does_not_fit_exits_10(runner: CliRunner, lab_copy: Path) -> None:
    add_big_model(lab_copy)
    result = runner.invoke(app, ["plan", "-i", str(lab_copy)])
    assert result.exit_code == 10, result.output
    err = plain(result.stderr)
    assert "error: 1 enabled model(s) do not fit: big" in err
    assert ("  • big: needs 127.5 GiB of weights + 1.38 GiB KV @ 4096 on mimical-1 with 117.8 GiB "
            "free: refused") in err
    assert "hint: lower its quantization" in err
    assert "place it on more nodes" in err and "shorten its context" in err
    # The tables were printed before the error.
    assert "big" in plain(result.stdout) and "refused" in plain(result.stdout)


def test_a_layer_split_makes_it_fit(runner: CliRunner, lab_copy: Path) -> None:
    add_big_model(lab_copy, placement=["mimical-1", "mimical-2"])
    result = runner.invoke(app, ["plan", "-i", str(lab_copy)])
    assert result.exit_code == 0, result.output


def test_json_shape(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "-i", str(PRODUCTION), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["inventory", "cluster", "fits", "refused", "nodes", "models",
                          "assumptions", "warnings"]
    assert data["fits"] is True and data["refused"] == [] and data["cluster"] == "mimical"
    assert list(data["nodes"][0]) == [
        "name", "pool_gib", "pool_source", "headroom_gib", "always_warm", "always_warm_gib",
        "free_gib", "always_warm_fits", "bandwidth_peak_gbps", "bandwidth_measured_gbps"]
    models = {m["name"]: m for m in data["models"]}
    assert list(models) == ["gemma-4-26b-moe", "gemma-4-31b", "deepseek-v4-flash", "deepseek-v4-pro"]
    flash = models["deepseek-v4-flash"]
    assert flash["mode"] == "layer split" and flash["tensor_split"] == "0.55,0.45"
    assert [s["node"] for s in flash["shares"]] == ["mimical-1", "mimical-2"]
    assert set(flash["shares"][0]) == {"node", "ratio", "layers", "weights_gib", "kv_gib", "need_gib",
                                       "free_gib", "fits"}
    assert set(flash["roofline"]) == {"bits_per_weight", "bits_source", "bytes_per_token", "peak_tps",
                                      "measured_tps", "claimed_tps", "claimed_over_roofline", "claim"}
    assert models["deepseek-v4-pro"]["fits"] is False
    assert models["gemma-4-31b"]["roofline"]["claim"] == "above roofline"
    # Stable: the same inventory gives the same bytes.
    again = runner.invoke(app, ["plan", "-i", str(PRODUCTION), "--json"])
    assert again.stdout == result.stdout


def test_json_of_a_plan_that_does_not_fit(runner: CliRunner, lab_copy: Path) -> None:
    add_big_model(lab_copy)
    result = runner.invoke(app, ["plan", "-i", str(lab_copy), "--json"])
    assert result.exit_code == 10
    data = json.loads(result.stdout)  # stdout stays pure JSON; the error goes to stderr
    assert data["fits"] is False and data["refused"] == ["big"]
    assert "error: 1 enabled model(s) do not fit: big" in plain(result.stderr)


def test_an_invalid_inventory_exits_3(runner: CliRunner, lab_copy: Path) -> None:
    edit_yaml(lab_copy / "group_vars" / "all.yml",
              lambda d: d["sovereign_models"][0].update(kv_cache_type="q5_1"))
    result = runner.invoke(app, ["plan", "-i", str(lab_copy)])
    assert result.exit_code == 3, result.output
    assert "sovereign_models.0.kv_cache_type" in plain(result.stderr)


def test_plan_is_listed_in_the_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert "plan" in plain(result.output)
    result = runner.invoke(app, ["plan", "--help"])
    assert result.exit_code == 0 and "layer split" in plain(result.output)
