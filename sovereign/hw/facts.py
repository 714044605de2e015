"""Facts: a bundle parsed once, with the summary that checks and `--json` use."""

from __future__ import annotations

from typing import Any

from sovereign.hw.bundle import Bundle
from sovereign.hw.parsers import PARSERS
from sovereign.hw.parsers.base import ParseResult

MIB = 1024**2


class Facts:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._parsed: dict[str, ParseResult | None] = {}

    @property
    def host(self) -> str:
        return self.bundle.host

    def get(self, name: str) -> Any:
        """The parsed model of a source, or None when it was not collected."""
        if name not in self._parsed:
            text = self.bundle.text(name)
            self._parsed[name] = None if text is None else PARSERS[name](text)
        return self._parsed[name]

    def first(self, *names: str) -> tuple[str, Any] | tuple[None, None]:
        for name in names:
            parsed = self.get(name)
            if parsed is not None:
                return name, parsed
        return None, None

    def simulated(self, *names: str) -> bool:
        return any((e := self.bundle.entry(n)) is not None and e.simulated for n in names)

    def why_missing(self, *names: str) -> str:
        return "; ".join(dict.fromkeys(self.bundle.why_missing(n) for n in names))

    def problems(self) -> dict[str, list[str]]:
        """What each parser could not read, by source."""
        out = {}
        for name in self.bundle.manifest.files:
            parsed = self.get(name) if name in PARSERS else None
            if parsed is not None and parsed.problems:
                out[name] = list(parsed.problems)
        return out

    # -- the summary -----------------------------------------------------------------
    def cpu_model(self) -> str | None:
        for name in ("lscpu.txt", "proc-cpuinfo.txt"):
            parsed = self.get(name)
            if parsed is not None and parsed.model:
                return parsed.model
        return None

    def memory_total_bytes(self) -> int | None:
        for name in ("proc-meminfo.txt", "free.txt"):
            parsed = self.get(name)
            if parsed is not None and parsed.total_bytes:
                return parsed.total_bytes
        return None

    def gtt_bytes(self) -> int | None:
        drm = self.get("sys-drm-mem-info.txt")
        if drm is not None:
            totals = [c.gtt_total_bytes for c in drm.cards.values() if c.gtt_total_bytes]
            if totals:
                return max(totals)
        dmesg = self.get("dmesg.txt")
        if dmesg is not None and dmesg.gtt_mib:
            return dmesg.gtt_mib * MIB
        return None

    def summary(self) -> dict[str, Any]:
        cmdline = self.get("proc-cmdline.txt")
        rocm = self.get("rocminfo.txt")
        pci = self.get("lspci-nnk.txt")
        iommu = self.get("iommu-groups.txt")
        return {
            "cpu.model": self.cpu_model(),
            "memory.total_bytes": self.memory_total_bytes(),
            "memory.gtt_bytes": self.gtt_bytes(),
            "kernel.cmdline": dict(cmdline.params) if cmdline is not None else None,
            "gpu.gfx_targets": list(rocm.gfx_targets) if rocm is not None else None,
            "rocm.kfd_loaded": rocm.kfd_loaded if rocm is not None else None,
            "pci.devices": [
                {"slot": d.slot, "vendor_id": d.vendor_id, "device_id": d.device_id,
                 "driver": d.driver}
                for d in pci.devices
            ] if pci is not None else None,
            "iommu.groups": {str(k): v for k, v in iommu.groups.items()} if iommu is not None else None,
            "rdma.devices": self.rdma_devices(),
        }

    def rdma_devices(self) -> list[dict[str, Any]] | None:
        info = self.get("ibv_devinfo.txt")
        if info is None:
            return None
        return [
            {"name": dev.name, "port": port.port, "state": port.state,
             "link_layer": port.link_layer, "mtu": port.active_mtu}
            for dev in info.devices for port in dev.ports
        ]
