"""llama-server's log (journal of the `sovereign-llm-*` units, `-lv 4`).

The collector writes each unit after a `# unit: NAME STATE` line. What is
read: the model path, how many layers were offloaded, and per device the
model and KV buffer sizes (`RPC0[10.213.78.12:50052] model buffer size =
235.16 MiB`), which is how a layer split over RPC shows where the layers went.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_UNIT = re.compile(r"^#\s*unit:\s*(\S+)(?:\s+(\S+))?\s*$")
# "0.00.774.100 I " (llama.cpp's own prefix) or nothing (journalctl -o cat).
_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+\s+[DIWE]\s+")
_LOADING = re.compile(r"loading model '([^']+)'")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers")
_BUFFER = re.compile(
    r"(?:load_tensors|llama_kv_cache):\s+(\S+?)(?:\[([^\]]+)\])?\s+(model|KV) buffer size"
    r"\s*=\s*([\d.]+)\s*MiB"
)
_LISTENING = re.compile(r"listening on (\S+)")
_ERROR = re.compile(r"^\d+\.\d+\.\d+\.\d+\s+E\s+|\berror\b|\bfailed\b", re.IGNORECASE)


class DeviceBuffers(BaseModel):
    device: str
    endpoint: str | None = None
    model_mib: float = 0.0
    kv_mib: float = 0.0


class ServerUnit(BaseModel):
    unit: str | None = None
    active: str | None = None
    model_path: str | None = None
    layers_offloaded: int | None = None
    layers_total: int | None = None
    listening: str | None = None
    buffers: dict[str, DeviceBuffers] = {}
    errors: list[str] = []

    def remote_buffers(self, local: set[str] | None = None) -> list[DeviceBuffers]:
        """RPC devices holding model weights, other than the `local` endpoints."""
        local = local or set()
        return [b for b in self.buffers.values()
                if b.endpoint and b.endpoint not in local and b.model_mib > 0]


class LlamaServerLog(ParseResult):
    units: list[ServerUnit] = []


def parse(text: str) -> LlamaServerLog:
    result = LlamaServerLog()
    current: ServerUnit | None = None
    for line in clean_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        unit = _UNIT.match(stripped)
        if unit:
            current = ServerUnit(unit=unit.group(1), active=unit.group(2))
            result.units.append(current)
            continue
        if current is None:
            current = ServerUnit()
            result.units.append(current)
        body = _PREFIX.sub("", stripped)
        if m := _LOADING.search(body):
            # A restart within the captured log starts the unit's story over.
            current.model_path, current.buffers, current.errors = m.group(1), {}, []
        elif m := _OFFLOADED.search(body):
            current.layers_offloaded, current.layers_total = int(m.group(1)), int(m.group(2))
        elif m := _BUFFER.search(body):
            device, endpoint, kind, size = m.group(1), m.group(2), m.group(3), float(m.group(4))
            key = f"{device}[{endpoint}]" if endpoint else device
            entry = current.buffers.setdefault(key, DeviceBuffers(device=device, endpoint=endpoint))
            if kind == "model":
                entry.model_mib += size
            else:
                entry.kv_mib += size
        elif m := _LISTENING.search(body):
            current.listening = m.group(1)
        elif _ERROR.search(stripped) and len(current.errors) < 20:
            current.errors.append(body[:200])
    return result
