"""Phase 2 truths: kernel parameters, the TTM memory pool, the IOMMU.

The facts behind these checks (DESIGN.md §4): the GPU pool is
`ttm.pages_limit` in 4 KiB pages (GiB x 262144); `amdgpu.gttsize` is
deprecated; AMD's DKMS driver names the module `amdttm`, so `ttm.*` is then
ignored; `iommu=pt` stays (VFIO and the NPU need the IOMMU).
"""

from __future__ import annotations

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.checks.registry import check, skip
from sovereign.hw.facts import Facts

GIB = 1024**3
PAGE = 4096


def _param_problems(params: dict[str, str | None], expect: Expectations,
                    ram_bytes: int | None) -> tuple[list[str], list[str]]:
    """(failures, warnings) of a kernel command line against the inventory."""
    fails: list[str] = []
    warns: list[str] = []
    if params.get("iommu") != expect.iommu:
        fails.append(f"iommu={params.get('iommu')} (want iommu={expect.iommu})")
    key = f"{expect.ttm_module}.pages_limit"
    value = params.get(key)
    if value != str(expect.pages_limit):
        fails.append(f"{key}={value} (want {expect.pages_limit} = {expect.gpu_pool_gib} GiB)")
    for module in ("ttm", "amdttm"):
        limit = params.get(f"{module}.pages_limit")
        if limit and limit.isdigit() and ram_bytes and int(limit) * PAGE > ram_bytes:
            fails.append(f"{module}.pages_limit={limit} ({int(limit) * PAGE / GIB:.0f} GiB) "
                         f"exceeds physical RAM ({ram_bytes / GIB:.0f} GiB)")
    other = "amdttm" if expect.ttm_module == "ttm" else "ttm"
    if params.get(f"{other}.pages_limit"):
        warns.append(f"{other}.pages_limit is set but the driver uses {expect.ttm_module}: "
                     "it is ignored")
    gtt = params.get("amdgpu.gttsize")
    if gtt is not None:
        warns.append(f"amdgpu.gttsize={gtt} is deprecated (the kernel warns); "
                     "the pool is ttm.pages_limit")
        if gtt.lstrip("-").isdigit() and int(gtt) != expect.gpu_pool_gib * 1024:
            warns.append(f"amdgpu.gttsize={gtt} MiB disagrees with pages_limit "
                         f"({expect.gpu_pool_gib * 1024} MiB)")
    return fails, warns


def _ram(facts: Facts, expect: Expectations) -> int:
    return facts.memory_total_bytes() or expect.memory_gib * GIB


def _verdict(check_id: str, fails: list[str], warns: list[str], ok: str, hint: str,
             warn_hint: str = "", simulated: bool = False) -> CheckResult:
    if fails:
        return CheckResult(id=check_id, status=Status.FAIL, message="; ".join(fails + warns),
                           hint=hint, simulated=simulated)
    if warns:
        return CheckResult(id=check_id, status=Status.WARN, message="; ".join(warns),
                           hint=warn_hint or hint, simulated=simulated)
    return CheckResult(id=check_id, status=Status.PASS, message=ok, simulated=simulated)


def _wanted(expect: Expectations) -> str:
    return f"iommu={expect.iommu} {expect.ttm_module}.pages_limit={expect.pages_limit}"


@check("GRUB-CMDLINE", "the bootloader configuration carries the kernel parameters")
def grub_cmdline(facts: Facts, expect: Expectations) -> CheckResult:
    grub = facts.get("etc-default-grub.txt")
    if grub is None:
        return skip("GRUB-CMDLINE", facts.why_missing("etc-default-grub.txt"))
    fails, warns = _param_problems(grub.params, expect, _ram(facts, expect))
    return _verdict("GRUB-CMDLINE", fails, warns, f"configured: {_wanted(expect)}",
                    hint="run `sovereign provision phase-2` (role kernel_params)",
                    warn_hint="remove amdgpu.gttsize (unset kernel_params_amdgpu_gttsize_mib)")


@check("KERNEL-CMDLINE", "the running kernel was booted with the parameters")
def kernel_cmdline(facts: Facts, expect: Expectations) -> CheckResult:
    cmdline = facts.get("proc-cmdline.txt")
    if cmdline is None:
        return skip("KERNEL-CMDLINE", facts.why_missing("proc-cmdline.txt"))
    fails, warns = _param_problems(cmdline.params, expect, _ram(facts, expect))
    grub = facts.get("etc-default-grub.txt")
    configured = grub is not None and not _param_problems(grub.params, expect, None)[0]
    # Only what a reboot would change is "reboot required"; a pool beyond RAM is not.
    boot_fails = _param_problems(cmdline.params, expect, None)[0]
    if fails and configured and len(boot_fails) == len(fails):
        return CheckResult(id="KERNEL-CMDLINE", status=Status.WARN,
                           message="reboot required: " + "; ".join(fails),
                           hint="reboot the node, or set kernel_params_reboot_ok: true")
    return _verdict("KERNEL-CMDLINE", fails, warns, f"running: {_wanted(expect)}",
                    hint="run `sovereign provision phase-2`, then reboot")


@check("MODPROBE-TTM", "modprobe.d sets the TTM pool for the module in use")
def modprobe_ttm(facts: Facts, expect: Expectations) -> CheckResult:
    conf = facts.get("modprobe-d.txt")
    if conf is None:
        return skip("MODPROBE-TTM", facts.why_missing("modprobe-d.txt"))
    opts = conf.options.get(expect.ttm_module, {})
    value = opts.get("pages_limit")
    if value == str(expect.pages_limit):
        return CheckResult(id="MODPROBE-TTM", status=Status.PASS,
                           message=f"options {expect.ttm_module} pages_limit={value}")
    return CheckResult(id="MODPROBE-TTM", status=Status.FAIL,
                       message=f"options {expect.ttm_module} pages_limit={value} "
                               f"(want {expect.pages_limit})",
                       hint="run `sovereign provision phase-2` (role kernel_params)")


@check("TTM-PAGES-LIMIT", "the loaded TTM module uses the configured pool")
def ttm_pages_limit(facts: Facts, expect: Expectations) -> CheckResult:
    ttm = facts.get("sys-module-ttm.txt")
    if ttm is None:
        return skip("TTM-PAGES-LIMIT", facts.why_missing("sys-module-ttm.txt"))
    if ttm.module is None:
        return CheckResult(id="TTM-PAGES-LIMIT", status=Status.FAIL,
                           message="neither ttm nor amdttm is loaded",
                           hint="the amdgpu driver is not loaded: check `dmesg | grep amdgpu`")
    value = ttm.params.get("pages_limit")
    if ttm.module != expect.ttm_module:
        return CheckResult(id="TTM-PAGES-LIMIT", status=Status.WARN,
                           message=f"the loaded module is {ttm.module} (pages_limit={value}); "
                                   f"{expect.ttm_module}.* parameters are ignored",
                           hint=f"set kernel_params_ttm_module: {ttm.module}")
    ram = _ram(facts, expect)
    if value and value.isdigit() and int(value) * PAGE > ram:
        return CheckResult(id="TTM-PAGES-LIMIT", status=Status.FAIL,
                           message=f"pages_limit={value} ({int(value) * PAGE / GIB:.0f} GiB) exceeds "
                                   f"physical RAM ({ram / GIB:.0f} GiB)",
                           hint="lower kernel_params_gpu_pool_gib")
    if value == str(expect.pages_limit):
        return CheckResult(id="TTM-PAGES-LIMIT", status=Status.PASS,
                           message=f"{ttm.module}.pages_limit={value} ({expect.gpu_pool_gib} GiB)")
    return CheckResult(id="TTM-PAGES-LIMIT", status=Status.FAIL,
                       message=f"{ttm.module}.pages_limit={value} (want {expect.pages_limit})",
                       hint="reboot after phase 2 (the module reads it at load time)")


@check("GTT-SIZE", "the GPU sees the configured GTT pool")
def gtt_size(facts: Facts, expect: Expectations) -> CheckResult:
    gtt = facts.gtt_bytes()
    if gtt is None:
        return skip("GTT-SIZE", facts.why_missing("sys-drm-mem-info.txt", "dmesg.txt"))
    want = expect.gpu_pool_gib * GIB
    msg = f"GTT {gtt / GIB:.1f} GiB, configured pool {expect.gpu_pool_gib} GiB"
    if gtt >= want * 0.98:
        return CheckResult(id="GTT-SIZE", status=Status.PASS, message=msg)
    return CheckResult(id="GTT-SIZE", status=Status.FAIL, message=msg,
                       hint="check ttm.pages_limit on the running kernel (KERNEL-CMDLINE) and reboot")


@check("IOMMU-ENABLED", "the IOMMU is on (VFIO and the NPU need it)")
def iommu_enabled(facts: Facts, expect: Expectations) -> CheckResult:
    groups = facts.get("iommu-groups.txt")
    if groups is not None and groups.groups:
        return CheckResult(id="IOMMU-ENABLED", status=Status.PASS,
                           message=f"{len(groups.groups)} IOMMU groups")
    dmesg = facts.get("dmesg.txt")
    if dmesg is not None and dmesg.iommu_enabled:
        return CheckResult(id="IOMMU-ENABLED", status=Status.PASS, message="AMD-Vi enabled (dmesg)")
    if groups is None and dmesg is None:
        return skip("IOMMU-ENABLED", facts.why_missing("iommu-groups.txt", "dmesg.txt"))
    return CheckResult(id="IOMMU-ENABLED", status=Status.FAIL, message="no IOMMU groups",
                       hint="enable IOMMU (AMD-Vi) in the BIOS and keep iommu=pt on the kernel line")
