"""How fast the `sovereign` command starts: `--help` of the root and of a few
commands, against a bare `python -c pass` measured in the same run.

Each command runs `--runs` times, the commands taking turns so that a busy
machine slows them alike. Printed per command: the median and the fastest
wall time, the median CPU time (user + system) and the median as a ratio to
`python -c pass`. The target is a median of 0.3 s or less for `sovereign
--help`; `python -X importtime -c 'import sovereign.cli.main'` says where the
time goes.

Usage: python perf/cli_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SOVEREIGN = [str(BIN / "sovereign")] if (BIN / "sovereign").exists() else [sys.executable, "-m", "sovereign"]
BASELINE = "python -c pass"
COMMANDS: dict[str, list[str]] = {
    BASELINE: [sys.executable, "-c", "pass"],
    "sovereign --help": [*SOVEREIGN, "--help"],
    "sovereign provision --help": [*SOVEREIGN, "provision", "--help"],
    "sovereign status --help": [*SOVEREIGN, "status", "--help"],
    "sovereign hw check --help": [*SOVEREIGN, "hw", "check", "--help"],
    "sovereign router --help": [*SOVEREIGN, "router", "--help"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def once(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; a run that fails stops the measure."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "COLUMNS": "100"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return wall, _children_cpu() - cpu


def measure(runs: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():  # one unmeasured run each: the page cache, .pyc files
        once(argv)
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            samples[name].append(once(argv))
    base = statistics.median(w for w, _ in samples[BASELINE])
    return {name: {"median_s": statistics.median(w for w, _ in s), "min_s": min(w for w, _ in s),
                   "cpu_s": statistics.median(c for _, c in s),
                   "ratio": statistics.median(w for w, _ in s) / base}
            for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    args = parser.parse_args()
    figures = measure(args.runs)
    print(f"CLI start, {args.runs} runs per command, against `{BASELINE}` in the same run")
    print(f"{'command':<30} {'median':>8} {'fastest':>8} {'cpu':>8} {'× python':>9}")
    for name, f in figures.items():
        print(f"{name:<30} {f['median_s']:>7.3f}s {f['min_s']:>7.3f}s {f['cpu_s']:>7.3f}s "
              f"{f['ratio']:>8.1f}×")


if __name__ == "__main__":
    main()
