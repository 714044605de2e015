"""rdma link (iproute2): each RDMA port's state and the netdev behind it."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_LINK_RE = re.compile(r"^(?:link\s+|\d+/\d+:\s+)?([^\s/]+)/(\d+):?\s+(.*)$")


class RdmaLink(BaseModel):
    device: str
    port: int
    state: str | None = None
    physical_state: str | None = None
    netdev: str | None = None
    netdev_index: int | None = None


class RdmaLinks(ParseResult):
    links: list[RdmaLink] = []


def parse(text: str) -> RdmaLinks:
    """Read `rdma link show` / `rdma link` (old `1/1: mlx5_0/1: ...` form too)."""
    result = RdmaLinks()
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        m = _LINK_RE.match(stripped)
        if not m:
            result.problems.append(f"line {number}: not an rdma link line: {stripped[:80]!r}")
            continue
        words = m.group(3).split()
        attrs = dict(zip(words[::2], words[1::2], strict=False))
        link = RdmaLink(device=m.group(1), port=int(m.group(2)), state=attrs.get("state"),
                        physical_state=attrs.get("physical_state"), netdev=attrs.get("netdev"))
        if (index := attrs.get("netdev_index")) and index.isdigit():
            link.netdev_index = int(index)
        result.links.append(link)
    return result
