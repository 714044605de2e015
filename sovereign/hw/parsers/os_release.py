"""`/etc/os-release` (os-release(5)): KEY=value lines, values optionally quoted."""

from __future__ import annotations

import shlex

from sovereign.hw.parsers.base import ParseResult, clean_lines


class OsRelease(ParseResult):
    id: str | None = None
    version_id: str | None = None
    pretty_name: str | None = None
    fields: dict[str, str] = {}


def parse(text: str) -> OsRelease:
    result = OsRelease()
    for number, line in enumerate(clean_lines(text), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            result.problems.append(f"line {number}: not KEY=value: {line[:60]!r}")
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("'\"")]
        result.fields[key] = " ".join(words)
    result.id = result.fields.get("ID")
    result.version_id = result.fields.get("VERSION_ID")
    result.pretty_name = result.fields.get("PRETTY_NAME")
    return result
