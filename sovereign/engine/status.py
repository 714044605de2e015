"""The build at a glance: phases x hosts, from the ledger."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from sovereign.engine.ledger import Ledger
from sovereign.engine.phases import PHASES
from sovereign.inventory import load_inventory


class Cell(BaseModel):
    phase: int
    status: str  # applied | failed | running | interrupted | reset | never | not-built | not-here
    when: float | None = None
    git_commit: str | None = None
    changed: int | None = None
    skipped_steps: list[str] = []
    reboot_required: list[str] = []
    warnings: list[str] = []
    message: str | None = None
    run_id: str | None = None
    artifacts: str | None = None


class HostStatus(BaseModel):
    host: str
    phases: list[Cell]


class ClusterStatus(BaseModel):
    cluster: str
    inventory: str
    hosts: list[HostStatus]


def cluster_status(inventory: Path | str, ledger: Ledger) -> ClusterStatus:
    inv = load_inventory(inventory)
    hosts = []
    for host in inv.nodes():
        cells = []
        for number, phase in PHASES.items():
            last = ledger.latest(inv.cluster_name, host, number)
            if not phase.built and last is None:
                cells.append(Cell(phase=number, status="not-built"))
            elif last is None and phase.group not in inv.hosts[host].groups:
                cells.append(Cell(phase=number, status="not-here"))
            elif last is None:
                cells.append(Cell(phase=number, status="never"))
            else:
                cells.append(Cell(phase=number, status=last.effective_status,
                                  when=last.finished or last.started, git_commit=last.git_commit,
                                  changed=last.changed, skipped_steps=last.skipped_steps,
                                  reboot_required=last.reboot_required, warnings=last.warnings,
                                  message=last.message,
                                  run_id=last.run_id, artifacts=last.artifacts))
        hosts.append(HostStatus(host=host, phases=cells))
    return ClusterStatus(cluster=inv.cluster_name, inventory=str(inv.path), hosts=hosts)
