"""rocm-smi: product name, gfx target, VRAM/GTT totals and temperature per GPU."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_float, try_int

_KV_RE = re.compile(r"^GPU\[(\d+)\]\s*:\s*(.+?):\s*(.*)$")
_TEMP_RE = re.compile(r"([\d.]+)\s*°?C")
_POWER_RE = re.compile(r"([\d.]+)\s*W\b")


class SmiGpu(BaseModel):
    index: int
    product: str | None = None
    gfx: str | None = None
    device_id: str | None = None
    vram_total_bytes: int | None = None
    vram_used_bytes: int | None = None
    gtt_total_bytes: int | None = None
    gtt_used_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    fields: dict[str, str] = {}


class RocmSmi(ParseResult):
    gpus: list[SmiGpu] = []
    error: str | None = None


def _apply(gpu: SmiGpu, key: str, value: str) -> None:
    gpu.fields[key] = value
    lowered = key.lower()
    if lowered in ("card series", "device name", "card model name", "marketing name"):
        gpu.product = gpu.product if (gpu.product and lowered == "card series") else value
    elif lowered == "gfx version":
        gpu.gfx = value
    elif lowered in ("card model", "device id"):
        gpu.device_id = value
    elif lowered.startswith("vram total memory"):
        gpu.vram_total_bytes = try_int(value)
    elif lowered.startswith("vram total used memory"):
        gpu.vram_used_bytes = try_int(value)
    elif lowered.startswith("gtt total memory"):
        gpu.gtt_total_bytes = try_int(value)
    elif lowered.startswith("gtt total used memory"):
        gpu.gtt_used_bytes = try_int(value)
    elif lowered.startswith("temperature") and gpu.temperature_c is None:
        gpu.temperature_c = try_float(value)
    elif "power" in lowered and "(w)" in lowered:
        gpu.power_w = try_float(value)


def _parse_json(text: str, result: RocmSmi) -> None:
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        result.problems.append(f"invalid JSON: {exc}")
        return
    if not isinstance(data, dict):
        return
    for card, fields in data.items():
        if not (isinstance(fields, dict) and card.startswith("card")):
            continue
        gpu = SmiGpu(index=try_int(card[4:]) or 0)
        for key, value in fields.items():
            _apply(gpu, str(key).rstrip(":"), str(value))
        result.gpus.append(gpu)


def parse(text: str) -> RocmSmi:
    """Read `rocm-smi` (the concise table), `rocm-smi --show...` (`GPU[0] : Key: value`)
    or `rocm-smi --json` output."""
    result = RocmSmi()
    if text.lstrip().startswith("{"):
        _parse_json(text, result)
        return result
    gpus: dict[int, SmiGpu] = {}
    table = False
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped or set(stripped) <= {"=", "-"} or stripped.startswith("="):
            continue
        if m := _KV_RE.match(stripped):
            index = int(m.group(1))
            _apply(gpus.setdefault(index, SmiGpu(index=index)), m.group(2).strip(),
                   m.group(3).strip())
            continue
        if stripped.startswith("Device") and "Temp" in stripped:
            table = True
            continue
        if table and stripped.split()[0].isdigit():
            index = int(stripped.split()[0])
            gpu = gpus.setdefault(index, SmiGpu(index=index))
            if (t := _TEMP_RE.search(stripped)) and gpu.temperature_c is None:
                gpu.temperature_c = float(t.group(1))
            if (p := _POWER_RE.search(stripped)) and gpu.power_w is None:
                gpu.power_w = float(p.group(1))
            continue
        if re.search(r"\b(error|not found|no amd gpus?|not loaded)\b", stripped, re.I):
            result.error = result.error or stripped
    result.gpus = [gpus[i] for i in sorted(gpus)]
    return result
