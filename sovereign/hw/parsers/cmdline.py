"""/proc/cmdline: the running kernel's parameters."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines, parse_kv_params

# dmesg's copy of the line, should a bundle carry that instead.
_PREFIX_RE = re.compile(r"^(?:\[[^\]]*\]\s*)?(?:Kernel command line|Command line):\s*")


class KernelCmdline(ParseResult):
    raw: str = ""
    params: dict[str, str | None] = {}


def parse(text: str) -> KernelCmdline:
    """Read `cat /proc/cmdline` (one line; several are joined)."""
    lines = [_PREFIX_RE.sub("", line.strip()) for line in clean_lines(text) if line.strip()]
    raw = " ".join(lines)
    result = KernelCmdline(raw=raw, params=parse_kv_params(raw))
    if len(lines) > 1:
        result.problems.append(f"{len(lines)} lines where /proc/cmdline has one; joined them")
    return result
