"""ibv_devices: RDMA device names and node GUIDs."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_ROW_RE = re.compile(r"^(\S+)\s+([0-9a-fA-F]{16})$")


class IbvDeviceGuid(BaseModel):
    name: str
    node_guid: str


class IbvDeviceList(ParseResult):
    devices: list[IbvDeviceGuid] = []


def parse(text: str) -> IbvDeviceList:
    """Read `ibv_devices`."""
    result = IbvDeviceList()
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("device", "------")):
            continue
        if m := _ROW_RE.match(stripped):
            result.devices.append(IbvDeviceGuid(name=m.group(1), node_guid=m.group(2).lower()))
        else:
            result.problems.append(f"line {number}: not an ibv_devices row: {stripped[:80]!r}")
    return result
