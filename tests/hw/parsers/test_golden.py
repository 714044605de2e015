"""Golden tests: real captures (tests/hw/fixtures, sources in SOURCES.md) against
the facts a person read in them (`NAME.facts.yaml` beside each `NAME.txt`).

A facts file is written by hand from the capture, never from the parser's
output. It is a YAML mapping: each key is a path into the model the parser
returns, each value what the capture says there, and the comment line above
each key says where in the capture that is written (`# L12 "Rate: 100"`).
Paths:

- `agents[1].name`, `params["ttm.pages_limit"]`, `groups[17]`: attributes
  (properties included), list items, mapping keys (quoted, or an integer);
- `len(PATH)`: how many items PATH holds;
- `PATH contains`: the string at PATH holds the value, or the list at PATH has
  an item that equals the value (or, for strings, holds it).

A fact the parser gets wrong fails the capture's test; so does a capture
without a facts file, and a fact without its comment.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sovereign.hw.parsers import PARSERS
from sovereign.hw.parsers.base import ParseResult

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/*.txt"))
BY_STEM = {name.rsplit(".", 1)[0]: name for name in PARSERS}

_LEN = re.compile(r"^len\((.+)\)$")
_CONTAINS = re.compile(r"^(.+?)\s+contains$")
_STEP = re.compile(r'\.([A-Za-z_]\w*)|\[(-?\d+)\]|\["([^"]*)"\]')


def facts_of(capture: Path) -> Path:
    return capture.with_name(capture.name.removesuffix(".txt") + ".facts.yaml")


def plain(value: Any) -> Any:
    """A model value as plain data: models as dicts, enums as their values."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def resolve(model: Any, path: str) -> Any:
    """The value at `path` (`a.b[0]["k"]`) in a parser's result."""
    value, pos, walked = model, 0, ""
    text = "." + path if path[:1] not in ("[", ".") else path
    while pos < len(text):
        step = _STEP.match(text, pos)
        if step is None:
            raise AssertionError(f"{path}: cannot read the path from {text[pos:]!r}")
        name, index, key = step.groups()
        walked += step.group(0)
        try:
            if name is not None:
                value = value[name] if isinstance(value, dict) else getattr(value, name)
            elif index is not None:
                value = value[int(index)]
            else:
                value = value[key]
        except (AttributeError, IndexError, KeyError, TypeError):
            raise AssertionError(f"{path}: the parser's result has no {walked.lstrip('.')}") from None
        pos = step.end()
    return value


def same(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(same(w, g) for w, g in zip(want, got, strict=True))
    return want == got


def check_fact(result: ParseResult, key: str, want: Any) -> None:
    if m := _LEN.match(key):
        got = resolve(result, m.group(1))
        assert same(want, len(got)), f"{key}: {len(got)} != {want!r} ({plain(got)!r})"
    elif m := _CONTAINS.match(key):
        got = plain(resolve(result, m.group(1)))
        if isinstance(got, str):
            found = isinstance(want, str) and want in got
        else:
            found = any(same(want, item) or (isinstance(item, str) and isinstance(want, str)
                                               and want in item) for item in got)
        assert found, f"{key}: {want!r} is not in {got!r}"
    else:
        got = plain(resolve(result, key))
        assert same(want, got), f"{key}: {got!r} != {want!r}"


def load_facts(path: Path) -> dict[str, Any]:
    facts = yaml.safe_load(path.read_text())
    assert isinstance(facts, dict) and facts, f"{path}: no facts (a mapping of path: value)"
    return facts


def test_every_parser_has_a_golden_capture():
    covered = {p.parent.name for p in CAPTURES}
    missing = sorted(set(BY_STEM) - covered)
    assert not missing, f"no golden capture for {missing}"


def test_every_capture_has_facts_and_a_source():
    sources = (FIXTURES / "SOURCES.md").read_text()
    for capture in CAPTURES:
        assert facts_of(capture).is_file(), (
            f"{capture} has no {facts_of(capture).name}: write down what the capture says")
        assert f"{capture.parent.name}/{capture.name}" in sources, f"{capture} not in SOURCES.md"


def test_every_facts_file_has_its_capture_and_says_where_each_fact_is():
    files = sorted(FIXTURES.glob("*/*.facts.yaml"))
    assert len(files) == len(CAPTURES)
    for path in files:
        capture = path.with_name(path.name.removesuffix(".facts.yaml") + ".txt")
        assert capture.is_file(), f"{path}: no capture {capture.name} beside it"
        previous = ""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            if not line[0].isspace() and not line.startswith(("#", "-")):
                assert previous.startswith("#"), (
                    f"{path}:{number}: the fact {line.split(':')[0]!r} has no comment line "
                    "saying where in the capture it is")
            previous = line


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(capture: Path):
    parser = PARSERS[BY_STEM[capture.parent.name]]
    result = parser(capture.read_text())
    assert isinstance(result, ParseResult)
    facts_file = facts_of(capture)
    assert facts_file.is_file(), f"{capture} has no {facts_file.name}"
    wrong = []
    for key, want in load_facts(facts_file).items():
        try:
            check_fact(result, str(key), want)
        except AssertionError as exc:
            wrong.append(str(exc).splitlines()[0])
    assert not wrong, f"{facts_file.name}: the parser disagrees with the capture:\n" + "\n".join(wrong)


def test_a_wrong_fact_fails():
    """The comparison itself can fail: a value, a count or an item that is not there."""
    result = PARSERS["free.txt"]((FIXTURES / "free" / "gtr9pro-free-h-124Gi.txt").read_text())
    check_fact(result, "total_bytes", 124 * 1024**3)
    for key, want in (("total_bytes", 124 * 1000**3), ("len(problems)", 1),
                      ("problems contains", "Mem"), ("no_such_field", 0), ("total_bytes", True)):
        with pytest.raises(AssertionError):
            check_fact(result, key, want)
