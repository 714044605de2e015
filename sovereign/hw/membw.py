#!/usr/bin/env python3
"""Measure a node's memory bandwidth (standard library only, run on the node).

One process per CPU copies its own buffer, much larger than the caches,
several times at once; the result is read + write bytes per second summed
over the processes, in GB/s, printed as JSON. It is a lower bound of what
llama.cpp's kernels reach (memcpy, no SIMD tuning), used as the lab's own
roofline where the inventory's bandwidth describes other silicon.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

SIZE = 128 * 1024 * 1024
ROUNDS = 5


def _copy_rate(size: int) -> float:
    src, dst = bytearray(size), bytearray(size)
    view_src, view_dst = memoryview(src), memoryview(dst)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        view_dst[:] = view_src
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def measure(size: int = SIZE, workers: int | None = None) -> dict:
    workers = workers or os.cpu_count() or 1
    with multiprocessing.Pool(workers) as pool:
        rates = pool.map(_copy_rate, [size] * workers)
    return {"copy_gbps": round(sum(rates), 2), "workers": workers, "bytes_per_worker": size,
            "rounds": ROUNDS}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else SIZE)))
