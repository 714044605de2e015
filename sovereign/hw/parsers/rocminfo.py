"""rocminfo: whether the ROCm runtime sees the GPU (and NPU), and as what.

Handles ROCm 6.3 to 7.x output, trailing padding, ANSI colours, the NPU
(`aie2`, Device Type DSP) agent, and the failure messages printed before any
agent (`ROCk module is NOT loaded`, `Unable to open /dev/kfd ...`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from sovereign.hw.parsers.base import ParseResult, clean_lines

_AGENT_RE = re.compile(r"^Agent\s+(\d+)$")
_POOL_RE = re.compile(r"^Pool\s+(\d+)$")
_ISA_RE = re.compile(r"^ISA\s+(\d+)$")
_GFX_RE = re.compile(r"\b(gfx[0-9a-f]{3,5})\b")
_NUMBER_RE = re.compile(r"^(\d+)")
_DIMENSION_RE = re.compile(r"^[xyz]\s+\d+")
_KFD_LOADED_RE = re.compile(r"^ROCk module(?: version \S+)? is loaded", re.I)
_KFD_NOT_LOADED_RE = re.compile(r"^ROCk module is NOT loaded", re.I)
_ERROR_RE = re.compile(
    r"^(?:Unable to open /dev/kfd.*|hsa api call failure.*|Call returned .*|"
    r"Failed to get user name.*|.*HSA_STATUS_ERROR\w*.*|.*Permission denied.*)$"
)
_SECTION_HEADERS = {
    "HSA System Attributes", "HSA Agents", "Cache Info:", "Pool Info:", "ISA Info:",
    "Workgroup Max Size per Dimension:", "Grid Max Size per Dimension:", "*** Done ***",
}


class Pool(BaseModel):
    segment: str | None = None
    size_bytes: int | None = None
    allocatable: bool | None = None
    accessible_by_all: bool | None = None


class Agent(BaseModel):
    number: int
    name: str | None = None
    marketing_name: str | None = None
    vendor: str | None = None
    device_type: str | None = None  # CPU, GPU, DSP (the NPU), ...
    uuid: str | None = None
    gfx: str | None = None
    compute_units: int | None = None
    node: int | None = None
    chip_id: int | None = None
    max_clock_mhz: int | None = None
    bdfid: int | None = None
    memory_properties: str | None = None
    pools: list[Pool] = []
    isas: list[str] = []
    # The largest GLOBAL pool: what a program can allocate on this agent.
    pool_bytes: int | None = None
    fields: dict[str, str] = {}


class RocmInfo(ParseResult):
    kfd_loaded: bool | None = None
    runtime_version: str | None = None
    ext_version: str | None = None
    system: dict[str, str] = {}
    agents: list[Agent] = []
    gfx_targets: list[str] = []
    error: str | None = None

    @property
    def gpus(self) -> list[Agent]:
        return [a for a in self.agents if a.device_type == "GPU"]

    @property
    def npu_agents(self) -> list[Agent]:
        return [a for a in self.agents if a.device_type == "DSP" or a.name == "aie2"]


def _bool(value: str) -> bool | None:
    return {"TRUE": True, "FALSE": False, "YES": True, "NO": False}.get(value.upper())


def _kib(value: str) -> int | None:
    """`64416868(0x3d6ec64) KB` -> bytes."""
    m = _NUMBER_RE.match(value)
    return int(m.group(1)) * 1024 if m else None


_AGENT_FIELDS = {
    "Name": "name", "Marketing Name": "marketing_name", "Vendor Name": "vendor",
    "Device Type": "device_type", "Uuid": "uuid", "Memory Properties": "memory_properties",
}
_AGENT_INTS = {
    "Compute Unit": "compute_units", "Node": "node", "Chip ID": "chip_id",
    "Max Clock Freq. (MHz)": "max_clock_mhz", "BDFID": "bdfid",
}


def _set_agent_field(agent: Agent, key: str, value: str) -> None:
    agent.fields[key] = value
    if key in _AGENT_FIELDS:
        setattr(agent, _AGENT_FIELDS[key], value or None)
    elif key in _AGENT_INTS:
        m = _NUMBER_RE.match(value)
        setattr(agent, _AGENT_INTS[key], int(m.group(1)) if m else None)


def _finish(agent: Agent) -> None:
    if agent.device_type == "GPU":
        for candidate in [agent.name or "", *agent.isas]:
            m = _GFX_RE.search(candidate)
            if m and "generic" not in candidate:
                agent.gfx = m.group(1)
                break
    sizes = [p.size_bytes for p in agent.pools
             if p.size_bytes is not None and (p.segment or "").startswith("GLOBAL")]
    agent.pool_bytes = max(sizes) if sizes else None


def parse(text: str) -> RocmInfo:
    """Read `rocminfo` output."""
    result = RocmInfo()
    agent: Agent | None = None
    pool: Pool | None = None
    in_isa = False
    for number, line in enumerate(clean_lines(text), start=1):
        stripped = line.strip()
        if not stripped or set(stripped) <= {"*", "="} or stripped in _SECTION_HEADERS:
            if stripped == "ISA Info:":
                in_isa, pool = True, None
            elif stripped == "Pool Info:":
                in_isa = False
            continue
        if _DIMENSION_RE.match(stripped):
            continue
        if _KFD_NOT_LOADED_RE.match(stripped):
            result.kfd_loaded = False
            result.error = result.error or stripped
            continue
        if _KFD_LOADED_RE.match(stripped):
            result.kfd_loaded = True
            continue
        if _ERROR_RE.match(stripped):
            result.error = result.error or stripped
            continue
        if m := _AGENT_RE.match(stripped):
            if agent is not None:
                _finish(agent)
            agent, pool, in_isa = Agent(number=int(m.group(1))), None, False
            result.agents.append(agent)
            continue
        if agent is not None and _POOL_RE.match(stripped):
            pool = Pool()
            agent.pools.append(pool)
            in_isa = False
            continue
        if agent is not None and _ISA_RE.match(stripped):
            in_isa, pool = True, None
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            if agent is not None:
                result.problems.append(f"line {number}: unrecognised agent line {stripped[:60]!r}")
            continue
        key, value = key.strip(), value.strip().lstrip(":").strip()
        if agent is None:
            result.system[key] = value
            if key == "Runtime Version":
                result.runtime_version = value
            elif key == "Runtime Ext Version":
                result.ext_version = value
            continue
        indent = len(line) - len(line.lstrip())
        if in_isa:
            if key == "Name" and indent > 2:
                agent.isas.append(value)
            continue
        if pool is not None and indent > 4:
            if key == "Segment":
                pool.segment = value
            elif key == "Size":
                pool.size_bytes = _kib(value)
            elif key == "Allocatable":
                pool.allocatable = _bool(value)
            elif key == "Accessible by all":
                pool.accessible_by_all = _bool(value)
            continue
        pool = None
        _set_agent_field(agent, key, value)
    if agent is not None:
        _finish(agent)
    targets = {a.gfx for a in result.agents if a.gfx}
    result.gfx_targets = sorted(targets)
    if result.kfd_loaded is None and result.agents:
        result.kfd_loaded = True
    return result
