"""/sys/class/drm/card*/device/mem_info_*: the GTT and VRAM pools amdgpu set up."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_LINE_RE = re.compile(r"^(?:/sys/class/drm/)?(card\d+)/device/(\w+):\s*(\d+)\s*$")
_FIELDS = {
    "mem_info_gtt_total": "gtt_total_bytes", "mem_info_gtt_used": "gtt_used_bytes",
    "mem_info_vram_total": "vram_total_bytes", "mem_info_vram_used": "vram_used_bytes",
    "mem_info_vis_vram_total": "vis_vram_total_bytes",
}


class DrmCard(BaseModel):
    gtt_total_bytes: int | None = None
    gtt_used_bytes: int | None = None
    vram_total_bytes: int | None = None
    vram_used_bytes: int | None = None
    vis_vram_total_bytes: int | None = None
    other: dict[str, int] = {}


class DrmMemInfo(ParseResult):
    cards: dict[str, DrmCard] = {}


def parse(text: str) -> DrmMemInfo:
    """Read `grep -H . /sys/class/drm/card*/device/mem_info_*` output."""
    result = DrmMemInfo()
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        m = _LINE_RE.match(stripped)
        if not m:
            result.problems.append(f"line {number}: not a sysfs value line: {stripped[:80]!r}")
            continue
        card, name, value = m.group(1), m.group(2), int(m.group(3))
        entry = result.cards.setdefault(card, DrmCard())
        if name in _FIELDS:
            setattr(entry, _FIELDS[name], value)
        else:
            entry.other[name] = value
    return result
