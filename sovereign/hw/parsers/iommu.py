"""IOMMU groups: which PCI functions share a group (what VFIO must take together)."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines

_BDF = r"(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])"
_PATH_RE = re.compile(r"/sys/kernel/iommu_groups/(\d+)/devices/" + _BDF)
_GROUP_RE = re.compile(r"^\s*IOMMU\s+[Gg]roup\s+(\d+)\s*:?\s*(.*)$")
_SLOT_RE = re.compile(r"^\s*\[?" + _BDF + r"\]?\s*(.*)$")


class IommuGroups(ParseResult):
    # group -> full PCI addresses (domain included, lower case), sorted.
    groups: dict[int, list[str]] = {}
    # full PCI address -> the lspci description printed beside it, when there was one.
    descriptions: dict[str, str] = {}


def _bdf(domain: str | None, slot: str) -> str:
    return f"{(domain or '0000').lower()}:{slot.lower()}"


def parse(text: str) -> IommuGroups:
    """Read `find /sys/kernel/iommu_groups/ -type l`, or the usual listing scripts'
    `IOMMU Group 12 c5:00.0 Display controller [0380]: ...` lines (on one line, or
    a group header followed by its devices)."""
    groups: dict[int, set[str]] = {}
    result = IommuGroups()
    current: int | None = None
    for number, line in enumerate(clean_lines(text), start=1):
        if not line.strip():
            continue
        m = _PATH_RE.search(line)
        if m:
            groups.setdefault(int(m.group(1)), set()).add(_bdf(m.group(2), m.group(3)))
            continue
        m = _GROUP_RE.match(line)
        if m:
            current = int(m.group(1))
            groups.setdefault(current, set())
            rest = m.group(2)
            slot = _SLOT_RE.match(rest) if rest else None
            if slot:
                bdf = _bdf(slot.group(1), slot.group(2))
                groups[current].add(bdf)
                if slot.group(3).strip():
                    result.descriptions[bdf] = slot.group(3).strip()
            continue
        slot = _SLOT_RE.match(line)
        if slot and current is not None:
            bdf = _bdf(slot.group(1), slot.group(2))
            groups[current].add(bdf)
            if slot.group(3).strip():
                result.descriptions[bdf] = slot.group(3).strip()
            continue
        result.problems.append(f"line {number}: not an IOMMU group line: {line.strip()[:80]!r}")
    result.groups = {g: sorted(groups[g]) for g in sorted(groups)}
    return result
