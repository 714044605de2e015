"""/dev/accel: the compute accelerator nodes (the NPU is /dev/accel/accel0)."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines

_MISSING_RE = re.compile(r"cannot access '?([^':]+)'?: No such file or directory")
_LONG_RE = re.compile(
    r"^[bcdlps-][rwxsStT-]{9}[.+@]?\s+\d+\s+\S+\s+\S+\s+(?:\d+,\s*)?\d+\s+.*\s(\S+)$"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/-]+$")


class AccelDevices(ParseResult):
    nodes: list[str] = []
    missing: bool = False  # `ls` said the directory does not exist
    path: str | None = None


def parse(text: str) -> AccelDevices:
    """Read `ls -l /dev/accel` or `ls /dev/accel` (an absent directory is no error)."""
    result = AccelDevices()
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("total "):
            continue
        if m := _MISSING_RE.search(stripped):
            result.missing, result.path = True, m.group(1)
            continue
        if stripped.endswith(":") and stripped.startswith("/"):
            result.path = stripped[:-1]
            continue
        if m := _LONG_RE.match(stripped):
            result.nodes.append(m.group(1).rsplit("/", 1)[-1])
            continue
        words = stripped.split()
        if all(_NAME_RE.match(w) for w in words):
            result.nodes.extend(w.rsplit("/", 1)[-1] for w in words)
            continue
        result.problems.append(f"line {number}: not an ls line: {stripped[:80]!r}")
    return result
