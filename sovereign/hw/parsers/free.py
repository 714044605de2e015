"""free: memory totals from `free -b`, `free -h` or plain `free` (KiB)."""

from __future__ import annotations

from sovereign.hw.parsers.base import clean_lines, try_size
from sovereign.hw.parsers.meminfo import MemInfo

# A plain number this large cannot be KiB on any machine we meet (16 TiB of RAM):
# it is `free -b`. Smaller plain numbers are `free`'s default unit, KiB.
_BYTES_THRESHOLD = 2**34


def _value(token: str, plain_factor: int) -> int | None:
    if token.isdigit():
        return int(token) * plain_factor
    return try_size(token, si_decimal=False)


def parse(text: str) -> MemInfo:
    """Read `free` output; plain numbers are bytes when large (free -b), else KiB."""
    result = MemInfo()
    header: list[str] = []
    rows: dict[str, list[str]] = {}
    for number, line in enumerate(clean_lines(text), start=1):
        words = line.split()
        if not words:
            continue
        if words[0] == "total":
            header = [w.lower() for w in words]
        elif words[0].endswith(":"):
            rows[words[0][:-1].lower()] = words[1:]
        else:
            result.problems.append(f"line {number}: not a free(1) row: {line.strip()[:80]!r}")
    mem = rows.get("mem")
    if mem is None:
        if text.strip():
            result.problems.append("no 'Mem:' row")
        return result
    if not header:
        header = ["total", "used", "free", "shared", "buff/cache", "available"]
    plain = [t for t in mem if t.isdigit()]
    factor = 1 if plain and int(plain[0]) >= _BYTES_THRESHOLD else 1024
    mem_values = dict(zip(header, mem, strict=False))
    result.total_bytes = _value(mem_values.get("total", ""), factor)
    result.used_bytes = _value(mem_values.get("used", ""), factor)
    result.free_bytes = _value(mem_values.get("free", ""), factor)
    result.available_bytes = _value(mem_values.get("available", ""), factor)
    swap = rows.get("swap")
    if swap:
        result.swap_total_bytes = _value(swap[0], factor)
        if len(swap) > 2:
            result.swap_free_bytes = _value(swap[2], factor)
    if result.total_bytes is None:
        result.problems.append(f"unreadable Mem total {mem_values.get('total')!r}")
    return result
