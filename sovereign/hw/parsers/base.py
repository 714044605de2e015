"""Shared pieces of the parsers: the result base model and text helpers.

Every parser is a pure function from the text a command printed to a model.
None of them raises on odd input: what cannot be read goes into `problems`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# CSI sequences (colours, cursor moves), OSC sequences and lone escapes.
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[@-Z\\-_]"  # two-character escapes
    r"|\x1b"
)
# Colour codes whose ESC was lost on the way (copied from a terminal, a log).
_ORPHAN_SGR_RE = re.compile(r"\[(?:\d{1,3};)*\d{1,3}m")
_STDERR_NOISE_RE = re.compile(r"^(?:pcilib|lspci|setpci): ")

_SIZE_RE = re.compile(
    r"^\s*([+-]?\d+(?:[.,]\d+)?)\s*([kKmMgGtTpPeE]?)(i?)([bB]?)(?:ytes?)?\s*$"
)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


class ParseResult(BaseModel):
    """What every parser returns: its own fields plus what it could not read."""

    model_config = ConfigDict(extra="forbid")

    problems: list[str] = []


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences, including colour codes that lost their ESC."""
    return _ORPHAN_SGR_RE.sub("", _ANSI_RE.sub("", text))


def clean_lines(text: str, *, expand_tabs: bool = True, keep_blank: bool = True) -> list[str]:
    """Split command output into lines fit for parsing.

    Normalises CRLF/CR, strips ANSI codes, NULs and trailing blanks, expands tabs
    (8 columns, like a terminal), and drops `--` separators from `grep -A/-B` and
    stray stderr lines such as `pcilib: ...`.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    out: list[str] = []
    for raw in strip_ansi(text).split("\n"):
        line = raw.expandtabs(8) if expand_tabs else raw
        line = line.rstrip()
        if line == "--" or _STDERR_NOISE_RE.match(line):
            continue
        if not line and not keep_blank:
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def parse_size(text: str, *, si_decimal: bool = True) -> int:
    """Bytes in a human size: "124Gi", "65536M", "126976 MiB", "4.0 TB", "512 GB", "0B".

    One letter (`M`, `G`) and `xiB` are binary, as `free`, the kernel and ggml
    print them. Two-letter SI units (`MB`, `GB`, `TB`) are decimal, as disks are
    sold, unless `si_decimal=False` (tools such as rocminfo and rpc-server write
    KB/MB for binary units). A bare number is bytes. Raises ValueError.
    """
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    number, prefix, binary, byte = m.groups()
    value = float(number.replace(",", "."))
    prefix = prefix.upper()
    if prefix == "" and binary:
        raise ValueError(f"not a size: {text!r}")
    base = 1000 if (byte and not binary and si_decimal and prefix) else 1024
    return round(value * base ** _POWERS[prefix])


def try_size(text: str, *, si_decimal: bool = True) -> int | None:
    """parse_size, or None when the text is not a size."""
    try:
        return parse_size(text, si_decimal=si_decimal)
    except (ValueError, OverflowError):
        return None


def try_int(text: str | None, base: int = 10) -> int | None:
    """An int, or None; accepts `0x` prefixes when base is 0."""
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def try_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def split_cmdline(cmdline: str) -> list[str]:
    """Split a kernel command line into words the way the kernel does.

    Whitespace separates words except inside double quotes; the quotes are
    dropped (`foo="a b"` and `"foo=a b"` both give `foo=a b`).
    """
    words: list[str] = []
    current: list[str] = []
    in_quote = False
    started = False
    for ch in cmdline:
        if ch == '"':
            in_quote = not in_quote
            started = True
            continue
        if ch.isspace() and not in_quote:
            if started:
                words.append("".join(current))
                current, started = [], False
            continue
        current.append(ch)
        started = True
    if started:
        words.append("".join(current))
    return words


def parse_kv_params(cmdline: str) -> dict[str, str | None]:
    """Kernel command line to {param: value}; a bare `param` maps to None.

    Quotes are handled as the kernel does; a repeated parameter keeps its last
    value; a lone `--` (the start of init's arguments) is skipped.
    """
    params: dict[str, str | None] = {}
    for word in split_cmdline(cmdline):
        if not word or word == "--":
            continue
        key, sep, value = word.partition("=")
        if not key:
            continue
        params.pop(key, None)  # last wins, and keeps the order of the last one
        params[key] = value if sep else None
    return params


def key_value(line: str, sep: str = ":") -> tuple[str, str] | None:
    """`Key: value` (stripped) or None when the line has no separator."""
    key, found, value = line.partition(sep)
    if not found or not key.strip():
        return None
    return key.strip(), value.strip()


def config_line(line: str, grep_prefix: re.Pattern[str], header: re.Pattern[str],
                files: list[str]) -> str | None:
    """One line of configuration files concatenated with `# PATH` header lines
    (or `grep -H` style `PATH:` prefixes), as the collector writes them.

    Records each file name in `files`; returns the line's content without its
    prefix, or None for a header, a blank line or a comment."""
    grep = grep_prefix.match(line)
    if grep:
        if grep.group(1) not in files:
            files.append(grep.group(1))
        line = grep.group(2)
    stripped = line.strip()
    found = header.match(stripped)
    if found:
        files.append(found.group(1))
        return None
    if not stripped or stripped.startswith("#"):
        return None
    return line
