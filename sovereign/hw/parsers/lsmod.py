"""lsmod: loaded kernel modules, their sizes and users."""

from __future__ import annotations

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines


class Module(BaseModel):
    size: int
    use_count: int
    used_by: list[str] = []


class Modules(ParseResult):
    modules: dict[str, Module] = {}


def parse(text: str) -> Modules:
    """Read `lsmod` output, whole or grepped."""
    result = Modules()
    for number, line in enumerate(clean_lines(text), start=1):
        words = line.split()
        if not words or words[:2] == ["Module", "Size"]:
            continue
        if len(words) < 3 or not words[1].isdigit() or not words[2].lstrip("-").isdigit():
            result.problems.append(f"line {number}: not an lsmod row: {line.strip()[:80]!r}")
            continue
        users = " ".join(words[3:])
        used_by = [u for u in users.replace("[permanent]", "").split(",") if u.strip()]
        result.modules[words[0]] = Module(
            size=int(words[1]), use_count=int(words[2]), used_by=[u.strip() for u in used_by]
        )
    return result
