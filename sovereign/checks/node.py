"""Phase 1 truths: what the box is (CPU, memory, storage, temperatures, OS)."""

from __future__ import annotations

import re

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts

GIB = 1024**3
SUPPORTED_OS = {("ubuntu", "26.04"): "target", ("debian", "12"): "lab and molecule"}
# The OS sees a little less than the installed RAM (firmware, UMA frame buffer).
MEM_PASS_RATIO = 0.94
MEM_WARN_RATIO = 0.75
THERMAL_WARN_C = 85.0
THERMAL_FAIL_C = 100.0


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@check("OS-SUPPORTED", "the distribution is one the roles support")
def os_supported(facts: Facts, expect: Expectations) -> CheckResult:
    release = facts.get("os-release.txt")
    if release is None:
        return skip("OS-SUPPORTED", facts.why_missing("os-release.txt"))
    key = (release.id or "?", release.version_id or "?")
    pretty = release.pretty_name or f"{key[0]} {key[1]}"
    if key in SUPPORTED_OS:
        return CheckResult(id="OS-SUPPORTED", status=Status.PASS,
                           message=f"{pretty} ({SUPPORTED_OS[key]})")
    return CheckResult(id="OS-SUPPORTED", status=Status.FAIL, message=f"{pretty} is not supported",
                       hint="install Ubuntu 26.04 LTS (the PXE path does it) or use the lab")


@check("CPU-MODEL", "the CPU is the one the inventory names")
def cpu_model(facts: Facts, expect: Expectations) -> CheckResult:
    model = facts.cpu_model()
    sim = facts.simulated("lscpu.txt", "proc-cpuinfo.txt")
    if model is None:
        return skip("CPU-MODEL", facts.why_missing("lscpu.txt", "proc-cpuinfo.txt"))
    if _norm(model) == _norm(expect.cpu_model):
        return CheckResult(id="CPU-MODEL", status=Status.PASS, message=model, simulated=sim)
    return CheckResult(id="CPU-MODEL", status=Status.FAIL, simulated=sim,
                       message=f"found {model!r}, the inventory expects {expect.cpu_model!r}",
                       hint=f"check that the inventory's ansible_host for {expect.host} is the "
                            "right machine, or correct sovereign_hardware.cpu_model")


@check("CPU-THREADS", "all hardware threads are online")
def cpu_threads(facts: Facts, expect: Expectations) -> CheckResult:
    _, parsed = facts.first("lscpu.txt", "proc-cpuinfo.txt")
    threads = getattr(parsed, "threads", None)
    if threads is None or expect.cpu_threads is None:
        reason = "thread count not in the capture" if parsed is not None else facts.why_missing(
            "lscpu.txt", "proc-cpuinfo.txt")
        return skip("CPU-THREADS", reason)
    sim = facts.simulated("lscpu.txt", "proc-cpuinfo.txt")
    if threads >= expect.cpu_threads:
        return CheckResult(id="CPU-THREADS", status=Status.PASS, message=f"{threads} threads",
                           simulated=sim)
    return CheckResult(id="CPU-THREADS", status=Status.WARN, simulated=sim,
                       message=f"{threads} of {expect.cpu_threads} threads online",
                       hint="enable SMT in the BIOS and check `nosmt`/`maxcpus=` on the kernel line")


@check("MEM-TOTAL", "the OS sees the installed memory")
def mem_total(facts: Facts, expect: Expectations) -> CheckResult:
    total = facts.memory_total_bytes()
    if total is None:
        return skip("MEM-TOTAL", facts.why_missing("proc-meminfo.txt", "free.txt"))
    sim = facts.simulated("proc-meminfo.txt", "free.txt")
    ratio = total / (expect.memory_gib * GIB)
    msg = f"{total / GIB:.1f} GiB visible of {expect.memory_gib} GiB installed ({ratio:.0%})"
    if ratio >= MEM_PASS_RATIO:
        return CheckResult(id="MEM-TOTAL", status=Status.PASS, message=msg, simulated=sim)
    hint = ("set the BIOS UMA frame buffer to its minimum (512 MB): the GPU pool is "
            "ttm.pages_limit, not a BIOS carve-out")
    status = Status.WARN if ratio >= MEM_WARN_RATIO else Status.FAIL
    return CheckResult(id="MEM-TOTAL", status=status, message=msg, hint=hint, simulated=sim)


@check("NVME-PRESENT", "the NVMe drives the inventory lists are there")
def nvme_present(facts: Facts, expect: Expectations) -> CheckResult:
    nvme = facts.get("nvme-list.txt")
    if nvme is None:
        return skip("NVME-PRESENT", facts.why_missing("nvme-list.txt"))
    sim = facts.simulated("nvme-list.txt")
    found = len(nvme.devices)
    sizes = ", ".join(f"{d.size_bytes / 1e9:.0f} GB" for d in nvme.devices if d.size_bytes)
    msg = f"{found} NVMe drive(s){': ' + sizes if sizes else ''}; inventory lists {expect.nvme_count}"
    if found >= expect.nvme_count:
        return CheckResult(id="NVME-PRESENT", status=Status.PASS, message=msg, simulated=sim)
    return CheckResult(id="NVME-PRESENT", status=Status.FAIL, message=msg, simulated=sim,
                       hint="reseat the drive or correct sovereign_hardware.nvme in host_vars")


@check("THERMALS", "temperatures are readable and below the throttle point")
def thermals(facts: Facts, expect: Expectations) -> CheckResult:
    sensors = facts.get("sensors.txt")
    if sensors is None:
        return skip("THERMALS", facts.why_missing("sensors.txt"))
    sim = facts.simulated("sensors.txt")
    hottest = sensors.max_temp_c
    if hottest is None:
        return CheckResult(id="THERMALS", status=Status.WARN, simulated=sim,
                           message="no temperature sensor readable",
                           hint="run `sensors-detect` and load the k10temp module")
    msg = f"hottest sensor {hottest:.0f} °C"
    if hottest < THERMAL_WARN_C:
        return CheckResult(id="THERMALS", status=Status.PASS, message=msg, simulated=sim)
    status = Status.WARN if hottest < THERMAL_FAIL_C else Status.FAIL
    return CheckResult(id="THERMALS", status=status, message=msg, simulated=sim,
                       hint="check the cooler's mounting and fan curve before sustained inference")
