"""A small evaluator for the shell assignments found in /etc/default files.

It understands what GRUB drop-ins write, `VAR="..."`, `VAR='...'`,
`VAR="$VAR ..."`, `VAR="${VAR:+$VAR }..."` and `${VAR:-default}`, evaluated in
order; anything else (commands, `if`, `$(...)`) is left as it is written.
"""

from __future__ import annotations

import re

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnterminatedError(ValueError):
    """A quote or `${` opened on this line is not closed on it."""


def _brace_end(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start`."""
    depth = 1
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise UnterminatedError("unterminated ${")


def _expand_brace(body: str, env: dict[str, str]) -> str:
    m = _NAME_RE.match(body)
    if not m:
        return "${" + body + "}"
    name, rest = m.group(0), body[m.end():]
    value = env.get(name)
    if not rest:
        return value or ""
    for op in (":+", ":-", "+", "-", ":=", "="):
        if rest.startswith(op):
            word = expand(rest[len(op):], env)
            is_set = value is not None and (value != "" or ":" not in op)
            if op.endswith("+"):
                return word if is_set else ""
            if op.endswith("-"):
                return value if is_set and value is not None else word
            if not is_set:
                env[name] = word
                return word
            return value or ""
    return "${" + body + "}"


def expand(text: str, env: dict[str, str]) -> str:
    """Expand `$VAR`, `${VAR}` and `${VAR:+word}`-style forms in double-quoted text."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '$"\\`':
            out.append(text[i + 1])
            i += 2
        elif text.startswith("${", i):
            end = _brace_end(text, i + 2)
            out.append(_expand_brace(text[i + 2:end], env))
            i = end + 1
        elif ch == "$" and (m := _NAME_RE.match(text, i + 1)):
            out.append(env.get(m.group(0), ""))
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def evaluate_word(value: str, env: dict[str, str]) -> tuple[str, str]:
    """Evaluate one shell word; return (its value, what follows it on the line).

    Raises UnterminatedError when a quote is still open at the end of `value`.
    """
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "'":
            end = value.find("'", i + 1)
            if end < 0:
                raise UnterminatedError("unterminated '")
            out.append(value[i + 1:end])
            i = end + 1
        elif ch == '"':
            j = i + 1
            while j < len(value) and value[j] != '"':
                j += 2 if value[j] == "\\" else 1
            if j >= len(value):
                raise UnterminatedError('unterminated "')
            out.append(expand(value[i + 1:j], env))
            i = j + 1
        elif ch == "`":  # command substitution: kept as written, never run
            end = value.find("`", i + 1)
            if end < 0:
                raise UnterminatedError("unterminated `")
            out.append(value[i:end + 1])
            i = end + 1
        elif ch.isspace() or ch == ";":
            break
        else:
            j = i
            while j < len(value) and not value[j].isspace() and value[j] not in "'\";`":
                j += 1
            out.append(expand(value[i:j], env))
            i = j
    return "".join(out), value[i:].strip()
