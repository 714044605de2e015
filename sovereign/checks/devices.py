"""Devices beyond the iGPU: the passed-through eGPU, the NPU, ROCm's version,
and the benchmark floor."""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts
from sovereign.hw.parsers.llama_bench import BenchRow

# ROCm 7.2 is the first series that works on gfx1151 (earlier ones segfault in hipMalloc).
ROCM_MIN_GFX1151 = (7, 2)


def _version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    parts = []
    for piece in text.strip().split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


@check("ROCM-VERSION", "the ROCm release supports gfx1151 (7.2 or later)")
def rocm_version(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "ROCM-VERSION"
    installed = facts.get("rocm-version.txt")
    smi = facts.get("amd-smi.txt")
    found, source = None, ""
    if installed is not None and installed.version:
        found, source = installed.version, "/opt/rocm/.info/version"
    elif smi is not None and smi.rocm_version:
        found, source = smi.rocm_version, "amd-smi"
    if found is None:
        return skip(check_id, facts.why_missing("rocm-version.txt", "amd-smi.txt"))
    version = _version(found)
    if version is None:
        return skip(check_id, f"no ROCm version readable ({source})")
    if expect.gfx_target == "gfx1151" and version[:2] < ROCM_MIN_GFX1151:
        return CheckResult(id=check_id, status=Status.FAIL,
                           message=f"ROCm {found} ({source}) is older than 7.2 on gfx1151",
                           hint="set rocm_release to 7.2.x or later: earlier series crash in hipMalloc")
    return CheckResult(id=check_id, status=Status.PASS, message=f"ROCm {found} ({source})")


@check("VFIO-BOUND", "the passed-through devices are bound to vfio-pci")
def vfio_bound(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "VFIO-BOUND"
    if not expect.vfio_pci_ids:
        return skip(check_id, "no passthrough device in the inventory (vfio_pci_ids)")
    pci = facts.get("lspci-nnk.txt")
    if pci is None:
        return skip(check_id, facts.why_missing("lspci-nnk.txt"))
    wanted = {i.lower() for i in expect.vfio_pci_ids}
    found = {f"{d.vendor_id}:{d.device_id}".lower(): d for d in pci.devices}
    problems = []
    for ident in sorted(wanted):
        dev = found.get(ident)
        if dev is None:
            problems.append(f"{ident} not present")
        elif dev.driver != "vfio-pci":
            problems.append(f"{ident} at {dev.slot} uses {dev.driver or 'no driver'}")
    if problems:
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(problems),
                           hint="bind with vfio-pci.ids= on the kernel line and a modprobe softdep "
                                "so vfio-pci loads before the GPU driver; reboot")
    return CheckResult(id=check_id, status=Status.PASS,
                       message=f"{', '.join(sorted(wanted))} bound to vfio-pci")


@check("NPU-PRESENT", "the XDNA 2 NPU is visible (optional)")
def npu_present(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "NPU-PRESENT"
    xrt = facts.get("xrt-smi-examine.txt")
    if xrt is not None and xrt.devices:
        dev = xrt.devices[0]
        return CheckResult(id=check_id, status=Status.PASS,
                           message=f"{dev.name or 'NPU'} at {dev.bdf}, firmware {xrt.npu_firmware or '?'}")
    accel = facts.get("accel.txt")
    if accel is not None and accel.nodes:
        return CheckResult(id=check_id, status=Status.PASS,
                           message=f"{', '.join(accel.nodes)} (amdxdna); XRT not examined")
    lsmod = facts.get("lsmod.txt")
    if xrt is None and accel is None and lsmod is None:
        return skip(check_id, facts.why_missing("xrt-smi-examine.txt", "accel.txt", "lsmod.txt"))
    loaded = lsmod is not None and "amdxdna" in lsmod.modules
    # The NPU is optional: its services are detected, never assumed.
    return CheckResult(id=check_id, status=Status.WARN,
                       message="amdxdna loaded but no /dev/accel node" if loaded else "no NPU found",
                       hint="the in-tree amdxdna driver needs kernel 6.14+ and the IOMMU; "
                            "install XRT (libxrt-npu2) to use it")


@check("BENCH-TOKENS", "generation speed meets the inventory's floor")
def bench_tokens(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "BENCH-TOKENS"
    bench = facts.get("llama-bench.txt")
    if bench is None:
        return skip(check_id, facts.why_missing("llama-bench.txt"))
    gen = [r for r in bench.rows if r.test.startswith("tg")]
    if not gen:
        return skip(check_id, "no generation (tg) row in the llama-bench output")
    if any(r.label for r in gen):
        return _bench_per_model(gen, expect)
    best = max(gen, key=lambda r: r.tokens_per_s)
    msg = f"{best.model} {best.test}: {best.tokens_per_s:.1f} tok/s ({best.backend or '?'})"
    if expect.bench_min_tps is None:
        return skip(check_id, f"{msg}; no minimum set for this node")
    if best.tokens_per_s >= expect.bench_min_tps:
        return CheckResult(id=check_id, status=Status.PASS,
                           message=f"{msg} ≥ {expect.bench_min_tps:g}")
    return CheckResult(id=check_id, status=Status.FAIL, message=f"{msg} < {expect.bench_min_tps:g}",
                       hint="check the GPU pool (GTT-SIZE), -ngl, and that nothing else holds the "
                            "memory bandwidth")


def _bench_per_model(gen: list[BenchRow], expect: Expectations) -> CheckResult:
    """One llama-bench table per model (`sovereign bench`), each judged
    against that model's own floor (min_tps in the inventory)."""
    check_id = "BENCH-TOKENS"
    best: dict[str, float] = {}
    for row in gen:
        if row.label:
            best[row.label] = max(best.get(row.label, 0.0), row.tokens_per_s)
    judged = {name: tps for name, tps in best.items() if name in expect.model_min_tps}
    summary = ", ".join(f"{name} {tps:.1f} tok/s" for name, tps in sorted(best.items()))
    if not judged:
        return skip(check_id, f"{summary}; no min_tps in the inventory for these models")
    slow = [f"{name} {tps:.1f} < {expect.model_min_tps[name]:g}"
            for name, tps in sorted(judged.items()) if tps < expect.model_min_tps[name]]
    if slow:
        return CheckResult(id=check_id, status=Status.FAIL,
                           message="below the inventory's min_tps: " + "; ".join(slow),
                           hint="check the GPU pool (GTT-SIZE), -ngl, the threads, and that nothing else "
                                "holds the memory bandwidth; `sovereign bench` shows the roofline")
    floors = ", ".join(f"{name} {tps:.1f} ≥ {expect.model_min_tps[name]:g}"
                       for name, tps in sorted(judged.items()))
    return CheckResult(id=check_id, status=Status.PASS, message=f"tg tokens/s: {floors}")
