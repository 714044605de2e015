"""Parsers of real hardware command output: pure functions from text to models.

`PARSERS` maps each capture bundle file name to its parser. Every parser
returns a `ParseResult` and never raises on odd input; what it could not read
is in the result's `problems`.
"""

from __future__ import annotations

from collections.abc import Callable

from sovereign.hw.parsers import (
    accel,
    amd_smi,
    bf_info,
    cmdline,
    cpuinfo,
    dmesg,
    drm_mem,
    ethtool,
    free,
    grub,
    ibstat,
    ibv_devices,
    ibv_devinfo,
    iommu,
    llama_bench,
    llama_server_log,
    lscpu,
    lsmod,
    lspci,
    meminfo,
    mlxconfig,
    modprobe,
    mst_status,
    nvme_list,
    os_release,
    postgres,
    rdma_link,
    rocm_smi,
    rocm_version,
    rocminfo,
    rpc_server,
    sensors,
    show_gids,
    ttm,
    xrt_smi,
)
from sovereign.hw.parsers.base import ParseResult

PARSERS: dict[str, Callable[[str], ParseResult]] = {
    "os-release.txt": os_release.parse,
    "rocm-version.txt": rocm_version.parse,
    "proc-cpuinfo.txt": cpuinfo.parse,
    "lscpu.txt": lscpu.parse,
    "proc-meminfo.txt": meminfo.parse,
    "free.txt": free.parse,
    "proc-cmdline.txt": cmdline.parse,
    "etc-default-grub.txt": grub.parse,
    "modprobe-d.txt": modprobe.parse,
    "sys-module-ttm.txt": ttm.parse,
    "dmesg.txt": dmesg.parse,
    "lspci-nnk.txt": lspci.parse,
    "lsmod.txt": lsmod.parse,
    "iommu-groups.txt": iommu.parse,
    "rocminfo.txt": rocminfo.parse,
    "rocm-smi.txt": rocm_smi.parse,
    "amd-smi.txt": amd_smi.parse,
    "sys-drm-mem-info.txt": drm_mem.parse,
    "accel.txt": accel.parse,
    "xrt-smi-examine.txt": xrt_smi.parse,
    "ibv_devinfo.txt": ibv_devinfo.parse,
    "ibv_devices.txt": ibv_devices.parse,
    "ibstat.txt": ibstat.parse,
    "rdma-link.txt": rdma_link.parse,
    "show_gids.txt": show_gids.parse,
    "ethtool.txt": ethtool.parse,
    "mst-status.txt": mst_status.parse,
    "mlxconfig.txt": mlxconfig.parse,
    "bf-info.txt": bf_info.parse,
    "nvme-list.txt": nvme_list.parse,
    "sensors.txt": sensors.parse,
    "llama-bench.txt": llama_bench.parse,
    "rpc-server.log": rpc_server.parse,
    "llama-server.log": llama_server_log.parse,
    "postgres.txt": postgres.parse,
}

__all__ = ["PARSERS", "ParseResult"]
