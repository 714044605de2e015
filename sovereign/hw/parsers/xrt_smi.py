"""xrt-smi examine: the XRT version, the NPU firmware and the NPU devices."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_BDF_RE = re.compile(r"\[?([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\]?")


class XrtDevice(BaseModel):
    bdf: str
    name: str | None = None


class XrtInfo(ParseResult):
    xrt_version: str | None = None
    npu_firmware: str | None = None
    amdxdna_version: str | None = None
    devices: list[XrtDevice] = []
    system: dict[str, str] = {}
    error: str | None = None


def parse(text: str) -> XrtInfo:
    """Read `xrt-smi examine` (XRT 2.17 to 2.20 layouts)."""
    result = XrtInfo()
    section = ""
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if not line[0].isspace() and not stripped.startswith("|") and not _BDF_RE.match(stripped):
            if stripped.upper().startswith(("ERROR", "WARNING")) or "not found" in stripped.lower():
                result.error = result.error or stripped
            section = stripped
            continue
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if cells and (m := _BDF_RE.fullmatch(cells[0])):
                result.devices.append(XrtDevice(bdf=m.group(1).lower(),
                                                name=cells[1] if len(cells) > 1 else None))
            continue
        if (m := _BDF_RE.match(stripped)) and section.startswith("Device"):
            rest = stripped[m.end():].strip().lstrip(":").strip()
            result.devices.append(XrtDevice(bdf=m.group(1).lower(), name=rest or None))
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if section == "XRT" and key == "Version":
            result.xrt_version = value or None
        elif key in ("NPU Firmware Version", "Firmware Version") and value:
            result.npu_firmware = value
        elif section == "XRT" and key == "amdxdna":
            # `VERSION, HASH`; XRT prints `unknown, unknown` when it cannot read them.
            version = value.split(",")[0].strip()
            result.amdxdna_version = None if version.lower() in ("", "unknown") else version
        elif section.startswith("System"):
            result.system[key] = value
    return result
