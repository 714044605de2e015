"""ROCm truths: the KFD is loaded and the runtime sees the gfx1151 iGPU."""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts


@check("ROCM-KFD", "the ROCm kernel driver (KFD) is loaded and usable")
def rocm_kfd(facts: Facts, expect: Expectations) -> CheckResult:
    info = facts.get("rocminfo.txt")
    if info is None:
        return skip("ROCM-KFD", facts.why_missing("rocminfo.txt"))
    if info.kfd_loaded and not info.error:
        return CheckResult(id="ROCM-KFD", status=Status.PASS,
                           message=f"KFD loaded, runtime {info.runtime_version or '?'}")
    why = info.error or "rocminfo found no KFD"
    denied = any(word in why.lower() for word in ("permi", "not member"))
    hint = ("add the user to the render and video groups (rocm_users)" if denied
            else "load amdgpu: check `dmesg | grep -i amdgpu` and the kernel parameters")
    return CheckResult(id="ROCM-KFD", status=Status.FAIL, message=why, hint=hint)


@check("ROCM-GFX1151", "ROCm lists the iGPU's gfx target")
def rocm_gfx(facts: Facts, expect: Expectations) -> CheckResult:
    check_id = "ROCM-GFX1151"
    info = facts.get("rocminfo.txt")
    if info is None:
        return skip(check_id, facts.why_missing("rocminfo.txt"))
    if expect.gfx_target in info.gfx_targets:
        return CheckResult(id=check_id, status=Status.PASS,
                           message=f"agents: {', '.join(info.gfx_targets)}")
    found = ", ".join(info.gfx_targets) or "no GPU agent"
    return CheckResult(id=check_id, status=Status.FAIL,
                       message=f"{found}; want {expect.gfx_target}",
                       hint="install ROCm 7.2 or later (rocm_release) and do not set "
                            "HSA_OVERRIDE_GFX_VERSION")
