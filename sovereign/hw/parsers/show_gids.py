"""show_gids (MLNX OFED / DOCA): the GID table, with RoCE version and netdev."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class GidEntry(BaseModel):
    dev: str
    port: int
    index: int
    gid: str
    ipv4: str | None = None
    ver: Literal["v1", "v2"] | None = None
    netdev: str | None = None


class ShowGids(ParseResult):
    entries: list[GidEntry] = []
    n_gids_found: int | None = None

    def ipv4_v2(self) -> list[GidEntry]:
        """The RoCE v2 GIDs that carry an IPv4 address (what back-to-back RoCE uses)."""
        return [e for e in self.entries if e.ver == "v2" and e.ipv4]


def parse(text: str) -> ShowGids:
    """Read `show_gids` (tab or space aligned; empty IPv4/netdev columns allowed)."""
    result = ShowGids()
    for number, line in enumerate(clean_lines(text), start=1):
        words = line.split()
        if not words or words[0] in ("DEV", "---"):
            continue
        if words[0].startswith("n_gids_found="):
            count = words[0].split("=", 1)[1]
            result.n_gids_found = int(count) if count.isdigit() else None
            continue
        if (len(words) < 4 or not words[1].isdigit() or not words[2].isdigit()
                or ":" not in words[3]):
            result.problems.append(f"line {number}: not a show_gids row: {line.strip()[:80]!r}")
            continue
        rest = words[4:]
        ipv4 = rest.pop(0) if rest and _IPV4_RE.match(rest[0]) else None
        ver = rest.pop(0) if rest and rest[0] in ("v1", "v2") else None
        netdev = rest.pop(0) if rest else None
        result.entries.append(GidEntry(dev=words[0], port=int(words[1]), index=int(words[2]),
                                       gid=words[3], ipv4=ipv4, ver=ver, netdev=netdev))  # type: ignore[arg-type]
    return result
