"""The eight build phases of the seed, with the checks that guard each one."""

from __future__ import annotations

from dataclasses import dataclass

from sovereign.errors import PhaseNotBuilt, SovereignError


@dataclass(frozen=True)
class Phase:
    number: int
    slug: str
    title: str
    playbook: str | None = None
    preflight: tuple[str, ...] = ()
    verify: tuple[str, ...] = ()
    # The phase deploys the model roster: `provision` refuses a plan that does not fit.
    deploys_models: bool = False
    # The nodes it runs on: every node, or one group of them (its playbook's hosts).
    group: str = "sovereign_nodes"

    @property
    def built(self) -> bool:
        return self.playbook is not None

    @property
    def name(self) -> str:
        return f"phase-{self.number}"


PHASES: dict[int, Phase] = {
    p.number: p
    for p in (
        Phase(1, "baseline", "Physical build: hardware baseline",
              playbook="phase-1-baseline.yml",
              preflight=("OS-SUPPORTED",),
              verify=("CPU-MODEL", "CPU-THREADS", "MEM-TOTAL", "NVME-PRESENT", "THERMALS")),
        Phase(2, "os-igpu", "OS & iGPU: kernel parameters and ROCm",
              playbook="phase-2-os-igpu.yml",
              preflight=("OS-SUPPORTED", "CPU-MODEL", "MEM-TOTAL"),
              verify=("GRUB-CMDLINE", "MODPROBE-TTM", "KERNEL-CMDLINE", "TTM-PAGES-LIMIT",
                      "GTT-SIZE", "IOMMU-ENABLED", "ROCM-KFD", "ROCM-GFX1151", "ROCM-VERSION",
                      "NPU-PRESENT")),
        # Not built yet; their checks already judge bundles (`hw check --phase N`).
        Phase(3, "vfio-vm", "VFIO and the Windows VM",
              preflight=("IOMMU-ENABLED",), verify=("VFIO-BOUND",)),
        Phase(4, "inference", "llama.cpp, the model store, the model servers and the RPC split",
              playbook="phase-4-inference.yml",
              preflight=("OS-SUPPORTED", "ROCM-GFX1151", "GTT-SIZE"),
              verify=("MODEL-SERVERS", "RPC-SPLIT", "BENCH-TOKENS"),
              deploys_models=True),
        # The RPC split itself is phase 4's (over TCP); phase 5 moves it to RDMA.
        Phase(5, "rdma", "RDMA and the DPUs (the RPC split over RoCE)",
              verify=("RDMA-LINK-ACTIVE", "RDMA-MTU", "ROCE-V2-GID", "LINK-SPEED", "DPU-MODE")),
        Phase(6, "data-agents", "Postgres, Qdrant and the agent services",
              playbook="phase-6-data.yml", preflight=("OS-SUPPORTED",),
              verify=("PG-UP", "PG-TLS", "PG-HBA")),
        Phase(7, "routing", "Routing and egress policy: the model router",
              playbook="phase-7-routing.yml", preflight=("OS-SUPPORTED",),
              group="sovereign_orchestrator"),
        Phase(8, "telemetry", "Telemetry and integrations"),
    )
}


def phase(number: int) -> Phase:
    if number not in PHASES:
        raise SovereignError(f"there is no phase {number}", hint="phases are numbered 1 to 8")
    return PHASES[number]


def require_built(p: Phase) -> Phase:
    if not p.built:
        built = ", ".join(str(n) for n, q in PHASES.items() if q.built)
        raise PhaseNotBuilt(f"phase {p.number} ({p.title}) is not built yet",
                            hint=f"phases built so far: {built}")
    return p


def parse_phase_name(value: str) -> int | None:
    """`phase-2`, `2` → 2; `all` → None."""
    text = value.strip().lower()
    if text == "all":
        return None
    text = text.removeprefix("phase-").removeprefix("phase")
    if not text.isdigit():
        raise SovereignError(f"{value!r} is not a phase",
                             hint="use phase-1 ... phase-8, or all")
    return phase(int(text)).number


def parse_phase_list(value: str) -> list[int]:
    numbers = [parse_phase_name(part) for part in value.split(",") if part.strip()]
    if any(n is None for n in numbers):
        raise SovereignError("--only takes phase numbers, e.g. --only 1,2")
    return sorted({n for n in numbers if n is not None})
