"""`/opt/rocm/.info/version`: the installed ROCm release, e.g. `7.2.2` or `7.2.2-36`."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines

VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-.+~]\S*)?$")


class RocmVersion(ParseResult):
    version: str | None = None
    major: int | None = None
    minor: int | None = None
    patch: int | None = None


def parse(text: str) -> RocmVersion:
    result = RocmVersion()
    lines = [line.strip() for line in clean_lines(text) if line.strip()]
    for line in lines:
        match = VERSION.match(line)
        if match:
            result.version = line
            result.major, result.minor = int(match[1]), int(match[2])
            result.patch = int(match[3]) if match[3] else None
            return result
    if lines:
        result.problems.append(f"no ROCm version in {lines[0][:60]!r}")
    return result
