"""`sovereign bench`: selection of what to bench, the roofline beside the
measurement, the ledger's benchmarks table, the exit code on a slow model."""

from __future__ import annotations

import pytest

from sovereign.engine.bench import BenchReport, judge, raise_if_below, record, select
from sovereign.engine.ledger import Ledger
from sovereign.errors import ChecksFailed, SovereignError
from sovereign.inventory import load_inventory
from sovereign.paths import project_root

LAB = project_root() / "inventory" / "lab"
CAPTURE = (project_root() / "tests" / "hw" / "fixtures" / "llama-bench"
           / "sovereign-lab-smollm2-cpu.txt").read_text()  # tg16: 101.10 ± 1.49 t/s
MEMBW = {"copy_gbps": 41.39, "workers": 2}


def test_select_runs_only_where_a_model_is_served_alone():
    inv = load_inventory(LAB)
    hosts, skipped = select(inv, inv.nodes(), None)
    # SmolLM2 is on mimical-2 alone; Gemma is split over both (not benchable).
    assert hosts == ["mimical-2"]
    assert any(s.startswith("gemma-3-270m: a layer split") for s in skipped)
    assert select(inv, ["mimical-1"], "smollm2-135m") == ([], [])
    with pytest.raises(SovereignError, match="no model 'nope'"):
        select(inv, inv.nodes(), "nope")


def test_judge_sets_the_measurement_beside_the_roofline():
    inv = load_inventory(LAB)
    [r] = judge(inv, "mimical-2", CAPTURE, MEMBW)
    assert (r.model, r.gen_tps, r.prompt_tps, r.gen_stddev) == ("smollm2-135m", 101.1, 255.2, 1.49)
    assert r.bandwidth_source == "measured (memcpy)" and r.bandwidth_gbps == 41.39
    # Q4_1 is 5 bits per weight: 0.135e9 x 5 / 8 bytes per token.
    assert r.roofline_tps == pytest.approx(41.39e9 / (0.135e9 * 5 / 8), rel=0.01)
    assert r.ratio == pytest.approx(101.1 / r.roofline_tps, abs=0.001)
    assert not r.below_min and r.min_tps is None
    # Without a measurement, the inventory's bandwidth is the roofline's.
    [inv_r] = judge(inv, "mimical-2", CAPTURE, None)
    assert inv_r.bandwidth_source == "inventory"


def test_below_min_tps_exits_with_checks_failed(tmp_path):
    inv = load_inventory(LAB)
    [r] = judge(inv, "mimical-2", CAPTURE, MEMBW)
    slow = r.model_copy(update={"min_tps": 500.0, "below_min": True})
    report = BenchReport(run_id="x", run_dir=str(tmp_path), results=[slow], skipped=[])
    with pytest.raises(ChecksFailed, match=r"mimical-2/smollm2-135m 101.1 < 500 tok/s") as info:
        raise_if_below(report)
    assert info.value.exit_code == 4
    raise_if_below(report.model_copy(update={"results": [r]}))


def test_results_are_kept_in_the_ledger(tmp_path):
    inv = load_inventory(LAB)
    book = Ledger(tmp_path / "ledger.sqlite")
    record(book, "run-1", inv.cluster_name, judge(inv, "mimical-2", CAPTURE, MEMBW))
    [row] = book.benchmarks(inv.cluster_name)
    assert (row["run_id"], row["host"], row["model"], row["gen_tps"]) == (
        "run-1", "mimical-2", "smollm2-135m", 101.1)
    assert row["bandwidth_source"] == "measured (memcpy)" and row["roofline_tps"] > row["gen_tps"]
    # Reopening migrates nothing away.
    assert Ledger(tmp_path / "ledger.sqlite").benchmarks(inv.cluster_name) == [row]
