"""dmesg: the GPU/NPU/IOMMU facts the kernel logged at boot.

Accepts `dmesg` with `[ 12.345]` timestamps, `dmesg -T`, `dmesg -x`, no
timestamps, and journal lines (`... kernel: ...`, `journalctl -k`), in the old
(`[drm] amdgpu: 65536M of GTT memory ready.`) and new
(`amdgpu 0000:c5:00.0: amdgpu: amdgpu: 65536M of GTT memory ready.`) wording.
"""

from __future__ import annotations

import re

from sovereign.hw.parsers.base import ParseResult, clean_lines, parse_kv_params

_PREFIXES = [
    re.compile(r"^<\d+>"),  # syslog priority
    re.compile(r"^\w+\s*:\s*\w+\s*:\s(?=\s*\[)"),  # dmesg -x: `kern  :info  : `
    re.compile(r"^.{0,80}?\bkernel:\s"),  # journal / syslog
    re.compile(r"^\[\s*\d+\.\d+\]\s?"),  # [   12.345678]
    re.compile(r"^\[[A-Z][a-z]{2} [^\]]{10,30}\]\s?"),  # dmesg -T
]
_GTT_RE = re.compile(r"\b(\d+)M of GTT memory ready")
_VRAM_RE = re.compile(r"\b(\d+)M of VRAM memory ready")
# drivers/gpu/drm/amd/amdgpu/amdgpu_ttm.c (kernel 6.17+), verbatim:
# "Configuring gttsize via module parameter is deprecated, please use ttm.pages_limit"
_GTTSIZE_DEPRECATED_RE = re.compile(r"gttsize via module parameter is deprecated|gttsize.*deprec")
_GTT_CONFLICT_RE = re.compile(
    r"GTT size has been set as (\d+) but TTM size has been set as (\d+)"
)
_AMDGPU_VERSION_RE = re.compile(r"\[drm\] amdgpu version: (\S+)")
_AMDGPU_INIT_RE = re.compile(r"Initialized amdgpu (\d+\.\d+\.\d+) for (\S+)")
_XDNA_INIT_RE = re.compile(r"Initialized amdxdna(?:_accel_driver)? (\S+) for (\S+)")
_XDNA_FW_RE = re.compile(r"amdxdna \S+.*?(?:Load firmware|firmware) (\S+\.sbin)")
_XDNA_FAIL_RE = re.compile(r"amdxdna.*(?:probe.*failed|failed to|error -\d+)", re.I)
_CMDLINE_RE = re.compile(r"^(?:Kernel command line|Command line): (.*)$")
_IOMMU_ON_RE = re.compile(
    r"AMD-Vi: Interrupt remapping enabled|perf/amd_iommu: Detected AMD IOMMU|"
    r"Adding to iommu group|iommu: Default domain type|DMAR: IOMMU enabled|AMD-Vi: Found IOMMU"
)
_IOMMU_MODE_RE = re.compile(r"iommu: Default domain type: (\w+)")
_RELEVANT_RE = re.compile(
    r"^(?:amdgpu|kfd|\[drm\]|amdxdna|AMD-Vi|iommu|mlx5|vfio|\S+ \S+: \[drm\])"
)
_ERROR_RE = re.compile(
    r"\*ERROR\*|\berror\b|\bfailed\b|\bfailure\b|\bfault\b|timed? ?out\b|\bhang\b|"
    r"GPU reset|VRAM is lost|Call Trace|\bBUG\b",
    re.I,
)
_BENIGN_RE = re.compile(r"ucode is not available|Correctable|Uncorrectable.*: 0\b")


class DmesgFacts(ParseResult):
    gtt_mib: int | None = None
    vram_mib: int | None = None
    gttsize_deprecated_warning: bool = False
    gtt_set_bytes: int | None = None  # "GTT size has been set as X but TTM ... Y"
    ttm_size_bytes: int | None = None
    amdgpu_version: str | None = None  # the DKMS driver's "[drm] amdgpu version: X"
    amdgpu_drm_version: str | None = None  # "Initialized amdgpu 3.61.0 for BDF"
    gpu_bdf: str | None = None
    iommu_enabled: bool | None = None
    iommu_passthrough: bool | None = None
    amdxdna_loaded: bool | None = None
    amdxdna_version: str | None = None
    npu_bdf: str | None = None
    npu_firmware: str | None = None
    kernel_cmdline: dict[str, str | None] | None = None
    errors: list[str] = []


def message(line: str) -> str:
    """The kernel message of a log line, without timestamp or journal prefix."""
    for prefix in _PREFIXES:
        line = prefix.sub("", line, count=1)
    return line.strip()


def _iommu_from_cmdline(result: DmesgFacts, params: dict[str, str | None]) -> None:
    if params.get("amd_iommu") == "off" or params.get("iommu") == "off":
        result.iommu_enabled = False
    if result.iommu_passthrough is None and "iommu" in params:
        result.iommu_passthrough = params["iommu"] == "pt"
    if params.get("iommu.passthrough") in ("1", "y", "on"):
        result.iommu_passthrough = True


def parse(text: str) -> DmesgFacts:
    """Read `dmesg` (whole, or grepped to what matters)."""
    result = DmesgFacts()
    for line in clean_lines(text):
        msg = message(line)
        if not msg:
            continue
        if m := _CMDLINE_RE.match(msg):
            result.kernel_cmdline = parse_kv_params(m.group(1))
            continue
        if m := _GTT_RE.search(msg):
            result.gtt_mib = int(m.group(1))
        if m := _VRAM_RE.search(msg):
            result.vram_mib = int(m.group(1))
        if _GTTSIZE_DEPRECATED_RE.search(msg):
            result.gttsize_deprecated_warning = True
        if m := _GTT_CONFLICT_RE.search(msg):
            result.gtt_set_bytes, result.ttm_size_bytes = int(m.group(1)), int(m.group(2))
        if m := _AMDGPU_VERSION_RE.search(msg):
            result.amdgpu_version = m.group(1)
        if m := _AMDGPU_INIT_RE.search(msg):
            result.amdgpu_drm_version, result.gpu_bdf = m.group(1), m.group(2)
        if m := _XDNA_INIT_RE.search(msg):
            result.amdxdna_loaded = True
            result.amdxdna_version, result.npu_bdf = m.group(1), m.group(2)
        elif msg.startswith("amdxdna ") and result.amdxdna_loaded is None:
            result.amdxdna_loaded = True
        if m := _XDNA_FW_RE.search(msg):
            result.npu_firmware = m.group(1)
        if _XDNA_FAIL_RE.search(msg):
            result.amdxdna_loaded = False
        if _IOMMU_ON_RE.search(msg):
            result.iommu_enabled = True
        if m := _IOMMU_MODE_RE.search(msg):
            result.iommu_passthrough = m.group(1).lower() == "passthrough"
        if _RELEVANT_RE.match(msg) and _ERROR_RE.search(msg) and not _BENIGN_RE.search(msg):
            result.errors.append(msg)
    if result.kernel_cmdline is not None:
        _iommu_from_cmdline(result, result.kernel_cmdline)
    return result
