"""llama-bench: the markdown results table, the devices and the build."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_float, try_int, try_size
from sovereign.hw.parsers.ggml_devices import GgmlDevice, GgmlDevices, read_device_line

_BUILD_RE = re.compile(r"^build: (\S+) \((\d+)\)")
_SEPARATOR_CELL_RE = re.compile(r"^:?-+:?$")
_TS_RE = re.compile(r"^([\d.]+)(?:\s*(?:±|\+/-|\+-)\s*([\d.]+))?$")
_PARAMS_RE = re.compile(r"^([\d.]+)\s*([KMBT]?)$")
_PARAM_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
# `sovereign bench` writes one table per model, each after a line naming it.
_LABEL_RE = re.compile(r"^#\s*sovereign-model:\s*(\S+)")
_KNOWN_COLUMNS = {"model", "size", "params", "backend", "ngl", "threads", "fa", "test", "t/s"}


class BenchRow(BaseModel):
    model: str
    size_bytes: int | None = None
    params: int | None = None
    backend: str | None = None
    ngl: int | None = None
    threads: int | None = None
    fa: str | None = None
    test: str
    tokens_per_s: float
    stddev: float | None = None
    extra: dict[str, str] = {}
    # The inventory's name of the model, from a `# sovereign-model: NAME` line.
    label: str | None = None


class LlamaBench(ParseResult):
    build: str | None = None
    build_commit: str | None = None
    build_number: int | None = None
    devices: list[str] = []
    device_details: list[GgmlDevice] = []
    total_vram_bytes: int | None = None
    rows: list[BenchRow] = []


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _params(text: str) -> int | None:
    m = _PARAMS_RE.match(text.strip())
    if not m:
        return None
    return round(float(m.group(1)) * _PARAM_SCALE[m.group(2)])


def _row(header: list[str], cells: list[str], number: int, result: LlamaBench,
         label: str | None = None) -> None:
    values = dict(zip(header, cells, strict=False))
    if len(cells) != len(header):
        result.problems.append(f"line {number}: {len(cells)} cells for {len(header)} columns")
        return
    ts = _TS_RE.match(values.get("t/s", "").replace("\u00a0", " "))
    if not ts or "model" not in values or "test" not in values:
        result.problems.append(f"line {number}: unreadable result row")
        return
    result.rows.append(BenchRow(
        model=values["model"],
        size_bytes=try_size(values.get("size", "")),
        params=_params(values.get("params", "")),
        backend=values.get("backend") or None,
        ngl=try_int(values.get("ngl")),
        threads=try_int(values.get("threads")),
        fa=values.get("fa"),
        test=values["test"],
        tokens_per_s=float(ts.group(1)),
        stddev=try_float(ts.group(2)),
        extra={k: v for k, v in values.items() if k not in _KNOWN_COLUMNS},
        label=label,
    ))


def parse(text: str) -> LlamaBench:
    """Read llama-bench's default (markdown) output, from any recent build/backend."""
    result = LlamaBench()
    ggml = GgmlDevices()
    backend: list[str] = []
    header: list[str] | None = None
    label: str | None = None
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if m := _LABEL_RE.match(stripped):
            label, header = m.group(1), None
            continue
        if m := _BUILD_RE.match(stripped):
            result.build, result.build_commit = f"{m.group(1)} ({m.group(2)})", m.group(1)
            result.build_number = int(m.group(2))
            continue
        if stripped.startswith("|"):
            cells = _cells(stripped)
            if all(_SEPARATOR_CELL_RE.match(c) for c in cells if c):
                continue
            if "model" in cells and "test" in cells:
                header = cells
                continue
            if header is None:
                result.problems.append(f"line {number}: table row before any header")
                continue
            _row(header, cells, number, result, label)
            continue
        read_device_line(line, ggml, backend)
    result.device_details = ggml.devices
    result.devices = [d.name for d in ggml.devices]
    result.total_vram_bytes = ggml.total_vram_bytes
    return result
