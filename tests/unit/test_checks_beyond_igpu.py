"""Checks beyond the iGPU (ROCm version, VFIO, NPU, benchmark floor, the RoCE
fabric, the DPU mode), judged on real captures where one exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign.checks import Expectations, Status, run_checks
from sovereign.hw.bundle import Bundle
from sovereign.hw.facts import Facts
from sovereign.hw.parsers.llama_bench import parse as parse_llama_bench

FIXTURES = Path(__file__).resolve().parents[1] / "hw" / "fixtures"


def real(source: str, name: str) -> str:
    return (FIXTURES / source / name).read_text()


def judge(make_bundle, files: dict[str, str], check_id: str, **expect) -> object:
    facts = Facts(Bundle.load(make_bundle(files)))
    return run_checks(facts, Expectations(**expect), [check_id])[0]


IBV_ROCE = real("ibv_devinfo", "jithinjosepkl-azhpcimages44-ibv-devinfo-roce.txt")
SHOW_GIDS = real("show_gids", "hurray0-cx4-show-gids-spaces.txt")
MLX_DPU = real("mlxconfig", "synthetic-bf2-dpu-mode-q.txt")
XRT = real("xrt-smi-examine", "elijahsgh-mss1max-xrt-smi-examine-npu5.txt")
ETHTOOL_1G = real("ethtool", "dkluffy-dklog33-ethtool-eth0-1000-tabs.txt")
BENCH = real("llama-bench", "kyuz0-rocm723-glm47flash-q8.txt")


def test_rdma_link_active_on_a_real_roce_port(make_bundle):
    r = judge(make_bundle, {"ibv_devinfo.txt": IBV_ROCE}, "RDMA-LINK-ACTIVE")
    assert r.status is Status.PASS and "rdmaP23800p0s2/1" in r.message


def test_rdma_link_down_fails(make_bundle):
    down = IBV_ROCE.replace("PORT_ACTIVE (4)", "PORT_DOWN (1)")
    r = judge(make_bundle, {"ibv_devinfo.txt": down}, "RDMA-LINK-ACTIVE")
    assert r.status is Status.FAIL and "DAC cable" in r.hint


def test_rdma_mtu_1024_with_a_jumbo_fabric_warns(make_bundle):
    # The real capture runs RoCE at active_mtu 1024: the netdev MTU was left at 1500.
    r = judge(make_bundle, {"ibv_devinfo.txt": IBV_ROCE}, "RDMA-MTU", fabric_mtu=9000)
    assert r.status is Status.WARN and "active_mtu 1024" in r.message and "MTU 9000" in r.hint
    ok = IBV_ROCE.replace("1024 (3)", "4096 (5)")
    assert judge(make_bundle, {"ibv_devinfo.txt": ok}, "RDMA-MTU").status is Status.PASS


def test_roce_v2_gid_without_ipv4_fails(make_bundle):
    r = judge(make_bundle, {"show_gids.txt": SHOW_GIDS}, "ROCE-V2-GID", fabric_address="10.10.10.1")
    assert r.status is Status.FAIL and "GGML_RDMA_GID" in r.hint


def test_roce_v2_gid_for_the_fabric_address_passes(make_bundle):
    gids = SHOW_GIDS.replace(
        "mlx5_0  1       1       fe80:0000:0000:0000:268a:07ff:feb1:bc04                 v2",
        "mlx5_0  1       3       0000:0000:0000:0000:0000:ffff:0a0a:0a01 10.10.10.1      v2")
    r = judge(make_bundle, {"show_gids.txt": gids}, "ROCE-V2-GID", fabric_address="10.10.10.1")
    assert r.status is Status.PASS and "10.10.10.1" in r.message
    other = judge(make_bundle, {"show_gids.txt": gids}, "ROCE-V2-GID", fabric_address="10.10.10.2")
    assert other.status is Status.WARN


def test_link_slower_than_claimed_warns_with_the_measured_speed(make_bundle):
    r = judge(make_bundle, {"ethtool.txt": ETHTOOL_1G}, "LINK-SPEED", claimed_speed_gbps=100)
    assert r.status is Status.WARN and "1 Gb/s measured" in r.message
    assert judge(make_bundle, {"ethtool.txt": ETHTOOL_1G}, "LINK-SPEED",
                 claimed_speed_gbps=1).status is Status.PASS


def test_dpu_mode(make_bundle):
    assert judge(make_bundle, {"mlxconfig.txt": MLX_DPU}, "DPU-MODE").status is Status.PASS
    r = judge(make_bundle, {"mlxconfig.txt": MLX_DPU}, "DPU-MODE", dpu_mode="nic")
    assert r.status is Status.FAIL and "dpu mode" in r.message
    assert judge(make_bundle, {"mlxconfig.txt": MLX_DPU}, "DPU-MODE",
                 dpu_mode=None).status is Status.SKIP


def test_npu_present_from_real_xrt_smi(make_bundle):
    r = judge(make_bundle, {"xrt-smi-examine.txt": XRT}, "NPU-PRESENT")
    assert r.status is Status.PASS and "0000:be:00.1" in r.message


def test_npu_absent_is_a_warning_not_a_failure(make_bundle):
    r = judge(make_bundle, {"lsmod.txt": "Module                  Size  Used by\n"}, "NPU-PRESENT")
    assert r.status is Status.WARN and "amdxdna" in r.hint


LSPCI_EGPU = (
    "c5:00.0 Display controller [0380]: Advanced Micro Devices, Inc. [AMD/ATI] Strix Halo "
    "[1002:1586] (rev c1)\n\tKernel driver in use: amdgpu\n"
    "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation Device [10de:2d04] (rev a1)\n"
    "\tKernel driver in use: {driver}\n\tKernel modules: nouveau, nvidia\n"
)


@pytest.mark.parametrize(("driver", "status"), [("vfio-pci", Status.PASS), ("nouveau", Status.FAIL)])
def test_vfio_bound(make_bundle, driver, status):
    files = {"lspci-nnk.txt": LSPCI_EGPU.format(driver=driver)}
    r = judge(make_bundle, files, "VFIO-BOUND", vfio_pci_ids=["10de:2d04"])
    assert r.status is status
    if status is Status.FAIL:
        assert "uses nouveau" in r.message and "vfio-pci.ids=" in r.hint


def test_vfio_without_passthrough_devices_skips(make_bundle):
    r = judge(make_bundle, {"lspci-nnk.txt": LSPCI_EGPU.format(driver="nouveau")}, "VFIO-BOUND")
    assert r.status is Status.SKIP


def test_rocm_older_than_7_2_on_gfx1151_fails(make_bundle):
    smi = real("amd-smi", "rocm5562-amd-smi-ubuntu2510.txt")
    facts = Facts(Bundle.load(make_bundle({"amd-smi.txt": smi})))
    measured = facts.get("amd-smi.txt").rocm_version
    assert measured, "the real capture names its ROCm version"
    r = run_checks(facts, Expectations(), ["ROCM-VERSION"])[0]
    expected = Status.FAIL if tuple(int(x) for x in measured.split(".")[:2]) < (7, 2) else Status.PASS
    assert r.status is expected and measured in r.message
    old = smi.replace(measured, "6.4.4")
    r = judge(make_bundle, {"amd-smi.txt": old}, "ROCM-VERSION")
    assert r.status is Status.FAIL and "hipMalloc" in r.hint
    assert judge(make_bundle, {"amd-smi.txt": old}, "ROCM-VERSION",
                 gfx_target="gfx1100").status is Status.PASS


def test_bench_tokens_against_the_floor(make_bundle):
    facts = Facts(Bundle.load(make_bundle({"llama-bench.txt": BENCH})))
    best = max(r.tokens_per_s for r in facts.get("llama-bench.txt").rows if r.test.startswith("tg"))
    passes = run_checks(facts, Expectations(bench_min_tps=best - 1), ["BENCH-TOKENS"])[0]
    fails = run_checks(facts, Expectations(bench_min_tps=best + 1), ["BENCH-TOKENS"])[0]
    unset = run_checks(facts, Expectations(), ["BENCH-TOKENS"])[0]
    assert (passes.status, fails.status, unset.status) == (Status.PASS, Status.FAIL, Status.SKIP)


def _labelled(tables: dict[str, str]) -> str:
    """The file `sovereign bench` writes: one llama-bench table per model."""
    return "".join(f"# sovereign-model: {name}\n{table}\n" for name, table in tables.items())


def test_bench_tokens_judges_each_model_against_its_own_floor(make_bundle):
    text = _labelled({"fast-model": BENCH, "slow-model": BENCH})
    rows = parse_llama_bench(text).rows
    assert {r.label for r in rows} == {"fast-model", "slow-model"}
    best = max(r.tokens_per_s for r in rows if r.test.startswith("tg"))
    facts = Facts(Bundle.load(make_bundle({"llama-bench.txt": text})))

    def judged(floors: dict[str, float]) -> object:
        return run_checks(facts, Expectations(model_min_tps=floors), ["BENCH-TOKENS"])[0]

    ok = judged({"fast-model": best - 1, "slow-model": best - 1})
    assert ok.status is Status.PASS and "fast-model" in ok.message and "slow-model" in ok.message
    bad = judged({"fast-model": best - 1, "slow-model": best + 1})
    assert bad.status is Status.FAIL and "slow-model" in bad.message and "fast-model" not in bad.message
    assert judged({"other": 1.0}).status is Status.SKIP
