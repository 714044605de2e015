"""The device lines ggml backends print at start-up (llama-bench, rpc-server)."""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import try_size

_CUDA_FOUND_RE = re.compile(
    r"ggml_cuda_init: found (\d+) (ROCm|CUDA|MUSA) devices?(?: \(Total VRAM: (\d+) MiB\))?"
)
_CUDA_DEVICE_RE = re.compile(r"^\s*Device (\d+): ([^,]+)(?:, (gfx[0-9a-f]+))?(.*)$")
_VRAM_RE = re.compile(r"VRAM: (\d+) MiB")
_VULKAN_DEVICE_RE = re.compile(r"^ggml_vulkan: (\d+) = ([^|]+?)\s*(?:\|(.*))?$")
_SHARED_RE = re.compile(r"shared memory: (\d+)")
# ggml-vulkan prints `N = DEVICE NAME (DRIVER NAME) | uma: ...`; a device name may
# carry parentheses of its own (`AMD Radeon 8060S Graphics (RADV GFX1151)`), so the
# driver is the last parenthesised group.
_VULKAN_DRIVER_RE = re.compile(r"^(.*?)\s*\(([^()]*)\)$")


class GgmlDevice(BaseModel):
    backend: str  # ROCm, CUDA, Vulkan
    index: int
    name: str
    driver: str | None = None  # Vulkan: the driver's name (radv, AMD open-source driver)
    gfx: str | None = None
    vram_bytes: int | None = None
    uma: bool | None = None


class GgmlDevices(BaseModel):
    devices: list[GgmlDevice] = []
    total_vram_bytes: int | None = None


def read_device_line(line: str, state: GgmlDevices, backend: list[str]) -> bool:
    """Fold one start-up line into `state`; True when the line was a device line.

    `backend` holds the backend named by the last `found N ... devices` line.
    """
    if m := _CUDA_FOUND_RE.search(line):
        backend[:] = [m.group(2)]
        if m.group(3):
            state.total_vram_bytes = int(m.group(3)) * 1024**2
        return True
    if line.startswith("ggml_vulkan: Found"):
        backend[:] = ["Vulkan"]
        return True
    if m := _VULKAN_DEVICE_RE.match(line):
        attrs = m.group(3) or ""
        name, driver = m.group(2).strip(), None
        if (d := _VULKAN_DRIVER_RE.match(name)) and d.group(1):
            name, driver = d.group(1), d.group(2).strip() or None
        state.devices.append(GgmlDevice(
            backend="Vulkan", index=int(m.group(1)), name=name, driver=driver,
            uma=("uma: 1" in attrs) if "uma:" in attrs else None,
        ))
        return True
    if backend and (m := _CUDA_DEVICE_RE.match(line)):
        vram = _VRAM_RE.search(m.group(4) or "")
        state.devices.append(GgmlDevice(
            backend=backend[0], index=int(m.group(1)), name=m.group(2).strip(), gfx=m.group(3),
            vram_bytes=try_size(vram.group(1) + "MiB") if vram else None,
        ))
        return True
    return False
