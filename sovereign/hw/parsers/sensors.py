"""sensors (lm-sensors): temperatures per chip, from the text or `sensors -j` output."""

from __future__ import annotations

import json
import re

from sovereign.hw.parsers.base import ParseResult, clean_lines

_TEMP_RE = re.compile(
    r"^(?P<label>[^:]+):\s+(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?:°|Â°|º|\?)?\s*C(?:\s|$)"
)
_RAW_INPUT_RE = re.compile(r"^\s+(temp\d+)_input:\s*([+-]?\d+(?:\.\d+)?)\s*$")
_CHIP_RE = re.compile(r"^[A-Za-z0-9_]+-[A-Za-z0-9_]+-[0-9a-fA-F]+$")
# Readings outside this range are sentinels (-273.1, 65261.8), not temperatures.
_PLAUSIBLE = (-60.0, 200.0)


class Sensors(ParseResult):
    chips: dict[str, dict[str, float]] = {}
    max_temp_c: float | None = None


def _plausible(value: float) -> bool:
    return _PLAUSIBLE[0] < value < _PLAUSIBLE[1]


def _parse_json(text: str, result: Sensors) -> None:
    kept = []
    for line in text.splitlines():
        if line.strip().startswith("ERROR:"):
            result.problems.append(line.strip())
        else:
            kept.append(line)
    try:
        data = json.loads("\n".join(kept))
    except ValueError as exc:
        result.problems.append(f"invalid JSON: {exc}")
        return
    if not isinstance(data, dict):
        result.problems.append("JSON is not an object of chips")
        return
    for chip, features in data.items():
        if not isinstance(features, dict):
            continue
        for label, subs in features.items():
            if not isinstance(subs, dict):
                continue
            for sub, value in subs.items():
                if (re.fullmatch(r"temp\d+_input", sub) and isinstance(value, int | float)
                        and not isinstance(value, bool)):
                    result.chips.setdefault(chip, {})[label] = float(value)


def _parse_text(text: str, result: Sensors) -> None:
    chip: str | None = None
    label: str | None = None
    for line in clean_lines(text):
        if not line.strip():
            chip, label = None, None
            continue
        if not line[0].isspace() and ":" not in line:
            chip = line.strip()
            continue
        if chip is None:
            if _CHIP_RE.match(line.strip()):
                chip = line.strip()
            continue
        if m := _RAW_INPUT_RE.match(line):  # sensors -u
            if label is not None:
                result.chips.setdefault(chip, {})[label] = float(m.group(2))
            continue
        if not line[0].isspace() and line.rstrip().endswith(":"):
            label = line.strip()[:-1]
            continue
        if m := _TEMP_RE.match(line):
            result.chips.setdefault(chip, {})[m.group("label").strip()] = float(m.group("value"))


def parse(text: str) -> Sensors:
    """Read `sensors`, `sensors -u` or `sensors -j` output."""
    result = Sensors()
    if text.lstrip().startswith("{"):
        _parse_json(text, result)
    else:
        _parse_text(text, result)
    values = [v for labels in result.chips.values() for v in labels.values() if _plausible(v)]
    result.max_temp_c = max(values) if values else None
    return result
