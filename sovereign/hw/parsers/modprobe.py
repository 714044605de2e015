"""/etc/modprobe.d/*.conf: module options and blacklists."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines, config_line, parse_kv_params

_HEADER_RE = re.compile(r"^#\s*(/\S+\.conf)\s*$")
_GREP_PREFIX_RE = re.compile(r"^(/\S+?\.conf):(.*)$")
_KNOWN = {"options", "blacklist", "install", "remove", "alias", "softdep", "weakdep"}


class ModprobeConfig(ParseResult):
    # module -> param -> value (None for a bare flag); module names use `_`.
    options: dict[str, dict[str, str | None]] = {}
    blacklist: list[str] = []
    # `install MOD /bin/false` (or /bin/true) also keeps a module from loading.
    install: dict[str, str] = {}
    aliases: dict[str, str] = {}
    softdeps: dict[str, str] = {}
    files: list[str] = []


def _module(name: str) -> str:
    return name.replace("-", "_")


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """Join backslash continuations; keep the first line number of each."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, line in enumerate(lines, start=1):
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        out.append((start, buffer + line))
        buffer = ""
    if buffer:
        out.append((start, buffer))
    return out


def parse(text: str) -> ModprobeConfig:
    """Read /etc/modprobe.d/*.conf concatenated, each after a `# PATH` header line."""
    result = ModprobeConfig()
    for number, line in _logical_lines(clean_lines(text)):
        content = config_line(line, _GREP_PREFIX_RE, _HEADER_RE, result.files)
        if content is None:
            continue
        stripped = content.strip()
        words = stripped.split(None, 2)
        directive = words[0]
        if directive not in _KNOWN or len(words) < 2:
            result.problems.append(f"line {number}: unrecognised modprobe line: {stripped[:80]!r}")
            continue
        module = _module(words[1])
        rest = words[2] if len(words) > 2 else ""
        if directive == "options":
            result.options.setdefault(module, {}).update(parse_kv_params(rest))
        elif directive == "blacklist":
            if module not in result.blacklist:
                result.blacklist.append(module)
        elif directive == "install":
            result.install[module] = rest
        elif directive == "alias":
            result.aliases[words[1]] = rest
        elif directive == "softdep":
            result.softdeps[module] = rest
    return result
