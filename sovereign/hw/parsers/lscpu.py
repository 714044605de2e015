"""lscpu: the same facts as /proc/cpuinfo, from its `Key: value` table."""

from __future__ import annotations

from sovereign.hw.parsers.base import clean_lines, key_value, try_int
from sovereign.hw.parsers.cpuinfo import CpuInfo


def parse(text: str) -> CpuInfo:
    """Read `lscpu` output, whole or grepped (e.g. only its `Model name:` line)."""
    result = CpuInfo()
    fields: dict[str, str] = {}
    for number, line in enumerate(clean_lines(text), start=1):
        if not line.strip():
            continue
        kv = key_value(line)
        if kv is None:
            result.problems.append(f"line {number}: not a 'Key: value' line: {line.strip()[:80]!r}")
            continue
        fields.setdefault(kv[0].lower(), kv[1])  # hybrid CPUs repeat keys per cluster
    result.model = fields.get("model name") or None
    result.vendor = fields.get("vendor id") or None
    result.threads = try_int(fields.get("cpu(s)"))
    result.sockets = try_int(fields.get("socket(s)"))
    per_socket = try_int(fields.get("core(s) per socket"))
    if per_socket is not None:
        result.cores = per_socket * (result.sockets or 1)
    elif result.threads is not None and (tpc := try_int(fields.get("thread(s) per core"))):
        result.cores = result.threads // tpc
    result.flags = fields.get("flags", "").split()
    return result
