"""ethtool IFACE: link speed, duplex and carrier (MTU when `ip link` lines are mixed in)."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_SETTINGS_RE = re.compile(r"^Settings for (\S+):$")
_SPEED_RE = re.compile(r"^(\d+)\s*Mb/s$")
_IP_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<[^>]*>.*\bmtu (\d+)")


class EthtoolInterface(BaseModel):
    interface: str
    speed_mbps: int | None = None
    duplex: str | None = None
    link_detected: bool | None = None
    port: str | None = None
    auto_negotiation: bool | None = None
    mtu: int | None = None


class EthtoolInfo(ParseResult):
    interfaces: list[EthtoolInterface] = []
    # The first interface's values, for bundles that hold one interface.
    interface: str | None = None
    speed_mbps: int | None = None
    duplex: str | None = None
    link_detected: bool | None = None
    mtu: int | None = None

    def get(self, name: str) -> EthtoolInterface | None:
        return next((i for i in self.interfaces if i.interface == name), None)


def parse(text: str) -> EthtoolInfo:
    """Read `ethtool IFACE` output, one or several interfaces concatenated."""
    result = EthtoolInfo()
    current: EthtoolInterface | None = None
    mtus: dict[str, int] = {}
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if m := _SETTINGS_RE.match(stripped):
            current = EthtoolInterface(interface=m.group(1))
            result.interfaces.append(current)
            continue
        if m := _IP_LINK_RE.match(stripped):
            mtus[m.group(1)] = int(m.group(2))
            continue
        if current is None:
            continue
        key, _, value = stripped.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Speed":
            m = _SPEED_RE.match(value)
            current.speed_mbps = int(m.group(1)) if m else None
        elif key == "Duplex":
            current.duplex = None if value.lower().startswith("unknown") else value
        elif key == "Link detected":
            current.link_detected = value == "yes"
        elif key == "Port":
            current.port = value
        elif key == "Auto-negotiation":
            current.auto_negotiation = value == "on"
    for iface in result.interfaces:
        iface.mtu = mtus.get(iface.interface)
    if result.interfaces:
        first = result.interfaces[0]
        result.interface, result.speed_mbps = first.interface, first.speed_mbps
        result.duplex, result.link_detected, result.mtu = (
            first.duplex, first.link_detected, first.mtu)
    return result
