"""`sovereign hw check|checks|collect` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import unit_helpers as h
from typer.testing import CliRunner

from sovereign.checks import REGISTRY
from sovereign.cli.main import app
from sovereign.engine.phases import PHASES
from sovereign.hw.collector import SOURCES

FACT_KEYS = {"cpu.model", "memory.total_bytes", "memory.gtt_bytes", "kernel.cmdline",
             "gpu.gfx_targets", "rocm.kfd_loaded", "pci.devices", "iommu.groups",
             "rdma.devices"}


def hw_check(runner: CliRunner, bundle: Path, *args: str):
    return runner.invoke(app, ["hw", "check", "--bundle", str(bundle), *args])


@pytest.fixture
def good(make_bundle: Callable[..., Path]) -> Path:
    return make_bundle(h.good_files(), name="mimical-1")


@pytest.fixture
def low_memory(make_bundle: Callable[..., Path]) -> Path:
    return make_bundle(h.good_files(gib_visible=62), name="mimical-1")


@pytest.fixture
def wrong_gpu(make_bundle: Callable[..., Path]) -> Path:
    """Exactly one failure: ROCM-GFX1151."""
    files = {**h.good_files(), "rocminfo.txt": h.rocminfo("gfx1100", "Radeon RX 7900 XTX")}
    return make_bundle(files, name="mimical-1")


def test_all_good_exits_0(runner: CliRunner, good: Path) -> None:
    result = hw_check(runner, good)
    assert result.exit_code == 0, result.output
    assert "mimical-1" in result.stdout
    for check_id in REGISTRY:
        assert check_id in result.stdout
    assert "fail" not in result.stdout


def test_only_skips_exits_0(runner: CliRunner, make_bundle: Callable[..., Path]) -> None:
    manifest = {"host": "mimical-2", "files": {
        name: h.missing(f"{name} not found on the node") for name, *_ in SOURCES}}
    result = hw_check(runner, make_bundle({}, manifest), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["host"] == "mimical-2"
    assert {c["status"] for c in data["checks"]} == {"skip"}
    assert all(value is None for value in data["facts"].values())


def test_a_failed_check_exits_4(runner: CliRunner, wrong_gpu: Path) -> None:
    result = hw_check(runner, wrong_gpu)
    assert result.exit_code == 4, result.output
    assert "ROCM-GFX1151" in result.stdout and "fail" in result.stdout
    assert "gfx1100; want gfx1151" in result.stdout


def test_a_warning_alone_exits_0(runner: CliRunner, make_bundle: Callable[..., Path]) -> None:
    files = {**h.good_files(), "sensors.txt": h.sensors(91.0)}
    result = hw_check(runner, make_bundle(files), "--json")
    assert result.exit_code == 0, result.output
    statuses = {c["id"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert statuses["THERMALS"] == "warn"


@pytest.mark.parametrize(("ignore", "code"), [("all", 0), ("ALL", 0), ("ROCM-GFX1151", 0),
                                              ("rocm-gfx1151,THERMALS", 0), ("THERMALS", 4)])
def test_ignore(runner: CliRunner, wrong_gpu: Path, ignore: str, code: int) -> None:
    result = hw_check(runner, wrong_gpu, "--ignore", ignore)
    assert result.exit_code == code, result.output
    if code == 0:
        assert "fail (ignored)" in result.stdout


def test_ignore_an_unknown_id(runner: CliRunner, good: Path) -> None:
    result = hw_check(runner, good, "--ignore", "MEM-TOTAL,NOPE")
    assert result.exit_code == 1
    assert "error: unknown check id(s): NOPE" in h.plain(result.stderr)


@pytest.mark.parametrize("layout", ["missing", "empty", "corrupt-json", "invalid-manifest"])
def test_unreadable_bundle_exits_9(runner: CliRunner, tmp_path: Path, layout: str) -> None:
    path = tmp_path / "bundle"
    if layout != "missing":
        path.mkdir()
    if layout == "corrupt-json":
        (path / "manifest.json").write_text('{"host": "mimical-1", "files": {')
        (path / "lscpu.txt").write_text(h.lscpu())
    if layout == "invalid-manifest":
        (path / "manifest.json").write_text(json.dumps({"files": {"lscpu.txt": []}}))
    result = hw_check(runner, path)
    assert result.exit_code == 9, result.output
    err = h.plain(result.stderr)
    assert f"error: {path}" in err
    assert "hint:" in err
    assert "Traceback" not in result.output


def test_json_shape(runner: CliRunner, good: Path) -> None:
    result = hw_check(runner, good, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"host", "facts", "checks"}
    assert data["host"] == "mimical-1"
    assert set(data["facts"]) == FACT_KEYS
    facts = data["facts"]
    assert facts["cpu.model"] == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
    assert facts["memory.total_bytes"] == int(125.1 * 1024 * 1024) * 1024
    assert facts["memory.gtt_bytes"] == 133143986176
    assert facts["kernel.cmdline"]["ttm.pages_limit"] == str(h.PAGES_124)
    assert facts["kernel.cmdline"]["ro"] is None
    assert facts["gpu.gfx_targets"] == ["gfx1151"]
    assert facts["rocm.kfd_loaded"] is True
    assert {"slot": "c5:00.0", "vendor_id": "1002", "device_id": "1586",
            "driver": "amdgpu"} in facts["pci.devices"]
    assert facts["iommu.groups"]["17"] == ["0000:c3:00.0"]
    assert facts["rdma.devices"] == [{"name": "rdmaP23800p0s2", "port": 1,
                                      "state": "PORT_ACTIVE", "link_layer": "Ethernet",
                                      "mtu": 4096}]
    assert [c["id"] for c in data["checks"]] == list(REGISTRY)
    for c in data["checks"]:
        assert set(c) == {"id", "status", "message", "hint", "ignored", "simulated"}
    by_status = {c["id"]: c["status"] for c in data["checks"]}
    # Production defaults with no inventory: no vfio ids, bench floor or model placement.
    # Nor the database (production's defaults do not say this node runs it).
    not_judged = {"VFIO-BOUND", "BENCH-TOKENS", "ROCE-V2-GID", "MODEL-SERVERS", "RPC-SPLIT",
                  "PG-UP", "PG-TLS", "PG-HBA"}
    assert {i for i, st in by_status.items() if st != "pass"} == not_judged
    assert {by_status[i] for i in not_judged} == {"skip"}


def test_json_of_a_failure(runner: CliRunner, low_memory: Path) -> None:
    result = hw_check(runner, low_memory, "--json")
    assert result.exit_code == 4
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    mem = checks["MEM-TOTAL"]
    assert mem["status"] == "fail"
    assert mem["message"].startswith("62.0 GiB visible of 128 GiB installed")
    assert "UMA frame buffer" in mem["hint"]
    # A 124 GiB pool no longer fits in what the OS sees.
    assert checks["TTM-PAGES-LIMIT"]["status"] == "fail"
    assert "exceeds physical RAM (62 GiB)" in checks["TTM-PAGES-LIMIT"]["message"]


@pytest.mark.parametrize("number", [1, 2])
def test_phase_restricts_to_its_checks(runner: CliRunner, good: Path, number: int) -> None:
    result = hw_check(runner, good, "--phase", str(number), "--json")
    assert result.exit_code == 0, result.output
    p = PHASES[number]
    assert [c["id"] for c in json.loads(result.stdout)["checks"]] == list(
        dict.fromkeys(p.preflight + p.verify))


def test_phase_2_does_not_fail_on_a_phase_1_only_check(runner: CliRunner,
                                                       make_bundle: Callable[..., Path]) -> None:
    bundle = make_bundle({**h.good_files(), "sensors.txt": h.sensors(105.0)})
    assert hw_check(runner, bundle).exit_code == 4  # THERMALS is phase 1's
    assert hw_check(runner, bundle, "--phase", "2").exit_code == 0


def test_phase_that_does_not_exist(runner: CliRunner, good: Path) -> None:
    result = hw_check(runner, good, "--phase", "9")
    assert result.exit_code == 1
    assert "there is no phase 9" in h.plain(result.stderr)


def lab_with_a_small_pool(lab_copy: Path) -> Path:
    h.edit_yaml(lab_copy / "host_vars/mimical-1.yml",
                lambda d: d.update(kernel_params_gpu_pool_gib=96))
    return lab_copy


def ttm_status(result) -> str:
    assert "Traceback" not in result.output, result.output
    checks = json.loads(result.stdout)["checks"]
    return next(c for c in checks if c["id"] == "TTM-PAGES-LIMIT")["status"]


def test_inventory_host_expectations(runner: CliRunner, lab_copy: Path, good: Path) -> None:
    lab = lab_with_a_small_pool(lab_copy)
    one = hw_check(runner, good, "-i", str(lab), "--host", "mimical-1", "--json")
    assert one.exit_code == 4, one.output
    assert ttm_status(one) == "fail"
    ttm = next(c for c in json.loads(one.stdout)["checks"] if c["id"] == "TTM-PAGES-LIMIT")
    assert ttm["message"] == f"ttm.pages_limit={h.PAGES_124} (want {96 * 262144})"
    two = hw_check(runner, good, "-i", str(lab), "--host", "mimical-2", "--json")
    assert two.exit_code == 0, two.output
    assert ttm_status(two) == "pass"


def test_inventory_host_defaults_to_the_bundles_host(runner: CliRunner, lab_copy: Path,
                                                     good: Path) -> None:
    lab = lab_with_a_small_pool(lab_copy)
    result = hw_check(runner, good, "-i", str(lab), "--json")  # the bundle is mimical-1's
    assert result.exit_code == 4
    assert ttm_status(result) == "fail"


def test_inventory_unknown_host(runner: CliRunner, good: Path) -> None:
    result = hw_check(runner, good, "-i", str(h.LAB), "--host", "mimical-7")
    assert result.exit_code == 1
    err = h.plain(result.stderr)
    assert "'mimical-7' is not a host of" in err and "hint: pass --host NAME" in err


def test_inventory_invalid(runner: CliRunner, good: Path, tmp_path: Path) -> None:
    result = hw_check(runner, good, "-i", str(tmp_path / "nowhere"))
    assert result.exit_code == 3


def test_checks_lists_every_id(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hw", "checks", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == list(REGISTRY)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id["MEM-TOTAL"]) == {"id", "title", "preflight", "verify"}
    assert (by_id["MEM-TOTAL"]["preflight"], by_id["MEM-TOTAL"]["verify"]) == ([2], [1])
    assert (by_id["OS-SUPPORTED"]["preflight"], by_id["OS-SUPPORTED"]["verify"]) == ([1, 2, 4, 6, 7], [])
    assert (by_id["RPC-SPLIT"]["preflight"], by_id["RPC-SPLIT"]["verify"]) == ([], [4])
    assert (by_id["ROCM-KFD"]["preflight"], by_id["ROCM-KFD"]["verify"]) == ([], [2])
    assert by_id["GTT-SIZE"]["title"] == REGISTRY["GTT-SIZE"].title


def test_checks_table(runner: CliRunner) -> None:
    result = runner.invoke(app, ["hw", "checks"])
    assert result.exit_code == 0
    for check_id in REGISTRY:
        assert check_id in result.stdout


def test_collect_local(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "local"
    result = runner.invoke(app, ["hw", "collect", "--local", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "sources collected" in result.stdout
    assert f"of {len(SOURCES)} sources" in result.stdout
    assert (out / "manifest.json").is_file()
    # The bundle it wrote is one `hw check` reads (9 would be unreadable): it judges
    # this machine, and exits 4 exactly when one of the checks failed.
    check = hw_check(runner, out, "--json")
    report = json.loads(check.stdout)
    assert report["host"] == json.loads((out / "manifest.json").read_text())["host"]
    assert {c["id"] for c in report["checks"]} == set(REGISTRY)
    failed = [c["id"] for c in report["checks"] if c["status"] == "fail"]
    assert check.exit_code == (4 if failed else 0), (failed, check.output)


@pytest.mark.parametrize("args", [[], ["--local", "--host", "mimical-1"]])
def test_collect_needs_exactly_one_target(runner: CliRunner, tmp_path: Path,
                                          args: list[str]) -> None:
    result = runner.invoke(app, ["hw", "collect", "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2  # wrong usage (docs/cli.md)
    assert "give exactly one of --local or --host NAME" in h.plain(result.stderr)


def test_collect_from_an_unknown_host(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["hw", "collect", "--out", str(tmp_path / "b"),
                                 "--host", "mimical-7"])
    assert result.exit_code == 1
    assert "'mimical-7' is not a host of" in h.plain(result.stderr)
