"""rpc-server (ggml RPC): what it bound, with which backend and memory."""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines, try_int
from sovereign.hw.parsers.ggml_devices import GgmlDevice, GgmlDevices, read_device_line

_VERSION_RE = re.compile(r"Starting RPC server(?: v(\S+))?")
_OLD_START_RE = re.compile(
    r"Starting RPC server on ([^,\s]+)(?:, backend memory: (\d+) MB)?"
)
_ENDPOINT_RE = re.compile(r"^endpoint\s*:\s*(\S+)")
_CACHE_RE = re.compile(r"^local cache\s*:\s*(.*)$")
_MEMORY_RE = re.compile(r"^backend memory\s*:\s*(\d+)\s*(MB|MiB)")
_BACKEND_RE = re.compile(r"create_backend: using (\S+) backend")
_DEVICE_MEM_RE = re.compile(r"^(\S+):\s.*\((\d+) MiB, (\d+) MiB free\)")


class RpcServerInfo(ParseResult):
    version: str | None = None
    host: str | None = None
    port: int | None = None
    backend: str | None = None
    memory_bytes: int | None = None
    cache_enabled: bool | None = None
    cache_dir: str | None = None
    devices: list[GgmlDevice] = []
    warnings: list[str] = []


def _endpoint(result: RpcServerInfo, endpoint: str) -> None:
    host, _, port = endpoint.rpartition(":")
    result.host = host.strip("[]") or None
    result.port = try_int(port)


def parse(text: str) -> RpcServerInfo:
    """Read rpc-server's start-up output (stdout, or its journal with `-o cat`)."""
    result = RpcServerInfo()
    ggml = GgmlDevices()
    backend: list[str] = []
    warning: list[str] = []
    for line in clean_lines(text):
        stripped = line.strip()
        if stripped.startswith("!!!"):
            if warning:
                result.warnings.append(" ".join(warning))
                warning = []
            continue
        if stripped.startswith("WARNING:") or (warning and line.startswith(" ")):
            warning.append(stripped.removeprefix("WARNING:").strip())
            continue
        if warning:
            result.warnings.append(" ".join(warning))
            warning = []
        if m := _OLD_START_RE.search(stripped):
            _endpoint(result, m.group(1))
            if m.group(2):
                result.memory_bytes = int(m.group(2)) * 1024**2
        elif m := _VERSION_RE.search(stripped):
            result.version = m.group(1)
        elif m := _ENDPOINT_RE.match(stripped):
            _endpoint(result, m.group(1))
        elif m := _CACHE_RE.match(stripped):
            value = m.group(1).strip()
            result.cache_enabled = value.lower() not in ("", "n/a", "none", "disabled")
            result.cache_dir = value if result.cache_enabled else None
        elif m := _MEMORY_RE.match(stripped):
            # rpc-server's `-m` and this line are in MiB, whatever the label says.
            result.memory_bytes = int(m.group(1)) * 1024**2
        elif m := _BACKEND_RE.search(stripped):
            result.backend = m.group(1)
        elif m := _DEVICE_MEM_RE.match(stripped):
            result.backend = result.backend or m.group(1)
            if result.memory_bytes is None:
                result.memory_bytes = int(m.group(3)) * 1024**2
        else:
            read_device_line(line, ggml, backend)
    if warning:
        result.warnings.append(" ".join(warning))
    result.devices = ggml.devices
    return result
