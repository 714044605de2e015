"""/etc/default/grub plus its grub.d drop-ins: the effective GRUB_CMDLINE_* values."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines, config_line, parse_kv_params
from sovereign.hw.parsers.shellvars import UnterminatedError, evaluate_word

_HEADER_RE = re.compile(r"^#\s*(/etc/default/grub(?:\.d/\S+)?)\s*$")
_GREP_PREFIX_RE = re.compile(r"^(/etc/default/grub(?:\.d/[^:\s]+)?):(.*)$")
_ASSIGN_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_MAX_CONTINUATION = 50


class GrubDefaults(ParseResult):
    cmdline_linux: dict[str, str | None] = {}
    cmdline_linux_default: dict[str, str | None] = {}
    # What the kernel receives: GRUB_CMDLINE_LINUX then _DEFAULT (the later wins).
    params: dict[str, str | None] = {}
    variables: dict[str, str] = {}
    files: list[str] = []


def parse(text: str) -> GrubDefaults:
    """Read /etc/default/grub and /etc/default/grub.d/*.cfg, concatenated in order.

    Each file may be preceded by a `# /etc/default/grub.d/NAME.cfg` header line
    (or carry a `grep -H` style `PATH:` prefix); text without headers is read as
    one file.
    """
    result = GrubDefaults()
    env: dict[str, str] = {}
    lines = clean_lines(text, expand_tabs=False)
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        i += 1
        content = config_line(line, _GREP_PREFIX_RE, _HEADER_RE, result.files)
        if content is None:
            continue
        line, stripped = content, content.strip()
        m = _ASSIGN_RE.match(line)
        if not m:
            result.problems.append(f"line {number}: shell line not evaluated: {stripped[:70]!r}")
            continue
        name, value = m.groups()
        for _ in range(_MAX_CONTINUATION):
            try:
                word, rest = evaluate_word(value, env)
                break
            except UnterminatedError:
                if i >= len(lines):
                    word, rest = None, ""
                    break
                value += "\n" + lines[i]
                i += 1
        else:
            word, rest = None, ""
        if word is None:
            result.problems.append(f"line {number}: unterminated quote in {name}")
            continue
        if rest and not rest.startswith("#") and rest != ";":
            result.problems.append(f"line {number}: ignored text after {name}=: {rest[:60]!r}")
        env[name] = word
    result.variables = dict(env)
    result.cmdline_linux = parse_kv_params(env.get("GRUB_CMDLINE_LINUX", ""))
    result.cmdline_linux_default = parse_kv_params(env.get("GRUB_CMDLINE_LINUX_DEFAULT", ""))
    result.params = parse_kv_params(
        env.get("GRUB_CMDLINE_LINUX", "") + " " + env.get("GRUB_CMDLINE_LINUX_DEFAULT", "")
    )
    return result
