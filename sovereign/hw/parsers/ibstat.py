"""ibstat: channel adapters and their ports (state, rate, link layer)."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_float

_CA_RE = re.compile(r"^CA '([^']+)'")
_PORT_RE = re.compile(r"^Port (\d+):$")


class IbstatPort(BaseModel):
    port: int
    state: str | None = None
    physical_state: str | None = None
    rate_gbps: float | None = None
    link_layer: str | None = None
    port_guid: str | None = None


class IbstatDevice(BaseModel):
    name: str
    ca_type: str | None = None
    fw: str | None = None
    hw: str | None = None
    node_guid: str | None = None
    ports: list[IbstatPort] = []


class Ibstat(ParseResult):
    devices: list[IbstatDevice] = []


def parse(text: str) -> Ibstat:
    """Read `ibstat` (tabs or spaces)."""
    result = Ibstat()
    device: IbstatDevice | None = None
    port: IbstatPort | None = None
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if m := _CA_RE.match(stripped):
            device, port = IbstatDevice(name=m.group(1)), None
            result.devices.append(device)
            continue
        if device is None or not line[0].isspace():
            # ibstat indents every field of a CA; a line at the margin that is no
            # `CA '...'` header is its own (an `ibpanic: ... failed` error).
            result.problems.append(f"line {number}: outside any CA block: {stripped[:120]!r}")
            continue
        if m := _PORT_RE.match(stripped):
            port = IbstatPort(port=int(m.group(1)))
            device.ports.append(port)
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            result.problems.append(f"line {number}: not a 'Key: value' line: {stripped[:80]!r}")
            continue
        key, value = key.strip(), value.strip()
        if port is not None and line.startswith(" " * 9):
            if key == "State":
                port.state = value
            elif key == "Physical state":
                port.physical_state = value
            elif key == "Rate":
                port.rate_gbps = try_float(value)
            elif key == "Link layer":
                port.link_layer = value
            elif key == "Port GUID":
                port.port_guid = value
            continue
        if key == "CA type":
            device.ca_type = value
        elif key == "Firmware version":
            device.fw = value
        elif key == "Hardware version":
            device.hw = value
        elif key == "Node GUID":
            device.node_guid = value
    return result
