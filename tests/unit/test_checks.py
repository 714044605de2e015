"""Every check of the registry on crafted capture bundles: pass, warn (where the
check has one), fail, and skip with the manifest's reason.

The expectations are the production defaults (Expectations()): a Ryzen AI Max+
395 with 128 GiB, a 124 GiB pool (ttm.pages_limit=32505856), iommu=pt, ttm.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import unit_helpers as h

from sovereign.checks import REGISTRY, CheckResult, Expectations, Status, run_checks
from sovereign.checks.registry import CheckSpec, parse_ignore, unknown_ids
from sovereign.hw.bundle import Bundle
from sovereign.hw.facts import Facts

PAGES = h.PAGES_124
PROD = Expectations()


def judge(make_bundle: Callable[..., Path], check_id: str, files: dict[str, str],
          expect: Expectations = PROD, manifest: dict[str, Any] | None = None) -> CheckResult:
    facts = Facts(Bundle.load(make_bundle(files, manifest)))
    [result] = run_checks(facts, expect, [check_id])
    assert result.id == check_id
    return result


class Case:
    """One check on one capture: the status, and text the message/hint must hold."""

    def __init__(self, check_id: str, files: dict[str, str], status: Status,
                 message: str = "", hint: str = "", expect: Expectations = PROD,
                 label: str = ""):
        self.check_id, self.files, self.status = check_id, files, status
        self.message, self.hint, self.expect = message, hint, expect
        self.label = label or status.value

    def __repr__(self) -> str:
        return f"{self.check_id}-{self.label}"


MEM_125 = {"proc-meminfo.txt": h.meminfo(125.1)}
# The head of Gemma 3 270M split over RPC; in the capture the worker's server is 127.0.0.2.
SPLIT = Expectations(served_models=["gemma-3-270m"], split_workers={"gemma-3-270m": ["127.0.0.2"]})
DB = Expectations(database_host=True, database_address="10.213.77.11")
EGPU = Expectations(vfio_pci_ids=["10de:2d04", "10DE:22EB"])
GRUB_OK = {"etc-default-grub.txt": h.grub()}

CASES = [
    # -- phase 1: the box --------------------------------------------------------------
    Case("OS-SUPPORTED", {"os-release.txt": h.OS_UBUNTU}, Status.PASS, "Ubuntu 26.04 LTS (target)"),
    Case("OS-SUPPORTED", {"os-release.txt": h.OS_DEBIAN}, Status.PASS,
         "Debian GNU/Linux 12 (bookworm) (lab and molecule)", label="debian"),
    Case("OS-SUPPORTED", {"os-release.txt": h.OS_FEDORA}, Status.FAIL,
         "Fedora Linux 40 (Workstation Edition) is not supported", "Ubuntu 26.04"),
    Case("CPU-MODEL", {"lscpu.txt": h.lscpu()}, Status.PASS,
         "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"),
    Case("CPU-MODEL", {"lscpu.txt": h.lscpu(model="AMD  Ryzen AI Max+ 395 w/ radeon 8060s")},
         Status.PASS, label="case-and-space-insensitive"),
    Case("CPU-MODEL", {"lscpu.txt": h.lscpu(model="AMD Ryzen 9 7950X 16-Core Processor")},
         Status.FAIL, "found 'AMD Ryzen 9 7950X 16-Core Processor', the inventory expects "
         "'AMD RYZEN AI MAX+ 395 w/ Radeon 8060S'", "ansible_host for ?"),
    Case("CPU-THREADS", {"lscpu.txt": h.lscpu(32)}, Status.PASS, "32 threads"),
    Case("CPU-THREADS", {"lscpu.txt": h.lscpu(16)}, Status.WARN, "16 of 32 threads online",
         "enable SMT"),
    Case("CPU-THREADS", {"lscpu.txt": h.lscpu(16)}, Status.PASS,
         expect=Expectations(cpu_threads=16), label="as-expected"),
    Case("CPU-THREADS", {"lscpu.txt": "Model name:   AMD RYZEN AI MAX+ 395 w/ Radeon 8060S\n"},
         Status.SKIP, "thread count not in the capture", label="model-only"),
    Case("MEM-TOTAL", {"proc-meminfo.txt": h.meminfo(124)}, Status.PASS,
         "124.0 GiB visible of 128 GiB installed (97%)"),
    Case("MEM-TOTAL", {"free.txt": (h.PROFILE / "free.txt").read_text()}, Status.PASS,
         "124.0 GiB visible", label="free-h"),
    Case("MEM-TOTAL", {"proc-meminfo.txt": h.meminfo(100)}, Status.WARN,
         "100.0 GiB visible of 128 GiB installed (78%)", "UMA frame buffer to its minimum"),
    Case("MEM-TOTAL", {"proc-meminfo.txt": h.meminfo(62)}, Status.FAIL,
         "62.0 GiB visible of 128 GiB installed (48%)",
         "set the BIOS UMA frame buffer to its minimum (512 MB): the GPU pool is "
         "ttm.pages_limit, not a BIOS carve-out"),
    Case("NVME-PRESENT", {"nvme-list.txt": h.NVME_ONE}, Status.PASS,
         "1 NVMe drive(s): 512 GB; inventory lists 1"),
    Case("NVME-PRESENT", {"nvme-list.txt": h.NVME_ONE}, Status.FAIL,
         "1 NVMe drive(s): 512 GB; inventory lists 2", "sovereign_hardware.nvme",
         expect=Expectations(nvme_count=2)),
    Case("THERMALS", {"sensors.txt": h.SENSORS_COOL}, Status.PASS, "hottest sensor 30 °C"),
    Case("THERMALS", {"sensors.txt": h.sensors(91.0)}, Status.WARN, "hottest sensor 91 °C",
         "fan curve"),
    Case("THERMALS", {"sensors.txt": h.SENSORS_NONE}, Status.WARN,
         "no temperature sensor readable", "k10temp", label="unreadable"),
    Case("THERMALS", {"sensors.txt": h.sensors(101.5)}, Status.FAIL, "hottest sensor 102 °C"),
    # -- phase 2: the kernel command line -----------------------------------------------
    Case("GRUB-CMDLINE", GRUB_OK, Status.PASS, f"configured: iommu=pt ttm.pages_limit={PAGES}"),
    Case("GRUB-CMDLINE",
         {"etc-default-grub.txt": h.grub(f"iommu=pt ttm.pages_limit={PAGES} amdgpu.gttsize=126976")},
         Status.WARN, "amdgpu.gttsize=126976 is deprecated (the kernel warns); the pool is "
         "ttm.pages_limit", "unset kernel_params_amdgpu_gttsize_mib", label="gttsize"),
    Case("GRUB-CMDLINE", {"etc-default-grub.txt": h.grub(None)}, Status.FAIL,
         f"iommu=None (want iommu=pt); ttm.pages_limit=None (want {PAGES} = 124 GiB)",
         "sovereign provision phase-2", label="not-configured"),
    Case("KERNEL-CMDLINE", {"proc-cmdline.txt": h.cmdline(), **GRUB_OK}, Status.PASS,
         f"running: iommu=pt ttm.pages_limit={PAGES}"),
    Case("KERNEL-CMDLINE", {"proc-cmdline.txt": h.cmdline(""), **GRUB_OK}, Status.WARN,
         f"reboot required: iommu=None (want iommu=pt); ttm.pages_limit=None (want {PAGES}",
         "reboot the node, or set kernel_params_reboot_ok: true", label="reboot-required"),
    Case("KERNEL-CMDLINE", {"proc-cmdline.txt": h.cmdline("")}, Status.FAIL,
         "iommu=None (want iommu=pt)", "run `sovereign provision phase-2`, then reboot",
         label="not-configured"),
    Case("KERNEL-CMDLINE",
         {"proc-cmdline.txt": h.cmdline(f"iommu=pt ttm.pages_limit={PAGES} amdgpu.gttsize=131072"),
          **GRUB_OK},
         Status.WARN, "amdgpu.gttsize=131072 MiB disagrees with pages_limit (126976 MiB)",
         label="gttsize-disagrees"),
    Case("KERNEL-CMDLINE",
         {"proc-cmdline.txt": h.cmdline(f"iommu=pt ttm.pages_limit={PAGES} "
                                        f"amdttm.pages_limit={PAGES}"), **GRUB_OK},
         Status.WARN, "amdttm.pages_limit is set but the driver uses ttm: it is ignored",
         label="other-module"),
    Case("KERNEL-CMDLINE",
         {"proc-cmdline.txt": h.cmdline("iommu=pt ttm.pages_limit=34078720"), **MEM_125},
         Status.FAIL, "ttm.pages_limit=34078720 (130 GiB) exceeds physical RAM (125 GiB)",
         expect=Expectations(gpu_pool_gib=130), label="beyond-ram"),
    Case("KERNEL-CMDLINE", {"proc-cmdline.txt": h.cmdline(f"iommu=pt amdttm.pages_limit={PAGES}")},
         Status.PASS, f"running: iommu=pt amdttm.pages_limit={PAGES}",
         expect=Expectations(ttm_module="amdttm"), label="amdttm"),
    # -- phase 2: the TTM pool -----------------------------------------------------------
    Case("MODPROBE-TTM", {"modprobe-d.txt": h.modprobe()}, Status.PASS,
         f"options ttm pages_limit={PAGES}"),
    Case("MODPROBE-TTM", {"modprobe-d.txt": h.modprobe("options ttm pages_limit=16252928")},
         Status.FAIL, f"options ttm pages_limit=16252928 (want {PAGES})",
         "role kernel_params"),
    Case("MODPROBE-TTM", {"modprobe-d.txt": h.modprobe(f"options amdttm pages_limit={PAGES}")},
         Status.FAIL, f"options ttm pages_limit=None (want {PAGES})", label="other-module"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": h.sys_ttm()}, Status.PASS,
         f"ttm.pages_limit={PAGES} (124 GiB)"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": h.sys_ttm(module="amdttm")}, Status.WARN,
         f"the loaded module is amdttm (pages_limit={PAGES}); ttm.* parameters are ignored",
         "set kernel_params_ttm_module: amdttm"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": h.sys_ttm(module="amdttm")}, Status.PASS,
         f"amdttm.pages_limit={PAGES} (124 GiB)", expect=Expectations(ttm_module="amdttm"),
         label="amdttm-expected"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": h.sys_ttm(34078720), **MEM_125}, Status.FAIL,
         "pages_limit=34078720 (130 GiB) exceeds physical RAM (125 GiB)",
         "lower kernel_params_gpu_pool_gib", expect=Expectations(gpu_pool_gib=130),
         label="beyond-ram"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": h.sys_ttm(16252928)}, Status.FAIL,
         f"ttm.pages_limit=16252928 (want {PAGES})", "reboot after phase 2", label="stale"),
    Case("TTM-PAGES-LIMIT", {"sys-module-ttm.txt": ""}, Status.FAIL,
         "neither ttm nor amdttm is loaded", "dmesg | grep amdgpu", label="not-loaded"),
    Case("GTT-SIZE", {"sys-drm-mem-info.txt": h.drm_mem()}, Status.PASS,
         "GTT 124.0 GiB, configured pool 124 GiB"),
    Case("GTT-SIZE", {"dmesg.txt": h.DMESG_GTT_124}, Status.PASS,
         "GTT 124.0 GiB, configured pool 124 GiB", label="dmesg"),
    Case("GTT-SIZE", {"sys-drm-mem-info.txt": h.drm_mem(62 * h.GIB)}, Status.FAIL,
         "GTT 62.0 GiB, configured pool 124 GiB", "KERNEL-CMDLINE"),
    Case("IOMMU-ENABLED", {"iommu-groups.txt": h.IOMMU_GROUPS}, Status.PASS, "6 IOMMU groups"),
    Case("IOMMU-ENABLED", {"dmesg.txt": h.DMESG_AMDVI}, Status.PASS, "AMD-Vi enabled (dmesg)",
         label="dmesg"),
    Case("IOMMU-ENABLED", {"iommu-groups.txt": ""}, Status.FAIL, "no IOMMU groups",
         "enable IOMMU (AMD-Vi) in the BIOS"),
    # -- ROCm ------------------------------------------------------------------------------
    Case("ROCM-KFD", {"rocminfo.txt": h.rocminfo()}, Status.PASS, "KFD loaded, runtime 1.18"),
    Case("ROCM-KFD", {"rocminfo.txt": h.ROCMINFO_NOT_LOADED}, Status.FAIL,
         "ROCk module is NOT loaded, possibly no GPU devices", "load amdgpu"),
    Case("ROCM-KFD",
         {"rocminfo.txt": "Unable to open /dev/kfd read-write: Operation not permitted\n"},
         Status.FAIL, "Unable to open /dev/kfd read-write: Operation not permitted",
         "add the user to the render and video groups (rocm_users)", label="not-permitted"),
    Case("ROCM-GFX1151", {"rocminfo.txt": h.rocminfo()}, Status.PASS, "agents: gfx1151"),
    Case("ROCM-GFX1151", {"rocminfo.txt": h.rocminfo("gfx1100", "Radeon RX 7900 XTX")},
         Status.FAIL, "gfx1100; want gfx1151", "HSA_OVERRIDE_GFX_VERSION"),
    Case("ROCM-GFX1151", {"rocminfo.txt": h.ROCMINFO_NOT_LOADED}, Status.FAIL,
         "no GPU agent; want gfx1151", label="no-agent"),
    Case("ROCM-VERSION", {"amd-smi.txt": h.AMD_SMI_722}, Status.PASS, "ROCm 7.2.2 (amd-smi)"),
    Case("ROCM-VERSION", {"amd-smi.txt": h.AMD_SMI_702}, Status.FAIL,
         "ROCm 7.0.2 (amd-smi) is older than 7.2 on gfx1151", "earlier series crash in hipMalloc"),
    Case("ROCM-VERSION", {"amd-smi.txt": h.AMD_SMI_702}, Status.PASS, "ROCm 7.0.2 (amd-smi)",
         expect=Expectations(gfx_target="gfx1100"), label="other-gpu"),
    Case("ROCM-VERSION", {"rocm-version.txt": "6.4.3-120\n"}, Status.FAIL,
         "ROCm 6.4.3-120 (/opt/rocm/.info/version) is older than 7.2", label="installed-old"),
    Case("ROCM-VERSION", {"rocm-version.txt": "7.2.2-36\n"}, Status.PASS,
         "ROCm 7.2.2-36 (/opt/rocm/.info/version)", label="installed"),
    # What the inventory asks for is not what the node runs: no version read, no verdict.
    Case("ROCM-VERSION", {"rocminfo.txt": h.rocminfo()}, Status.SKIP,
         "rocm-version.txt is not in the bundle",
         expect=Expectations(rocm_release="6.4.3"), label="inventory-only"),
    # -- devices -----------------------------------------------------------------------------
    Case("VFIO-BOUND", {"lspci-nnk.txt": h.lspci_egpu("vfio-pci")}, Status.PASS,
         "10de:22eb, 10de:2d04 bound to vfio-pci", expect=EGPU),
    Case("VFIO-BOUND", {"lspci-nnk.txt": h.lspci_egpu("nvidia")}, Status.FAIL,
         "10de:2d04 at c3:00.0 uses nvidia", "vfio-pci.ids=", expect=EGPU),
    Case("VFIO-BOUND", {"lspci-nnk.txt": h.LSPCI}, Status.FAIL,
         "10de:22eb not present; 10de:2d04 not present", expect=EGPU, label="absent"),
    Case("VFIO-BOUND", {"lspci-nnk.txt": h.LSPCI}, Status.SKIP,
         "no passthrough device in the inventory (vfio_pci_ids)", label="none-wanted"),
    Case("NPU-PRESENT", {"xrt-smi-examine.txt": h.XRT_SMI_NPU}, Status.PASS,
         "RyzenAI-npu5 at 0000:be:00.1, firmware 1.1.2.65"),
    Case("NPU-PRESENT", {"accel.txt": h.ACCEL_NPU}, Status.PASS,
         "accel0 (amdxdna); XRT not examined", label="accel"),
    Case("NPU-PRESENT", {"accel.txt": h.ACCEL_NONE, "lsmod.txt": h.LSMOD_XDNA}, Status.WARN,
         "amdxdna loaded but no /dev/accel node", "kernel 6.14+"),
    Case("NPU-PRESENT", {"accel.txt": h.ACCEL_NONE, "lsmod.txt": h.LSMOD_PLAIN}, Status.WARN,
         "no NPU found", "libxrt-npu2", label="none"),
    Case("BENCH-TOKENS", {"llama-bench.txt": h.LLAMA_BENCH}, Status.PASS,
         "deepseek2 30B.A3B Q8_0 tg128: 35.5 tok/s (ROCm) ≥ 30",
         expect=Expectations(bench_min_tps=30)),
    Case("BENCH-TOKENS", {"llama-bench.txt": h.LLAMA_BENCH}, Status.FAIL, "35.5 tok/s (ROCm) < 40",
         "GTT-SIZE", expect=Expectations(bench_min_tps=40)),
    Case("BENCH-TOKENS", {"llama-bench.txt": h.LLAMA_BENCH}, Status.SKIP,
         "no minimum set for this node", label="no-floor"),
    # -- inference: the server units and the RPC split (a real two-server lab log) ----------------
    Case("MODEL-SERVERS", {"llama-server.log": h.LLAMA_SERVER_SPLIT}, Status.PASS,
         "active: sovereign-llm-gemma-3-270m.service", expect=SPLIT),
    Case("MODEL-SERVERS", {"llama-server.log": h.LLAMA_SERVER_SPLIT.replace(".service active",
                                                                           ".service failed")},
         Status.FAIL, "not active: gemma-3-270m (failed)", "journalctl", expect=SPLIT),
    Case("MODEL-SERVERS", {"llama-server.log": h.LLAMA_SERVER_SPLIT}, Status.FAIL,
         "no unit for smollm2-135m", expect=SPLIT.model_copy(update={"served_models": ["smollm2-135m"]}),
         label="missing"),
    Case("MODEL-SERVERS", {"llama-server.log": h.LLAMA_SERVER_SPLIT}, Status.SKIP,
         "no model is placed with this node as its head", label="none"),
    Case("RPC-SPLIT", {"llama-server.log": h.LLAMA_SERVER_SPLIT}, Status.PASS,
         "gemma-3-270m: 127.0.0.2:50099 199.3 MiB", expect=SPLIT),
    Case("RPC-SPLIT", {"llama-server.log": h.LLAMA_SERVER_SPLIT}, Status.FAIL,
         "gemma-3-270m: no model buffer on 10.213.78.12", "--rpc",
         expect=SPLIT.model_copy(update={"split_workers": {"gemma-3-270m": ["10.213.78.12"]}})),
    # -- the cluster's database (real lab captures: after phase 6, and after a hand edit) --------
    Case("PG-UP", {"postgres.txt": h.POSTGRES_OK}, Status.PASS, "15/main online on 5432 (15.18", expect=DB),
    Case("PG-UP", {"postgres.txt": h.POSTGRES_OK.replace("5432 online", "5432 down")}, Status.FAIL,
         "15/main is down", "journalctl -u postgresql@15-main", expect=DB),
    Case("PG-UP", {"postgres.txt": h.POSTGRES_OK}, Status.FAIL, "no cluster on port 5433",
         expect=DB.model_copy(update={"database_port": 5433}), label="port"),
    Case("PG-UP", {"postgres.txt": h.POSTGRES_OK}, Status.SKIP, "does not run the cluster's database",
         label="not-the-host"),
    Case("PG-TLS", {"postgres.txt": h.POSTGRES_OK}, Status.PASS,
         "10.213.77.11:5432: TLSv1.3, CN = mimical-1, verified", expect=DB),
    Case("PG-TLS", {"postgres.txt": h.POSTGRES_DRIFTED}, Status.FAIL,
         "ssl is off; password_encryption is md5; 10.213.77.11:5432: the server refused TLS", "ca.crt",
         expect=DB),
    Case("PG-TLS", {"postgres.txt": h.POSTGRES_OK}, Status.FAIL,
         "10.213.78.11:5432: 40673312AC7F0000:error:8000006F:system library:BIO_connect:Connection refused",
         expect=DB.model_copy(update={"database_address": "10.213.78.11"}), label="wrong-address"),
    Case("PG-HBA", {"postgres.txt": h.POSTGRES_OK}, Status.PASS,
         "16 hostssl scram-sha-256 rules for sovereign_backup, sovereign_kairos, sovereign_mcp, "
         "sovereign_owner, sovereign_router; the rest rejected", expect=DB),
    Case("PG-HBA", {"postgres.txt": h.POSTGRES_DRIFTED}, Status.FAIL,
         "line 7 (host all all 0.0.0.0/0): trust; line 8 (host sovereign all 10.213.77.0/24): md5; "
         "line 9 (hostssl sovereign sovereign_owner 10.213.77.11/32): hostssl record cannot match", "phase 6",
         expect=DB),
    Case("PG-HBA", {"postgres.txt": "\n".join(line for line in h.POSTGRES_OK.splitlines()
                                               if "|0.0.0.0|0.0.0.0|reject|" not in line)},
         Status.FAIL, "no final rule rejects every other IPv4 client", expect=DB, label="no-reject"),
    # -- the fabric ------------------------------------------------------------------------------
    Case("RDMA-LINK-ACTIVE", {"rdma-link.txt": h.RDMA_LINK_UP}, Status.PASS,
         "active: mlx5_0/1, mlx5_1/1"),
    Case("RDMA-LINK-ACTIVE", {"ibv_devinfo.txt": h.IBV_DEVINFO}, Status.PASS,
         "active: rdmaP23800p0s2/1", label="ibv_devinfo"),
    Case("RDMA-LINK-ACTIVE", {"rdma-link.txt": h.RDMA_LINK_DOWN}, Status.FAIL,
         "mlx5_0/1 DOWN", "DAC cable"),
    Case("RDMA-MTU", {"ibv_devinfo.txt": h.IBV_DEVINFO_4096}, Status.PASS,
         "rdmaP23800p0s2/1 active_mtu 4096"),
    Case("RDMA-MTU", {"ibv_devinfo.txt": h.IBV_DEVINFO}, Status.WARN,
         "rdmaP23800p0s2/1 active_mtu 1024", "set MTU 9000 on the fabric netdev"),
    Case("RDMA-MTU", {"ibv_devinfo.txt": h.IBV_DEVINFO}, Status.PASS,
         expect=Expectations(fabric_mtu=1500), label="no-jumbo-wanted"),
    Case("ROCE-V2-GID", {"show_gids.txt": h.SHOW_GIDS_FABRIC}, Status.PASS,
         "mlx5_0 port 1 index 3: 10.10.10.1 (v2)", expect=Expectations(fabric_address="10.10.10.1")),
    Case("ROCE-V2-GID", {"show_gids.txt": h.SHOW_GIDS_FABRIC}, Status.WARN,
         "v2 GIDs for mlx5_0/1#3 10.10.10.1, none for 10.10.10.2",
         "sovereign_fabric_address", expect=Expectations(fabric_address="10.10.10.2")),
    Case("ROCE-V2-GID", {"show_gids.txt": h.SHOW_GIDS_NO_IPV4}, Status.FAIL,
         "no IPv4-mapped RoCE v2 GID", "GGML_RDMA_GID", expect=Expectations(fabric_address="10.10.10.1")),
    Case("LINK-SPEED", {"ethtool.txt": h.ethtool(100000)}, Status.PASS,
         "p1p1: 100 Gb/s measured, 100 Gb/s claimed"),
    Case("LINK-SPEED", {"ethtool.txt": h.ethtool(50000), "rdma-link.txt": h.RDMA_LINK_UP},
         Status.WARN, "p1p1: 50 Gb/s measured, 100 Gb/s claimed", "PCIe 4.0 x4"),
    Case("DPU-MODE", {"mlxconfig.txt": h.MLXCONFIG_DPU}, Status.PASS, "dpu mode"),
    Case("DPU-MODE", {"mlxconfig.txt": h.MLXCONFIG_DPU}, Status.FAIL,
         "dpu mode, the inventory expects nic", "INTERNAL_CPU_MODEL",
         expect=Expectations(dpu_mode="nic")),
    Case("DPU-MODE", {"mlxconfig.txt": h.MLXCONFIG_DPU}, Status.SKIP,
         "no DPU in the inventory for this node", expect=Expectations(dpu_mode=None),
         label="no-dpu"),
]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_check(make_bundle: Callable[..., Path], case: Case) -> None:
    result = judge(make_bundle, case.check_id, case.files, case.expect)
    assert result.status is case.status, result
    assert case.message in result.message, result.message
    assert case.hint in result.hint, result.hint
    if case.status in (Status.FAIL, Status.WARN):
        assert result.hint, f"{case!r}: a failure or warning names its fix"
    assert not result.ignored and not result.simulated


# Checks that never fail: what they find slows the cluster down or is optional.
WARN_ONLY = {"CPU-THREADS", "NPU-PRESENT", "RDMA-MTU", "LINK-SPEED"}


def test_every_check_has_a_pass_and_a_fail_case() -> None:
    for status, exempt in ((Status.PASS, set()), (Status.FAIL, WARN_ONLY)):
        covered = {c.check_id for c in CASES if c.status is status}
        want = set(REGISTRY) - exempt
        assert covered == want, f"no {status.value} case for {want - covered}"


@pytest.mark.parametrize("check_id", ["CPU-THREADS", "MEM-TOTAL", "THERMALS", "GRUB-CMDLINE",
                                      "KERNEL-CMDLINE", "TTM-PAGES-LIMIT", *sorted(WARN_ONLY),
                                      "ROCE-V2-GID"])
def test_checks_with_a_warning_have_a_warn_case(check_id: str) -> None:
    assert any(c.check_id == check_id and c.status is Status.WARN for c in CASES)


# -- skips: the source was not collected ------------------------------------------------------

REASON = "rocminfo not found on the node"


@pytest.mark.parametrize("check_id", list(REGISTRY))
def test_every_check_skips_a_missing_source_with_the_manifests_reason(
        make_bundle: Callable[..., Path], check_id: str) -> None:
    from sovereign.hw.collector import SOURCES

    manifest = {"host": "mimical-1",
                "files": {name: h.missing(f"{name} not found on the node")
                          for name, *_ in SOURCES}}
    # Expectations that want every optional device, so that only the capture is missing.
    want_all = Expectations(vfio_pci_ids=["10de:2d04"], bench_min_tps=10, dpu_mode="dpu",
                            served_models=["m"], split_workers={"m": ["10.0.0.2"]}, database_host=True)
    result = judge(make_bundle, check_id, {}, want_all, manifest=manifest)
    assert result.status is Status.SKIP
    assert result.message.startswith("source not collected (")
    assert "not found on the node)" in result.message
    assert not result.blocking


def test_skip_quotes_the_simulated_reason(make_bundle: Callable[..., Path]) -> None:
    from sovereign.hw.collector import KERNEL_SIMULATED

    manifest = {"files": {"proc-cmdline.txt": h.missing(KERNEL_SIMULATED)}}
    result = judge(make_bundle, "KERNEL-CMDLINE", GRUB_OK, manifest=manifest)
    assert result.status is Status.SKIP
    assert result.message == f"source not collected ({KERNEL_SIMULATED})"


def test_skip_of_a_source_not_in_the_manifest(make_bundle: Callable[..., Path]) -> None:
    # With a manifest, a file it does not list was not collected, even if present.
    result = judge(make_bundle, "ROCM-KFD", {}, manifest={"files": {}})
    assert result.status is Status.SKIP
    assert result.message == "source not collected (rocminfo.txt is not in the bundle)"


def failed_nvme(make_bundle: Callable[..., Path], output: str) -> CheckResult:
    manifest = {"files": {"nvme-list.txt": {
        "command": "nvme list", "status": "failed", "exit_code": 1,
        "stderr": "Failed to scan topology\nnvme: Permission denied\n"}}}
    path = make_bundle({}, manifest)
    (path / "nvme-list.txt").write_text(output)
    [result] = run_checks(Facts(Bundle.load(path)), PROD, ["NVME-PRESENT"])
    return result


def test_a_failed_command_with_output_is_still_judged(make_bundle: Callable[..., Path]) -> None:
    # rocminfo, for one, exits non-zero exactly when its output matters.
    assert failed_nvme(make_bundle, h.NVME_ONE).status is Status.PASS


def test_a_failed_command_without_output_skips_with_its_stderr(
        make_bundle: Callable[..., Path]) -> None:
    result = failed_nvme(make_bundle, "")
    assert result.status is Status.SKIP
    assert result.message == "nvme-list.txt: `nvme list` failed: nvme: Permission denied"


def test_gtt_skip_names_both_sources(make_bundle: Callable[..., Path]) -> None:
    manifest = {"files": {"sys-drm-mem-info.txt": h.missing("/sys/class/drm not found on the node"),
                          "dmesg.txt": h.missing(REASON)}}
    result = judge(make_bundle, "GTT-SIZE", {}, manifest=manifest)
    assert result.status is Status.SKIP
    assert result.message == ("source not collected (/sys/class/drm not found on the node); "
                              f"source not collected ({REASON})")


# -- simulated sources -----------------------------------------------------------------------

def test_results_on_a_recorded_profile_are_marked_simulated(
        make_bundle: Callable[..., Path]) -> None:
    manifest = {"simulated": True, "files": {
        "lscpu.txt": {"command": f"recorded profile: {h.PROFILE}/lscpu.txt", "kind": "identity",
                      "status": "ok", "exit_code": 0, "stderr": "", "simulated": True}}}
    files = {"lscpu.txt": (h.PROFILE / "lscpu.txt").read_text(), "os-release.txt": h.OS_DEBIAN}
    facts = Facts(Bundle.load(make_bundle(files, manifest)))
    cpu, os_ = run_checks(facts, PROD, ["CPU-MODEL", "OS-SUPPORTED"])
    assert (cpu.status, cpu.simulated) == (Status.PASS, True)
    assert (os_.status, os_.simulated) == (Status.PASS, False)


# -- expectations: a role's default is declared once ---------------------------------------

def roles_copy(home: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The project's roles' argument specs copied under home/roles, the kernel_params
    and rocm options edited by `change`, for SOVEREIGN_HOME=home."""
    for spec in (h.PROJECT / "roles").glob("*/meta/argument_specs.yml"):
        target = home / "roles" / spec.parent.parent.name / "meta" / spec.name
        target.parent.mkdir(parents=True)
        target.write_text(spec.read_text())
    for role in ("kernel_params", "rocm"):
        h.edit_yaml(home / "roles" / role / "meta" / "argument_specs.yml",
                    lambda d: change(d["argument_specs"]["main"]["options"]))
    return home


def test_expectations_follow_the_roles_declared_defaults(
        make_bundle: Callable[..., Path], lab_copy: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Change a default in a copy of a role's meta/argument_specs.yml and the
    checks expect the new one, with or without an inventory."""
    from sovereign.inventory import load_inventory

    def change(options: dict[str, Any]) -> None:
        for name, default in (("kernel_params_iommu", "force"), ("rocm_release", "7.3.1")):
            if name in options:
                options[name]["default"] = default

    h.edit_yaml(lab_copy / "group_vars/sovereign_nodes.yml", lambda d: d.pop("kernel_params_iommu"))
    assert Expectations.from_host(load_inventory(lab_copy).hosts["mimical-1"]).iommu == "pt"
    assert judge(make_bundle, "GRUB-CMDLINE", GRUB_OK, Expectations()).status is Status.PASS

    monkeypatch.setenv("SOVEREIGN_HOME", str(roles_copy(tmp_path / "home", change)))
    expect = Expectations()
    assert (expect.iommu, expect.rocm_release) == ("force", "7.3.1")
    result = judge(make_bundle, "GRUB-CMDLINE", GRUB_OK, expect)
    assert (result.status, result.message) == (Status.FAIL, "iommu=pt (want iommu=force)")
    # A host whose inventory leaves the option to the role gets the role's default too.
    assert Expectations.from_host(load_inventory(lab_copy).hosts["mimical-1"]).iommu == "force"


# -- run_checks: ignore and robustness ---------------------------------------------------------

def low_memory(make_bundle: Callable[..., Path]) -> Facts:
    return Facts(Bundle.load(make_bundle({"proc-meminfo.txt": h.meminfo(62),
                                          "lscpu.txt": h.lscpu(16)})))


def test_ignore_marks_a_failure_not_blocking(make_bundle: Callable[..., Path]) -> None:
    facts = low_memory(make_bundle)
    [plain] = run_checks(facts, PROD, ["MEM-TOTAL"])
    assert plain.status is Status.FAIL and plain.blocking and not plain.ignored
    mem, threads = run_checks(facts, PROD, ["MEM-TOTAL", "CPU-THREADS"],
                              ignore={"MEM-TOTAL", "CPU-THREADS"})
    assert mem.status is Status.FAIL and mem.ignored and not mem.blocking
    # Only failures are ignored; a warning stays a plain warning.
    assert threads.status is Status.WARN and not threads.ignored


def test_ignore_all(make_bundle: Callable[..., Path]) -> None:
    results = run_checks(low_memory(make_bundle), PROD, ["MEM-TOTAL", "CPU-MODEL"],
                         ignore={"ALL"})
    assert [(r.status, r.ignored, r.blocking) for r in results] == [
        (Status.FAIL, True, False), (Status.PASS, False, False)]


def test_ignore_of_another_id_does_not_help(make_bundle: Callable[..., Path]) -> None:
    [mem] = run_checks(low_memory(make_bundle), PROD, ["MEM-TOTAL"], ignore={"CPU-MODEL"})
    assert mem.blocking


def test_a_check_that_raises_becomes_a_failure(make_bundle: Callable[..., Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(facts: Facts, expect: Expectations) -> CheckResult:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(REGISTRY, "MEM-TOTAL", CheckSpec("MEM-TOTAL", "broken", broken))
    mem, cpu = run_checks(low_memory(make_bundle), PROD, ["MEM-TOTAL", "CPU-MODEL"])
    assert mem.status is Status.FAIL and mem.blocking
    assert mem.message == "the check itself failed: ZeroDivisionError('division by zero')"
    assert mem.hint == "report this with the bundle attached"
    assert cpu.status is Status.PASS  # the run went on
    [ignored] = run_checks(low_memory(make_bundle), PROD, ["MEM-TOTAL"], ignore={"MEM-TOTAL"})
    assert ignored.ignored


def test_parse_ignore_and_unknown_ids() -> None:
    assert parse_ignore(None) == set()
    assert parse_ignore("") == set()
    assert parse_ignore("mem-total, CPU-MODEL,,") == {"MEM-TOTAL", "CPU-MODEL"}
    assert parse_ignore("all") == {"ALL"}
    assert unknown_ids({"ALL", "MEM-TOTAL", "NOPE", "ALSO-NOPE"}) == ["ALSO-NOPE", "NOPE"]


def test_registry_ids_are_stable() -> None:
    # Ids are an interface (--ignore, the ledger, AWX): they may be added, never renamed.
    assert list(REGISTRY)[:14] == [
        "OS-SUPPORTED", "CPU-MODEL", "CPU-THREADS", "MEM-TOTAL", "NVME-PRESENT", "THERMALS",
        "GRUB-CMDLINE", "KERNEL-CMDLINE", "MODPROBE-TTM", "TTM-PAGES-LIMIT", "GTT-SIZE",
        "IOMMU-ENABLED", "ROCM-KFD", "ROCM-GFX1151"]
    assert all(spec.title for spec in REGISTRY.values())


# -- bugs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    h.ROCMINFO_NOT_PERMITTED,
    "ROCk module version 6.12.12 is loaded\n"
    "Unable to open /dev/kfd read-write: Permission denied\n"
    'sovereign is not member of "render" group, the default DRM access group. Users must be '
    'a member of the "render" group or another DRM access group in order for ROCm '
    "applications to run successfully.\n",
], ids=["operation-not-permitted", "permission-denied"])
def test_rocm_kfd_unusable_for_lack_of_permission(make_bundle: Callable[..., Path],
                                                  text: str) -> None:
    result = judge(make_bundle, "ROCM-KFD", {"rocminfo.txt": text})
    assert result.status is Status.FAIL
    assert "/dev/kfd" in result.message
    assert result.hint == "add the user to the render and video groups (rocm_users)"


def test_rocm_kfd_permission_denied_hint(make_bundle: Callable[..., Path]) -> None:
    result = judge(make_bundle, "ROCM-KFD",
                   {"rocminfo.txt": "Unable to open /dev/kfd read-write: Permission denied\n"})
    assert result.status is Status.FAIL
    assert result.hint == "add the user to the render and video groups (rocm_users)"


def test_kernel_cmdline_beyond_ram_is_not_a_reboot(make_bundle: Callable[..., Path]) -> None:
    files = {"proc-cmdline.txt": h.cmdline(), "etc-default-grub.txt": h.grub(),
             "proc-meminfo.txt": h.meminfo(62)}
    result = judge(make_bundle, "KERNEL-CMDLINE", files)
    assert result.status is Status.FAIL
    assert "exceeds physical RAM (62 GiB)" in result.message
    assert "reboot required" not in result.message


def test_roce_gid_without_an_expected_address(make_bundle: Callable[..., Path]) -> None:
    result = judge(make_bundle, "ROCE-V2-GID", {"show_gids.txt": h.SHOW_GIDS_FABRIC})
    assert result.status is Status.PASS
    assert "None" not in result.message
