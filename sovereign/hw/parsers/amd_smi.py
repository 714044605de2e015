"""amd-smi: versions, GPU name, memory totals and temperature, tolerant of layout."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_float, try_size

_BANNER_RE = re.compile(
    r"AMD-SMI\s+(\S+)\s+amdgpu version:\s*(\S+)\s+ROCm version:\s*(\S+)"
)
_TABLE_GPU_RE = re.compile(
    r"^\|\s*([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+(.*?)\s*\|(.*)\|$"
)
_MEM_USAGE_RE = re.compile(r"(\d+)\s*/\s*(\d+)\s*(MB|GB|MiB|GiB)")
_TEMP_CELL_RE = re.compile(r"(\d+(?:\.\d+)?)\s*°?C")
_GPU_HEADER_RE = re.compile(r"^GPU:\s*(\d+)\s*$")


class AmdSmiGpu(BaseModel):
    gpu: int | None = None
    bdf: str | None = None
    name: str | None = None
    gfx: str | None = None
    vram_total_bytes: int | None = None
    vram_used_bytes: int | None = None
    gtt_total_bytes: int | None = None
    temperature_c: float | None = None


class AmdSmi(ParseResult):
    amd_smi_version: str | None = None
    amdgpu_version: str | None = None
    rocm_version: str | None = None
    gpus: list[AmdSmiGpu] = []


def _table_row(m: re.Match[str], gpu: AmdSmiGpu) -> None:
    gpu.bdf, gpu.name = m.group(1).lower(), m.group(2) or None
    if t := _TEMP_CELL_RE.search(m.group(3)):
        gpu.temperature_c = float(t.group(1))


def _static_key(gpu: AmdSmiGpu, key: str, value: str, parent: str) -> None:
    if key in ("MARKET_NAME", "PRODUCT_NAME") and not gpu.name:
        gpu.name = value
    elif key == "TARGET_GRAPHICS_VERSION":
        gpu.gfx = value
    elif key == "BDF":
        gpu.bdf = value.lower()
    elif key in ("TOTAL_VRAM",) or (parent == "VRAM" and key == "SIZE"):
        gpu.vram_total_bytes = try_size(value.replace(" ", ""), si_decimal=False)
    elif key == "USED_VRAM":
        gpu.vram_used_bytes = try_size(value.replace(" ", ""), si_decimal=False)
    elif key == "TOTAL_GTT":
        gpu.gtt_total_bytes = try_size(value.replace(" ", ""), si_decimal=False)
    elif key in ("EDGE", "HOTSPOT") and gpu.temperature_c is None:
        gpu.temperature_c = try_float(value.split()[0]) if value.split() else None


def parse(text: str) -> AmdSmi:
    """Read `amd-smi` (the default table), `amd-smi static` or `amd-smi metric`."""
    result = AmdSmi()
    gpu: AmdSmiGpu | None = None
    parents: list[tuple[int, str]] = []
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if m := _BANNER_RE.search(stripped):
            result.amd_smi_version, result.amdgpu_version, result.rocm_version = m.groups()
            continue
        if m := _TABLE_GPU_RE.match(stripped):
            gpu = AmdSmiGpu(gpu=len(result.gpus))
            result.gpus.append(gpu)
            _table_row(m, gpu)
            continue
        if stripped.startswith("|") and gpu is not None and (u := _MEM_USAGE_RE.search(stripped)):
            unit = u.group(3)
            gpu.vram_used_bytes = try_size(u.group(1) + unit, si_decimal=False)
            gpu.vram_total_bytes = try_size(u.group(2) + unit, si_decimal=False)
            continue
        if m := _GPU_HEADER_RE.match(stripped):
            gpu = AmdSmiGpu(gpu=int(m.group(1)))
            result.gpus.append(gpu)
            parents = []
            continue
        key, sep, value = stripped.partition(":")
        if not sep or gpu is None or stripped.startswith(("|", "+")):
            continue
        indent = len(line) - len(line.lstrip())
        parents = [(i, k) for i, k in parents if i < indent]
        key, value = key.strip(), value.strip()
        if not value:
            parents.append((indent, key))
            continue
        _static_key(gpu, key, value, parents[-1][1] if parents else "")
    return result
