"""/proc/meminfo: total, available and swap memory."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines

_LINE_RE = re.compile(r"^\s*([A-Za-z0-9_()]+):\s*(\d+)\s*(kB|KB|B)?\s*$")
_FIELDS = {
    "MemTotal": "total_bytes",
    "MemAvailable": "available_bytes",
    "MemFree": "free_bytes",
    "SwapTotal": "swap_total_bytes",
    "SwapFree": "swap_free_bytes",
}


class MemInfo(ParseResult):
    total_bytes: int | None = None
    available_bytes: int | None = None
    free_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_free_bytes: int | None = None
    used_bytes: int | None = None


def parse(text: str) -> MemInfo:
    """Read `cat /proc/meminfo` (values in kB, which the kernel means as KiB)."""
    result = MemInfo()
    for number, line in enumerate(clean_lines(text), start=1):
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        if not m:
            result.problems.append(f"line {number}: not a meminfo line: {line.strip()[:80]!r}")
            continue
        name, value, unit = m.groups()
        if name in _FIELDS:
            setattr(result, _FIELDS[name], int(value) * (1024 if unit and unit != "B" else 1))
    if result.total_bytes is not None and result.available_bytes is not None:
        result.used_bytes = result.total_bytes - result.available_bytes
    return result
