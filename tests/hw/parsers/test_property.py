"""No input crashes a parser: every one returns a ParseResult, whatever the text."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovereign.hw.parsers import PARSERS
from sovereign.hw.parsers.base import ParseResult

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_LINES = sorted({
    line
    for path in FIXTURES.glob("*/*.txt")
    for line in path.read_text().splitlines()
})
NOISE = ["\x1b[31m", "\x1b[0m", "[0m", "\r", "\t", "\x00", "--", "pcilib: x", "±", "°C",
         "{", "}", "[", "\"", "'", "${", "`", "|", ":", "=", "\\", "\ufffd", "é"]

lines = st.one_of(
    st.sampled_from(REAL_LINES),
    st.sampled_from(REAL_LINES).map(lambda s: s[: len(s) // 2]),
    st.text(max_size=60),
    st.sampled_from(NOISE),
)
documents = st.one_of(
    st.text(max_size=400),
    st.lists(lines, max_size=40).map("\n".join),
    st.tuples(st.lists(lines, max_size=30), st.lists(st.sampled_from(NOISE), max_size=8)).map(
        lambda t: "\n".join(t[0]) + "".join(t[1])
    ),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
)

PARSER_ITEMS = sorted(PARSERS.items())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents)
def test_no_parser_raises(text: str):
    for name, parser in PARSER_ITEMS:
        result = parser(text)
        assert isinstance(result, ParseResult), name
        assert all(isinstance(p, str) for p in result.problems), name


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shuffled_real_captures(data):
    for path in sorted(FIXTURES.glob("*/*.txt")):
        text_lines = path.read_text().splitlines()
        shuffled = data.draw(st.permutations(text_lines)) if text_lines else []
        cut = data.draw(st.integers(min_value=0, max_value=max(len(shuffled), 0)))
        text = "\n".join(shuffled[:cut])
        stem = path.parent.name
        name = next(k for k in PARSERS if k.rsplit(".", 1)[0] == stem)
        assert isinstance(PARSERS[name](text), ParseResult)
