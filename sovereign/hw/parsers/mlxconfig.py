"""mlxconfig -d DEV q: firmware configuration, incl. the BlueField operating mode."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_DEVICE_RE = re.compile(r"^Device #(\d+):")
_HEADER_KEYS = {"Device type": "device_type", "Name": "name", "Description": "description",
                "Device": "device", "PCI device": "device"}
_CONFIG_RE = re.compile(r"^(\*)?\s*([A-Z][A-Z0-9_]*(?:\[\d+\])?)\s+(.+)$")
_VALUE_RE = re.compile(r"^(.*?)\((-?\d+|0x[0-9a-fA-F]+)\)$")

Mode = Literal["dpu", "nic", "separated"]


class MlxDevice(BaseModel):
    device_type: str | None = None
    name: str | None = None
    description: str | None = None
    device: str | None = None
    # Parameter -> value as printed in the last column (Next Boot), e.g. EMBEDDED_CPU(1).
    config: dict[str, str] = {}
    # With -e: the Current column too.
    current: dict[str, str] = {}
    modified: list[str] = []
    mode: Mode | None = None


class MlxConfig(ParseResult):
    devices: list[MlxDevice] = []
    error: str | None = None

    @property
    def mode(self) -> Mode | None:
        return next((d.mode for d in self.devices if d.mode), None)


def value_name(value: str) -> tuple[str, str | None]:
    """`EMBEDDED_CPU(1)` -> ("EMBEDDED_CPU", "1"); `0` -> ("0", None)."""
    m = _VALUE_RE.match(value.strip())
    return (m.group(1).strip(), m.group(2)) if m else (value.strip(), None)


def bluefield_mode(config: dict[str, str]) -> Mode | None:
    """The BlueField-2 operating mode from its mlxconfig parameters.

    Separated host: INTERNAL_CPU_MODEL=SEPARATED_HOST(0). DPU (embedded CPU):
    INTERNAL_CPU_MODEL=EMBEDDED_CPU(1). NIC mode is embedded CPU with
    INTERNAL_CPU_OFFLOAD_ENGINE=DISABLED(1).
    """
    model = config.get("INTERNAL_CPU_MODEL")
    if model is None:
        return None
    name, number = value_name(model)
    if name.upper() == "SEPARATED_HOST" or number == "0":
        return "separated"
    if name.upper() == "EMBEDDED_CPU" or number == "1":
        offload = value_name(config.get("INTERNAL_CPU_OFFLOAD_ENGINE", ""))
        return "nic" if offload[0].upper() == "DISABLED" or offload[1] == "1" else "dpu"
    return None


def parse(text: str) -> MlxConfig:
    """Read `mlxconfig -d DEV q` (or `-e q`), one or several devices."""
    result = MlxConfig()
    device: MlxDevice | None = None
    in_config = False
    columns = 1
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped or set(stripped) <= {"-"}:
            continue
        if stripped.startswith("-E-"):
            result.error = result.error or stripped
            continue
        if _DEVICE_RE.match(stripped):
            device, in_config = MlxDevice(), False
            result.devices.append(device)
            continue
        if stripped.startswith("Configurations:"):
            if device is None:
                device = MlxDevice()
                result.devices.append(device)
            in_config = True
            columns = max(1, len(re.split(r"\s{2,}", stripped)) - 1)
            continue
        if device is None:
            continue
        if not in_config:
            key, sep, value = stripped.partition(":")
            if sep and key.strip() in _HEADER_KEYS:
                setattr(device, _HEADER_KEYS[key.strip()], value.strip() or None)
            continue
        m = _CONFIG_RE.match(stripped)
        if not m:
            continue
        values = re.split(r"\s{2,}", m.group(3).strip())
        device.config[m.group(2)] = values[-1]
        if columns >= 3 and len(values) >= 3:
            device.current[m.group(2)] = values[-2]
        if m.group(1):
            device.modified.append(m.group(2))
    for dev in result.devices:
        dev.mode = bluefield_mode(dev.config)
    return result
