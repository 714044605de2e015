"""lspci -nnk (or -nn): PCI functions, their ids and the driver bound to each."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_HEADER_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{4,8}):)?(?P<slot>[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+"
    r"(?P<class_name>[^\[:]+?)(?:\s+\[(?P<class_id>[0-9a-fA-F]{4})\])?:\s*(?P<rest>.*)$"
)
_IDS_RE = re.compile(r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]")
_REV_RE = re.compile(r"\(rev ([0-9a-fA-F]{2})\)")
_PROG_IF_RE = re.compile(r"\(prog-if [^)]*\)")


class PciDevice(BaseModel):
    slot: str  # as printed: `c5:00.0`, or `0000:c5:00.0` with -D
    bdf: str  # always with its domain: `0000:c5:00.0`
    class_name: str
    class_id: str | None = None
    vendor_id: str | None = None
    device_id: str | None = None
    name: str = ""
    rev: str | None = None
    subsystem: str | None = None
    subsystem_vendor_id: str | None = None
    subsystem_device_id: str | None = None
    driver: str | None = None
    modules: list[str] = []


class PciDevices(ParseResult):
    devices: list[PciDevice] = []

    def by_ids(self, vendor_id: str, device_id: str | None = None) -> list[PciDevice]:
        """The functions with this vendor (and device) id, lower-case hex."""
        return [
            d for d in self.devices
            if d.vendor_id == vendor_id.lower()
            and (device_id is None or d.device_id == device_id.lower())
        ]


def _split_ids(text: str) -> tuple[str, str | None, str | None]:
    """(name, vendor id, device id) of `Name [vvvv:dddd] (rev xx)`."""
    text = _PROG_IF_RE.sub("", _REV_RE.sub("", text)).strip()
    matches = list(_IDS_RE.finditer(text))
    if not matches:
        return text, None, None
    last = matches[-1]
    name = (text[: last.start()] + text[last.end():]).strip()
    return name, last.group(1).lower(), last.group(2).lower()


def parse(text: str) -> PciDevices:
    """Read `lspci -nnk`, `lspci -nn`, `lspci -k` or plain `lspci` (also -D, grepped)."""
    result = PciDevices()
    current: PciDevice | None = None
    for number, line in enumerate(clean_lines(text), start=1):
        if not line.strip():
            continue
        if not line[0].isspace():
            m = _HEADER_RE.match(line)
            if not m:
                result.problems.append(f"line {number}: not an lspci line: {line.strip()[:80]!r}")
                current = None
                continue
            name, vendor, device = _split_ids(m.group("rest"))
            rev = _REV_RE.search(m.group("rest"))
            domain = (m.group("domain") or "0000").lower()
            slot = m.group("slot").lower()
            current = PciDevice(
                slot=(f"{domain}:{slot}" if m.group("domain") else slot),
                bdf=f"{domain}:{slot}",
                class_name=m.group("class_name").strip(),
                class_id=(m.group("class_id") or "").lower() or None,
                vendor_id=vendor,
                device_id=device,
                name=name,
                rev=rev.group(1).lower() if rev else None,
            )
            result.devices.append(current)
            continue
        if current is None:
            continue
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Subsystem":
            current.subsystem, current.subsystem_vendor_id, current.subsystem_device_id = (
                _split_ids(value)
            )
        elif key == "Kernel driver in use":
            current.driver = value or None
        elif key == "Kernel modules":
            current.modules = [m.strip() for m in value.split(",") if m.strip()]
        # other indented lines (lspci -v) carry nothing we use
    return result
