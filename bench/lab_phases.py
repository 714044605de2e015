"""Benchmark: phases 1-2 on the lab, a cold run against an idempotent re-run.

Both are measured in the same run, on freshly booted lab nodes, and printed
with their ratio. Needs root (the lab). Usage: `make bench`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from sovereign.engine.provision import provision
from sovereign.lab import lab
from sovereign.paths import project_root

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    if os.geteuid() != 0:
        print("the benchmark needs root (it brings the lab up)", file=sys.stderr)
        return 7
    inventory = project_root() / "inventory" / "lab"
    quiet = lambda _msg: None  # noqa: E731
    cold, warm, boot = [], [], []
    for i in range(REPEATS):
        os.environ["SOVEREIGN_STATE_DIR"] = tempfile.mkdtemp(prefix="sovereign-bench-")
        lab.down(log=quiet)
        boot.append(timed(lambda: lab.up(log=quiet)))
        cold.append(timed(lambda: provision(inventory, [1, 2], resume=False)))
        warm.append(timed(lambda: provision(inventory, [1, 2], resume=False)))
        print(f"  round {i + 1}/{REPEATS}: lab up {boot[-1]:.1f} s, cold {cold[-1]:.1f} s, "
              f"re-run {warm[-1]:.1f} s", file=sys.stderr)
    lab.down(log=quiet)
    c, w, b = (statistics.median(x) for x in (cold, warm, boot))
    print(f"phases 1-2 on the lab (2 nodes, median of {REPEATS}):")
    print(f"  lab up (boot two nodes)     {b:7.1f} s")
    print(f"  cold run (baseline)         {c:7.1f} s   1.00x")
    print(f"  idempotent re-run           {w:7.1f} s   {w / c:.2f}x of cold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
