"""bfver / BlueField info: boot software versions and, when printed, the mode.

No public sample of a combined "bf-info" exists; this reads `bfver` output
(`BlueField ATF version: ...`) and any `Key: value` / mlxconfig-style lines
(`INTERNAL_CPU_MODEL  EMBEDDED_CPU(1)`, `mode: dpu`) a collector adds.
"""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines
from sovereign.hw.parsers.mlxconfig import Mode, bluefield_mode

_MLX_LINE_RE = re.compile(r"^\*?\s*(INTERNAL_CPU_[A-Z_]+)\s+(\S+)$")
_MODE_WORDS: dict[str, Mode] = {
    "dpu": "dpu", "embedded": "dpu", "embedded_cpu": "dpu", "nic": "nic",
    "separated": "separated", "separated_host": "separated",
}


class BfInfo(ParseResult):
    atf_version: str | None = None
    uefi_version: str | None = None
    bsp_version: str | None = None
    os_release: str | None = None
    boot_device: str | None = None
    mode: Mode | None = None
    fields: dict[str, str] = {}


def parse(text: str) -> BfInfo:
    """Read `bfver` output (plus optional mode lines)."""
    result = BfInfo()
    mlx: dict[str, str] = {}
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("--/dev/") and result.boot_device is None:
            result.boot_device = stripped[2:]
            continue
        if m := _MLX_LINE_RE.match(stripped):
            mlx[m.group(1)] = m.group(2)
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        result.fields.setdefault(key, value)
        lowered = key.lower()
        if "atf version" in lowered:
            result.atf_version = result.atf_version or value
        elif "uefi version" in lowered:
            result.uefi_version = result.uefi_version or value
        elif "bsp version" in lowered:
            result.bsp_version = result.bsp_version or value
        elif "os release" in lowered:
            result.os_release = value
        elif lowered in ("mode", "dpu mode", "operation mode"):
            result.mode = _MODE_WORDS.get(value.lower().split()[0] if value else "")
    if result.mode is None and mlx:
        result.mode = bluefield_mode(mlx)
    return result
