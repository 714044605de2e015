"""ibv_devinfo: RDMA devices, firmware, GUIDs and per-port state and MTU."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_int

_PORT_RE = re.compile(r"^port:\s*(\d+)$")
_NUMBER_RE = re.compile(r"^(\d+)")


class IbvPort(BaseModel):
    port: int
    state: str | None = None  # PORT_ACTIVE, PORT_DOWN, ...
    phys_state: str | None = None  # LINK_UP, DISABLED, ... (with -v)
    active_mtu: int | None = None
    max_mtu: int | None = None
    link_layer: str | None = None  # Ethernet (RoCE) or InfiniBand
    gids: list[str] = []


class IbvDevice(BaseModel):
    name: str
    transport: str | None = None
    fw_ver: str | None = None
    node_guid: str | None = None
    sys_image_guid: str | None = None
    vendor_part_id: int | None = None
    board_id: str | None = None
    ports: list[IbvPort] = []


class IbvDevices(ParseResult):
    devices: list[IbvDevice] = []
    error: str | None = None


def _word(value: str) -> str:
    """`PORT_ACTIVE (4)` -> `PORT_ACTIVE`."""
    return value.split(" (")[0].strip()


def parse(text: str) -> IbvDevices:
    """Read `ibv_devinfo` or `ibv_devinfo -v`."""
    result = IbvDevices()
    device: IbvDevice | None = None
    port: IbvPort | None = None
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if "No IB devices found" in stripped or stripped.startswith("Failed to"):
            result.error = stripped
            continue
        key, sep, value = stripped.partition(":")
        key, value = key.strip(), value.strip()
        if key == "hca_id":
            device, port = IbvDevice(name=value), None
            result.devices.append(device)
            continue
        if device is None or not sep:
            continue
        if m := _PORT_RE.match(stripped.replace("\t", " ")):
            port = IbvPort(port=int(m.group(1)))
            device.ports.append(port)
            continue
        if port is not None:
            if key == "state":
                port.state = _word(value)
            elif key == "phys_state":
                port.phys_state = _word(value)
            elif key in ("active_mtu", "max_mtu"):
                m = _NUMBER_RE.match(value)
                setattr(port, key, int(m.group(1)) if m else None)
            elif key == "link_layer":
                port.link_layer = value
            elif key.startswith("GID["):
                port.gids.append(value.split(",")[0].strip())
            continue
        if key == "transport":
            device.transport = _word(value)
        elif key in ("fw_ver", "node_guid", "sys_image_guid", "board_id"):
            setattr(device, key, value)
        elif key == "vendor_part_id":
            device.vendor_part_id = try_int(value)
    return result
