"""Performance: every built phase on the lab, a cold run against an idempotent
re-run, phase by phase.

Both are measured in the same run, on freshly booted lab nodes with an empty
ledger, and printed with their ratio. The controller's caches (compiler
cache, model files, wheelhouse) stay warm across rounds, as they would for an
operator re-provisioning: the cold figure is the nodes' work, not a first
download. Needs root (the lab). Usage: `make perf`; PERF_REPEATS=N (default
3) and PERF_PHASES=1,2 narrow it.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from sovereign.engine.phases import PHASES, parse_phase_list, require_built
from sovereign.engine.provision import provision
from sovereign.errors import SovereignError, report
from sovereign.lab import lab
from sovereign.paths import project_root

REPEATS = int(os.environ.get("PERF_REPEATS", "3"))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def wanted_phases() -> list[int]:
    given = os.environ.get("PERF_PHASES")
    if given:
        # As `provision all --only` reads them: a bad or unbuilt phase is refused.
        return [require_built(PHASES[n]).number for n in parse_phase_list(given)]
    return [n for n, p in PHASES.items() if p.built]


def main() -> int:
    if os.geteuid() != 0:
        print("the measurement needs root (it brings the lab up)", file=sys.stderr)
        return 7
    inventory = project_root() / "inventory" / "lab"
    try:
        phases = wanted_phases()
    except SovereignError as exc:
        return report(exc)
    quiet = lambda _msg: None  # noqa: E731
    boot: list[float] = []
    cold: dict[int, list[float]] = {n: [] for n in phases}
    warm: dict[int, list[float]] = {n: [] for n in phases}
    for i in range(REPEATS):
        os.environ["SOVEREIGN_STATE_DIR"] = tempfile.mkdtemp(prefix="sovereign-perf-")
        lab.down(log=quiet)
        boot.append(timed(lambda: lab.up(log=quiet)))
        for runs in (cold, warm):
            for n in phases:
                runs[n].append(timed(lambda n=n: provision(inventory, [n], resume=False)))
        print(f"  round {i + 1}/{REPEATS}: lab up {boot[-1]:.1f} s, cold "
              f"{sum(cold[n][-1] for n in phases):.1f} s, re-run "
              f"{sum(warm[n][-1] for n in phases):.1f} s", file=sys.stderr)
    lab.down(log=quiet)
    med = statistics.median
    print(f"phases {','.join(map(str, phases))} on the lab (2 nodes, median of {REPEATS}):")
    print(f"  lab up (boot two nodes)  {med(boot):7.1f} s")
    print(f"  {'phase':<24} {'cold (baseline)':>15} {'re-run':>9}  re-run / cold")
    for n in phases:
        c, w = med(cold[n]), med(warm[n])
        print(f"  {n} {PHASES[n].slug:<22} {c:13.1f} s {w:7.1f} s  {w / c:.2f}x")
    c, w = (med([sum(runs[n][i] for n in phases) for i in range(REPEATS)]) for runs in (cold, warm))
    print(f"  {'all':<24} {c:13.1f} s {w:7.1f} s  {w / c:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
