"""Helpers and realistic capture texts shared by the unit tests.

conftest.py puts this directory on sys.path (the suite runs with
`--import-mode=importlib`, where test modules cannot import each other).
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]
LAB = PROJECT / "inventory" / "lab"
PRODUCTION = PROJECT / "inventory" / "production"
HW_FIXTURES = PROJECT / "tests" / "hw" / "fixtures"
PROFILE = PROJECT / "sovereign" / "hw" / "profiles" / "strix-halo-128g"

GIB = 1024**3
PAGES_124 = 124 * 262144  # 32505856: ttm.pages_limit of a 124 GiB pool

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# -- files and output ------------------------------------------------------------------

def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def write_yaml(path: Path, data: Any) -> None:
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Load a vars file, let `change` mutate the mapping, write it back."""
    data = read_yaml(path) or {}
    change(data)
    write_yaml(path, data)


def plain(text: str) -> str:
    """Output without terminal escapes (should FORCE_COLOR leak in)."""
    return _ANSI.sub("", text)


def problem_lines(stderr: str) -> list[str]:
    """The `file: key: problem` bullets of an error, without the bullet."""
    return [line.strip()[2:] for line in plain(stderr).splitlines()
            if line.strip().startswith("• ")]


def make_bundle_at(root: Path, files: dict[str, str],
                   manifest: dict[str, Any] | None = None, name: str = "bundle") -> Path:
    """Write a capture bundle directory `root/name`.

    `files` maps source file names (as in collector.SOURCES) to their text.
    Without `manifest`, no manifest.json is written (a hand-made bundle: every
    file present counts as collected, the host is the directory's name). With
    one, each written file the manifest does not list is added as collected
    (`status: ok`), so a test lists only the entries it cares about (missing
    sources and their reason, simulated ones).
    """
    path = root / name
    path.mkdir(parents=True)
    for file, text in files.items():
        (path / file).write_text(text)
    if manifest is not None:
        data = json.loads(json.dumps(manifest))
        entries = data.setdefault("files", {})
        for file in files:
            entries.setdefault(file, {"command": f"(test) {file}", "status": "ok",
                                      "exit_code": 0, "stderr": ""})
        (path / "manifest.json").write_text(json.dumps(data, indent=2))
    return path


def missing(reason: str) -> dict[str, Any]:
    """A manifest entry for a source the collector could not capture."""
    return {"command": "(test)", "status": "missing", "exit_code": None, "stderr": "",
            "reason": reason}


def tar_bundle(directory: Path, target: Path) -> Path:
    """The bundle directory as the collector's `--tar` writes it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for item in sorted(directory.iterdir()):
            tar.add(str(item), arcname=item.name)
    return target


# -- capture texts ------------------------------------------------------------------------

OS_UBUNTU = """\
PRETTY_NAME="Ubuntu 26.04 LTS"
NAME="Ubuntu"
VERSION_ID="26.04"
VERSION="26.04 LTS (Resolute Raccoon)"
ID=ubuntu
ID_LIKE=debian
"""
OS_DEBIAN = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
OS_FEDORA = """\
NAME="Fedora Linux"
VERSION="40 (Workstation Edition)"
ID=fedora
VERSION_ID=40
PRETTY_NAME="Fedora Linux 40 (Workstation Edition)"
"""


def lscpu(threads: int = 32, model: str = "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S") -> str:
    return f"""\
Architecture:                            x86_64
CPU op-mode(s):                          32-bit, 64-bit
Byte Order:                              Little Endian
CPU(s):                                  {threads}
On-line CPU(s) list:                     0-{threads - 1}
Vendor ID:                               AuthenticAMD
Model name:                              {model}
CPU family:                              26
Model:                                   112
Thread(s) per core:                      {2 if threads == 32 else 1}
Core(s) per socket:                      16
Socket(s):                               1
"""


def meminfo(gib: float) -> str:
    kib = int(gib * 1024 * 1024)
    return f"""\
MemTotal:       {kib} kB
MemFree:        {kib - 4_000_000} kB
MemAvailable:   {kib - 2_000_000} kB
Buffers:            4096 kB
Cached:           134280 kB
SwapCached:            0 kB
SwapTotal:       8388604 kB
SwapFree:        8388604 kB
"""


NVME_ONE = (HW_FIXTURES / "nvme-list" / "igaw-libnvme108-nvme-list-no-generic.txt").read_text()
SENSORS_COOL = (HW_FIXTURES / "sensors"
                / "flying-x-tempthrottle45-sensors-nvme-k10temp.txt").read_text()


def sensors(tctl: float) -> str:
    return f"""\
k10temp-pci-00c3
Adapter: PCI adapter
Tctl:         +{tctl:.1f}°C

amdgpu-pci-c500
Adapter: PCI adapter
vddgfx:        1.07 V
edge:         +41.0°C
PPT:          18.04 W
"""


SENSORS_NONE = """\
acpi_fan-acpi-0
Adapter: ACPI interface
fan1:           0 RPM
"""

CMDLINE_BASE = ("BOOT_IMAGE=/vmlinuz-7.0.0-15-generic "
                "root=UUID=0b5c7d8e-2f6a-4e1b-9c3d-5a7e8f9b0c1d ro quiet splash")


def cmdline(extra: str = f"iommu=pt ttm.pages_limit={PAGES_124}") -> str:
    return f"{CMDLINE_BASE} {extra} vt.handoff=7\n".replace("  ", " ")


def grub(dropin: str | None = f"iommu=pt ttm.pages_limit={PAGES_124}") -> str:
    """/etc/default/grub followed by the role's drop-in, as the collector joins them."""
    text = """\
# /etc/default/grub
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT_STYLE=hidden
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Ubuntu} ) 2>/dev/null || echo Ubuntu`
GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"
GRUB_CMDLINE_LINUX=""
# /etc/default/grub.d/init-select.cfg
# Work around a bug of grub on some machines
GRUB_RECORDFAIL_TIMEOUT=0
"""
    if dropin is not None:
        text += f"""\
# /etc/default/grub.d/90-sovereign.cfg
# Ansible managed
#
# GPU memory pool: 124 GiB = {PAGES_124} pages of 4 KiB.
# Appended to whatever /etc/default/grub and earlier drop-ins set.
GRUB_CMDLINE_LINUX_DEFAULT="${{GRUB_CMDLINE_LINUX_DEFAULT:+$GRUB_CMDLINE_LINUX_DEFAULT }}{dropin}"
"""
    return text


def modprobe(line: str = f"options ttm pages_limit={PAGES_124} page_pool_size={PAGES_124}") -> str:
    return f"""\
# /etc/modprobe.d/90-sovereign-ttm.conf
# Ansible managed
#
# GPU memory pool: 124 GiB = {PAGES_124} pages of 4 KiB.
{line}
# /etc/modprobe.d/blacklist-framebuffer.conf
blacklist aty128fb
blacklist atyfb
# /etc/modprobe.d/iwlwifi.conf
options iwlwifi power_save=0
"""


def sys_ttm(pages: int = PAGES_124, module: str = "ttm") -> str:
    return (f"/sys/module/{module}/parameters/dma32_pages_limit:0\n"
            f"/sys/module/{module}/parameters/page_pool_size:{pages}\n"
            f"/sys/module/{module}/parameters/pages_limit:{pages}\n")


def drm_mem(gtt_bytes: int = 133143986176) -> str:
    return (f"/sys/class/drm/card1/device/mem_info_gtt_total:{gtt_bytes}\n"
            "/sys/class/drm/card1/device/mem_info_vram_total:536870912\n")


IOMMU_GROUPS = (HW_FIXTURES / "iommu-groups" / "elatov-hpz2g1a-find-iommu-groups-type-l.txt"
                ).read_text()
DMESG_AMDVI = """\
[    0.512201] AMD-Vi: Using global IVHD EFR:0x246577efa2254afa, EFR2:0x0
[    0.843530] pci 0000:00:00.2: AMD-Vi: IOMMU performance counters supported
[    0.846772] AMD-Vi: Extended features (0x246577efa2254afa, 0x0): PPR NX GT IA GA PC
[    0.846780] AMD-Vi: Interrupt remapping enabled
"""
DMESG_GTT_124 = """\
[    4.101515] amdgpu 0000:c5:00.0: amdgpu: amdgpu: 512M of VRAM memory ready
[    4.101517] amdgpu 0000:c5:00.0: amdgpu: amdgpu: 126976M of GTT memory ready.
"""
LSPCI = (HW_FIXTURES / "lspci-nnk" / "synthetic-strix-halo-nnk-with-drivers.txt").read_text()
IBV_DEVINFO = (HW_FIXTURES / "ibv_devinfo" / "jithinjosepkl-azhpcimages44-ibv-devinfo-roce.txt"
               ).read_text()
ROCMINFO_NOT_PERMITTED = (HW_FIXTURES / "rocminfo"
                          / "elatov-k8spod-rocminfo-kfd-operation-not-permitted.txt").read_text()
ROCMINFO_NOT_LOADED = (HW_FIXTURES / "rocminfo" / "elatov-vmguest-rocminfo-rock-not-loaded.txt"
                       ).read_text()


def rocminfo(gfx: str = "gfx1151", marketing: str = "Radeon 8060S Graphics") -> str:
    """A short rocminfo (ROCm 7.x layout): the CPU agent and one GPU agent."""
    return f"""\
ROCk module is loaded
=====================
HSA System Attributes
=====================
Runtime Version:         1.18
Runtime Ext Version:     1.14
System Timestamp Freq.:  1000.000000MHz
Machine Model:           LARGE
System Endianness:       LITTLE

==========
HSA Agents
==========
*******
Agent 1
*******
  Name:                    AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Uuid:                    CPU-XX
  Marketing Name:          AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Vendor Name:             CPU
  Node:                    0
  Device Type:             CPU
*******
Agent 2
*******
  Name:                    {gfx}
  Uuid:                    GPU-XX
  Marketing Name:          {marketing}
  Vendor Name:             AMD
  Node:                    1
  Device Type:             GPU
  Compute Unit:            40
  ISA Info:
    ISA 1
      Name:                    amdgcn-amd-amdhsa--{gfx}
      Machine Models:          HSA_MACHINE_MODEL_LARGE
*** Done ***
"""


def good_files(gib_visible: float = 125.1) -> dict[str, str]:
    """A bundle of a healthy production node after phase 2: every check passes
    with the production expectations, or skips for want of an expectation
    (VFIO-BOUND, BENCH-TOKENS) or a source (show_gids)."""
    return {
        "os-release.txt": OS_UBUNTU,
        "lscpu.txt": lscpu(),
        "proc-meminfo.txt": meminfo(gib_visible),
        "lspci-nnk.txt": LSPCI,
        "nvme-list.txt": NVME_ONE,
        "sensors.txt": SENSORS_COOL,
        "proc-cmdline.txt": cmdline(),
        "etc-default-grub.txt": grub(),
        "modprobe-d.txt": modprobe(),
        "sys-module-ttm.txt": sys_ttm(),
        "dmesg.txt": DMESG_AMDVI + DMESG_GTT_124,
        "iommu-groups.txt": IOMMU_GROUPS,
        "sys-drm-mem-info.txt": drm_mem(),
        "rocminfo.txt": rocminfo(),
        "amd-smi.txt": AMD_SMI_722,
        "xrt-smi-examine.txt": XRT_SMI_NPU,
        "accel.txt": ACCEL_NPU,
        "lsmod.txt": LSMOD_XDNA,
        "ibv_devinfo.txt": IBV_DEVINFO_4096,
        "rdma-link.txt": RDMA_LINK_UP,
        "ethtool.txt": ethtool(100000),
        "mlxconfig.txt": MLXCONFIG_DPU,
    }


# -- devices and fabric ----------------------------------------------------------------------

def _fixture(path: str) -> str:
    return (HW_FIXTURES / path).read_text()


AMD_SMI_702 = _fixture("amd-smi/rocm5562-amd-smi-ubuntu2510.txt")  # "ROCm version: 7.0.2"
AMD_SMI_722 = AMD_SMI_702.replace("ROCm version: 7.0.2", "ROCm version: 7.2.2")
XRT_SMI_NPU = _fixture("xrt-smi-examine/elijahsgh-mss1max-xrt-smi-examine-npu5.txt")
ACCEL_NPU = _fixture("accel/synthetic-ls-l-dev-accel-npu.txt")
ACCEL_NONE = "ls: cannot access '/dev/accel': No such file or directory\n"
LSMOD_XDNA = _fixture("lsmod/danbev-gmktec-lsmod-amdxdna.txt")
LSMOD_PLAIN = """\
Module                  Size  Used by
amdgpu              19165184  12
gpu_sched              65536  1 amdgpu
"""
LLAMA_SERVER_SPLIT = _fixture("llama-server/lab-cpu-rpc-split-two-servers.txt")
POSTGRES_OK = _fixture("postgres/lab-debian12-pg15-phase6.txt")
POSTGRES_DRIFTED = _fixture("postgres/lab-debian12-pg15-drifted.txt")
LLAMA_BENCH = _fixture("llama-bench/kyuz0-rocm723-glm47flash-q8.txt")  # tg128: 35.50 t/s
RDMA_LINK_UP = _fixture("rdma-link/qiuxinyidian-3fs283-rdma-link-show-cx6dx.txt")
RDMA_LINK_DOWN = "link mlx5_0/1 state DOWN physical_state DISABLED netdev p1p1\n"
IBV_DEVINFO_4096 = IBV_DEVINFO.replace("active_mtu:             1024 (3)",
                                       "active_mtu:             4096 (5)")
SHOW_GIDS_NO_IPV4 = _fixture("show_gids/hurray0-cx4-show-gids-spaces.txt")
SHOW_GIDS_FABRIC = """\
DEV     PORT    INDEX   GID                                     IPv4            VER     DEV
---     ----    -----   ---                                     ------------    ---     ---
mlx5_0  1       0       fe80:0000:0000:0000:0e42:a1ff:fe8c:2e10                 v1      enp1s0f0np0
mlx5_0  1       1       fe80:0000:0000:0000:0e42:a1ff:fe8c:2e10                 v2      enp1s0f0np0
mlx5_0  1       2       0000:0000:0000:0000:0000:ffff:0a0a:0a01 10.10.10.1      v1      enp1s0f0np0
mlx5_0  1       3       0000:0000:0000:0000:0000:ffff:0a0a:0a01 10.10.10.1      v2      enp1s0f0np0
n_gids_found=4
"""
MLXCONFIG_DPU = _fixture("mlxconfig/synthetic-bf2-dpu-mode-q.txt")


def ethtool(speed_mbps: int, interface: str = "p1p1") -> str:
    return f"""\
Settings for {interface}:
	Supported ports: [ FIBRE ]
	Supported link modes:   100000baseCR4/Full
	Speed: {speed_mbps}Mb/s
	Duplex: Full
	Auto-negotiation: off
	Port: Direct Attach Copper
	Link detected: yes
"""


def lspci_egpu(driver: str) -> str:
    """The Strix Halo devices plus an NVIDIA eGPU (and its audio function)."""
    return LSPCI + f"""\
c3:00.0 VGA compatible controller [0300]: NVIDIA Corporation GB206 [GeForce RTX 5060 Ti] [10de:2d04] (rev a1)
	Subsystem: NVIDIA Corporation Device [10de:205e]
	Kernel driver in use: {driver}
	Kernel modules: nouveau, nvidia_drm, nvidia
c3:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22eb] (rev a1)
	Subsystem: NVIDIA Corporation Device [10de:0000]
	Kernel driver in use: vfio-pci
	Kernel modules: snd_hda_intel
"""
