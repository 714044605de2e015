"""What a check is, what it returns, and what it compares against."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sovereign.inventory.argspecs import role_default
from sovereign.inventory.loader import Host
from sovereign.inventory.models import PAGES_PER_GIB


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class CheckResult(BaseModel):
    id: str
    status: Status
    message: str
    hint: str = ""
    # Judged on a recorded profile, not on the node's own hardware (the lab).
    simulated: bool = False
    # Failed, but listed in --ignore / --ignore-preflight-errors.
    ignored: bool = False

    @property
    def blocking(self) -> bool:
        return self.status is Status.FAIL and not self.ignored


def _role(option: str) -> Any:
    """A role option's default, as the role declares it (meta/argument_specs.yml)."""
    return Field(default_factory=lambda: role_default(option))


class Expectations(BaseModel):
    """What a node should be: from the inventory, or the production defaults
    when a bundle is judged with no inventory at hand. What a role decides
    (`_role`) defaults to that role's declared default, never to a copy of it."""

    model_config = ConfigDict(frozen=True)

    host: str = "?"
    cpu_model: str = "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
    cpu_threads: int | None = 32
    memory_gib: int = 128
    gfx_target: str = "gfx1151"
    nvme_count: int = 1
    # kernel_params_gpu_pool_gib is required (no role default): production's pool.
    gpu_pool_gib: int = 124
    iommu: str = _role("kernel_params_iommu")
    # The per-distribution default of kernel_params_ttm_module (roles/kernel_params/vars).
    ttm_module: str = "ttm"
    gttsize_mib: int = _role("kernel_params_amdgpu_gttsize_mib")
    simulated: bool = False
    rocm_release: str = _role("rocm_release")
    # PCI ids (vendor:device) passed through to the VM with vfio-pci.
    vfio_pci_ids: list[str] = []
    fabric_address: str | None = None
    fabric_mtu: int = 9000
    claimed_speed_gbps: float = 100
    dpu_mode: str | None = "dpu"
    # The slowest generation speed (tokens/s) the node's models may bench at.
    bench_min_tps: float | None = None
    # Per model whose server this node heads: the inventory's min_tps.
    model_min_tps: dict[str, float] = {}
    # Models whose llama-server this node runs (it heads their placement).
    served_models: list[str] = []
    # Per model split over RPC with this node as head: the workers' fabric addresses.
    split_workers: dict[str, list[str]] = {}
    # Phase 6: whether this node runs the cluster's database, and where.
    database_host: bool = False
    database_address: str | None = None
    database_port: int = 5432

    @property
    def pages_limit(self) -> int:
        return self.gpu_pool_gib * PAGES_PER_GIB

    @classmethod
    def from_host(cls, host: Host, fabric_addresses: dict[str, str] | None = None) -> Expectations:
        """`fabric_addresses` (host → fabric address of every node) names the
        workers of the models this host splits; Inventory.fabric_addresses()."""
        node = host.node
        if node is None:
            return cls(host=host.name)
        hw = node.sovereign_hardware
        v = host.vars
        headed = [m for m in node.sovereign_models if m.enabled and m.placement[0] == host.name]
        fabric = fabric_addresses or {}
        return cls(
            host=host.name,
            cpu_model=hw.cpu_model,
            cpu_threads=hw.cpu_threads,
            memory_gib=hw.memory_gib,
            gfx_target=hw.gfx_target,
            nvme_count=len(hw.nvme),
            gpu_pool_gib=int(v.get("kernel_params_gpu_pool_gib", cls.model_fields["gpu_pool_gib"].default)),
            iommu=str(_option(v, "kernel_params_iommu")),
            # As the kernel_params role decides: AMD's DKMS driver names it amdttm.
            ttm_module=str(v.get("kernel_params_ttm_module")
                           or ("amdttm" if _option(v, "rocm_use_dkms") else "ttm")),
            gttsize_mib=int(_option(v, "kernel_params_amdgpu_gttsize_mib") or 0),
            simulated=node.sovereign_simulated_hardware,
            rocm_release=str(_option(v, "rocm_release")),
            vfio_pci_ids=[str(i) for i in v.get("vfio_pci_ids", [])],
            fabric_address=str(node.sovereign_fabric_address),
            fabric_mtu=node.sovereign_fabric.mtu,
            claimed_speed_gbps=float(node.sovereign_fabric.claimed_speed_gbps),
            dpu_mode=node.sovereign_dpu.mode if node.sovereign_dpu else None,
            model_min_tps={m.name: float(m.min_tps) for m in headed if m.min_tps is not None},
            served_models=[m.name for m in headed],
            split_workers={m.name: [fabric[w] for w in m.placement[1:] if w in fabric]
                           for m in headed if len(m.placement) > 1},
            database_host=_runs_database(host),
            database_address=str(v["ansible_host"]) if v.get("ansible_host") else None,
            database_port=int(v.get("sovereign_postgres_port", 5432)),
        )


def _runs_database(host: Host) -> bool:
    """Role postgres's postgres_host: sovereign_postgres_host, else the orchestrator."""
    named = host.vars.get("sovereign_postgres_host")
    if named:
        return str(named) == host.name
    return host.node is not None and host.node.sovereign_role == "orchestrator"


def _option(host_vars: dict[str, Any], option: str) -> Any:
    """A role option as the role sees it: the inventory's value, else the role's default."""
    return host_vars[option] if option in host_vars else role_default(option)
