"""nvme list: the NVMe namespaces, their models, serials and sizes."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_size

_USAGE_RE = re.compile(r"([\d.]+)\s*([kKMGTP]?i?B)\s*/\s*([\d.]+)\s*([kKMGTP]?i?B)")


class NvmeDevice(BaseModel):
    node: str
    model: str | None = None
    serial: str | None = None
    size_bytes: int | None = None
    used_bytes: int | None = None
    namespace: str | None = None
    firmware: str | None = None


class NvmeDevices(ParseResult):
    devices: list[NvmeDevice] = []


def _columns(dashes: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]


def _cell(line: str, span: tuple[int, int], next_start: int | None) -> str:
    return line[span[0]: next_start if next_start is not None else len(line)].strip()


def _parse_table(lines: list[str], result: NvmeDevices) -> None:
    header_at = next((i for i, line in enumerate(lines)
                      if line.split()[:1] in (["Node"], ["Device"])), None)
    if header_at is None or header_at + 1 >= len(lines):
        if any(line.strip() for line in lines):
            result.problems.append("no 'Node ... Model ...' table header")
        return
    spans = _columns(lines[header_at + 1])
    header = lines[header_at]
    names = [_cell(header, s, spans[i + 1][0] if i + 1 < len(spans) else None)
             for i, s in enumerate(spans)]
    for number, line in enumerate(lines[header_at + 2:], start=header_at + 3):
        if not line.strip():
            continue
        if not line.lstrip().startswith(("/dev/", "nvme")):
            result.problems.append(f"line {number}: not an nvme list row: {line.strip()[:80]!r}")
            continue
        cells = {n: _cell(line, s, spans[i + 1][0] if i + 1 < len(spans) else None)
                 for i, (n, s) in enumerate(zip(names, spans, strict=True))}
        usage = _USAGE_RE.search(cells.get("Usage", ""))
        result.devices.append(NvmeDevice(
            node=cells.get("Node") or cells.get("Device") or line.split()[0],
            model=cells.get("Model") or None,
            serial=cells.get("SN") or None,
            namespace=cells.get("Namespace") or cells.get("NSID") or None,
            firmware=cells.get("FW Rev") or None,
            used_bytes=try_size(usage.group(1) + usage.group(2)) if usage else None,
            size_bytes=try_size(usage.group(3) + usage.group(4)) if usage else None,
        ))


def _walk_json(data: Any, found: list[dict[str, Any]]) -> None:
    if isinstance(data, dict):
        if "DevicePath" in data or ("NameSpace" in data and "PhysicalSize" in data):
            found.append(data)
        for value in data.values():
            _walk_json(value, found)
    elif isinstance(data, list):
        for item in data:
            _walk_json(item, found)


def _size(value: Any, result: NvmeDevices, node: str, field: str) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            result.problems.append(f"{node}: negative {field} {value} (an nvme-cli overflow)")
            return None
        return value
    return None


def _parse_json(text: str, result: NvmeDevices) -> None:
    try:
        data = json.loads(text)
    except ValueError as exc:
        result.problems.append(f"invalid JSON: {exc}")
        return
    found: list[dict[str, Any]] = []
    _walk_json(data, found)
    for entry in found:
        node = str(entry.get("DevicePath") or entry.get("NameSpace") or "")
        result.devices.append(NvmeDevice(
            node=node,
            model=entry.get("ModelNumber"),
            serial=entry.get("SerialNumber"),
            firmware=entry.get("Firmware"),
            namespace=str(entry["NameSpace"]) if "NameSpace" in entry else None,
            size_bytes=_size(entry.get("PhysicalSize"), result, node, "PhysicalSize"),
            used_bytes=_size(entry.get("UsedBytes"), result, node, "UsedBytes"),
        ))


def parse(text: str) -> NvmeDevices:
    """Read `nvme list` (the table, any nvme-cli 1.x/2.x layout) or `nvme list -o json`."""
    result = NvmeDevices()
    lines = clean_lines(text, keep_blank=False)
    if text.lstrip().startswith(("{", "[")):
        _parse_json("\n".join(lines), result)
    else:
        _parse_table(lines, result)
    return result
