"""mst status [-v] (Mellanox Firmware Tools): MST modules and the devices they expose."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_MODULE_RE = re.compile(r"^MST (PCI|PCI configuration) module (is not loaded|loaded)")
_VERBOSE_ROW_RE = re.compile(
    r"^(\S+)\s+(/dev/mst/\S+|NA)\s+([0-9a-fA-F:.]+)\s+(\S+)\s+(\S+)\s+(-?\d+)$"
)
_PLAIN_DEV_RE = re.compile(r"^(/dev/mst/\S+)\s+-\s+(.*)$")
_BDF_RE = re.compile(r"domain:bus:dev\.fn=(\S+)")


class MstDevice(BaseModel):
    path: str | None = None
    device_type: str | None = None  # BlueField2(rev:1), ConnectX6DX(rev:0)
    bdf: str | None = None
    rdma: str | None = None
    netdevs: list[str] = []
    description: str | None = None


class MstStatus(ParseResult):
    pci_module_loaded: bool | None = None
    pci_conf_module_loaded: bool | None = None
    devices: list[MstDevice] = []

    @property
    def bluefield(self) -> list[MstDevice]:
        return [d for d in self.devices if (d.device_type or "").startswith("BlueField")
                or "mt4168" in (d.path or "")]


def parse(text: str) -> MstStatus:
    """Read `mst status` or `mst status -v`."""
    result = MstStatus()
    last: MstDevice | None = None
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped or set(stripped) <= {"-"} or stripped.endswith(":"):
            continue
        if stripped.startswith("DEVICE_TYPE"):
            continue
        if m := _MODULE_RE.match(stripped):
            loaded = m.group(2) == "loaded"
            if m.group(1) == "PCI":
                result.pci_module_loaded = loaded
            else:
                result.pci_conf_module_loaded = loaded
            continue
        if m := _VERBOSE_ROW_RE.match(stripped):
            net = [n.removeprefix("net-") for n in m.group(5).split(",") if n not in ("NA", "-")]
            last = MstDevice(device_type=m.group(1),
                             path=None if m.group(2) == "NA" else m.group(2),
                             bdf=m.group(3).lower(),
                             rdma=None if m.group(4) == "NA" else m.group(4),
                             netdevs=net)
            result.devices.append(last)
            continue
        if m := _PLAIN_DEV_RE.match(stripped):
            last = MstDevice(path=m.group(1), description=m.group(2).strip())
            result.devices.append(last)
            continue
        if (m := _BDF_RE.search(stripped)) and last is not None:
            last.bdf = m.group(1).lower()
    return result
