"""/proc/cpuinfo: the CPU model, thread/core/socket counts and flags."""

from __future__ import annotations

from sovereign.hw.parsers.base import ParseResult, clean_lines, key_value, try_int


class CpuInfo(ParseResult):
    model: str | None = None
    vendor: str | None = None
    threads: int | None = None
    cores: int | None = None
    sockets: int | None = None
    flags: list[str] = []


def parse(text: str) -> CpuInfo:
    """Read `cat /proc/cpuinfo` (or a grep of it, e.g. its `model name` lines)."""
    result = CpuInfo()
    processors = 0
    physical_ids: set[str] = set()
    core_ids: set[tuple[str, str]] = set()
    cores_per_socket: int | None = None
    for number, line in enumerate(clean_lines(text), start=1):
        if not line.strip():
            continue
        kv = key_value(line)
        if kv is None:
            result.problems.append(f"line {number}: not 'key : value': {line.strip()[:70]!r}")
            continue
        key, value = kv
        key = key.lower()
        if key == "processor":
            processors += 1
        elif key == "model name" and result.model is None:
            result.model = value or None
        elif key == "vendor_id" and result.vendor is None:
            result.vendor = value or None
        elif key == "physical id":
            physical_ids.add(value)
        elif key == "core id":
            core_ids.add((sorted(physical_ids)[-1] if physical_ids else "0", value))
        elif key == "cpu cores" and cores_per_socket is None:
            cores_per_socket = try_int(value)
        elif key == "flags" and not result.flags:
            result.flags = value.split()
    result.threads = processors or None
    result.sockets = len(physical_ids) or None
    if core_ids:
        result.cores = len(core_ids)
    elif cores_per_socket is not None:
        result.cores = cores_per_socket * (result.sockets or 1)
    return result
