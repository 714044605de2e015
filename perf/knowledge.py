"""The cost of the event chain: events per second appended through the chain
(`sovereign.knowledge.events`: the advisory lock, the head read, the hash, the
link-checking trigger) against plain inserts of the same rows into a table of
the same shape with no chain, no trigger and no lock, measured in the same
run on one private Postgres cluster (tests/support/testbed.py).

Two ways of writing: one event per call (`append`, autocommit; against one
INSERT per event) and batches (`append_many` of `--batch` events in one
transaction; against one executemany of as many rows). The two targets take
turns for `--rounds` rounds so that a busy machine slows them alike. Printed:
the median events per second of each and the ratio chain / plain.

The cluster runs with fsync off (the testbed's settings), so the figures are
the CPU and round-trip cost of the chain, not of the disk.

Usage: python perf/knowledge.py [--events N] [--batch N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from psycopg.types.json import Jsonb  # noqa: E402
from testbed import PostgresCluster, find_pg_bin  # noqa: E402

from sovereign.knowledge import KnowledgeDB, KnowledgeSettings, open_knowledge  # noqa: E402
from sovereign.knowledge.events import INSERT, NewEvent, append, append_many, verify  # noqa: E402

PLAIN = "sovereign.plain_events"
PLAIN_INSERT = INSERT.replace("sovereign.behavioral_events", PLAIN)  # the same statement, another table


def _events(n: int, tag: str) -> list[NewEvent]:
    return [NewEvent(kind="tool_call", source="perf", subject=f"{tag}-{i}",
                     payload={"tool": "search", "args": {"q": f"query {i}"}, "ms": 12.5, "ok": True})
            for i in range(n)]


def _plain_rows(events: list[NewEvent], start: int) -> list[tuple[Any, ...]]:
    """The same values, with a stand-in hash (no chain to compute)."""
    return [(start + i, uuid.uuid4().hex, datetime.now(UTC), e.source, e.kind, e.subject, Jsonb(e.payload),
             "0" * 64, uuid.uuid4().hex * 2) for i, e in enumerate(events)]


def _rate(n: int, work: Any) -> float:
    t0 = time.perf_counter()
    work()
    return n / (time.perf_counter() - t0)


def measure(kdb: KnowledgeDB, n: int, batch: int, rounds: int) -> dict[str, dict[str, float]]:
    kdb.run(f"CREATE TABLE {PLAIN} (LIKE sovereign.behavioral_events INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES)")
    seq = [0]

    def plain_one(events: list[NewEvent]) -> None:
        for row in _plain_rows(events, seq[0] + 1):
            kdb.run(PLAIN_INSERT, row)
        seq[0] += len(events)

    def plain_batch(events: list[NewEvent]) -> None:
        for i in range(0, len(events), batch):
            chunk = events[i:i + batch]
            kdb.db.executemany(PLAIN_INSERT, _plain_rows(chunk, seq[0] + 1))
            seq[0] += len(chunk)

    def chain_one(events: list[NewEvent]) -> None:
        for e in events:
            append(kdb, e)

    def chain_batch(events: list[NewEvent]) -> None:
        for i in range(0, len(events), batch):
            append_many(kdb, events[i:i + batch])

    targets = {"one per call": (plain_one, chain_one), f"batches of {batch}": (plain_batch, chain_batch)}
    chain_one(_events(50, "warm"))
    plain_one(_events(50, "warm"))
    out = {}
    for name, (plain, chain) in targets.items():
        rates: dict[str, list[float]] = {"plain": [], "chain": []}
        for r in range(rounds):
            rates["plain"].append(_rate(n, lambda p=plain, r=r: p(_events(n, f"p{r}"))))
            rates["chain"].append(_rate(n, lambda c=chain, r=r: c(_events(n, f"c{r}"))))
        p, c = statistics.median(rates["plain"]), statistics.median(rates["chain"])
        out[name] = {"plain_per_s": round(p), "chain_per_s": round(c), "ratio": round(c / p, 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000, help="events per target and round")
    ap.add_argument("--batch", type=int, default=100, help="events per transaction in the batch figures")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    bin_dir = find_pg_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): "
                 "apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="sovereign-pg-perf-"))
    cluster = PostgresCluster(bin_dir, root).start()
    try:
        kdb = open_knowledge(KnowledgeSettings(dsn=cluster.create_db("perf_knowledge")))
        figures = measure(kdb, args.events, args.batch, args.rounds)
        assert verify(kdb).ok, "the chain the benchmark wrote does not verify"
        kdb.close()
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    print(f"event inserts, {args.events} per target and round, median of {args.rounds} rounds "
          "(same run; ratio = chain / plain)")
    print(f"{'':<18} {'plain/s':>9} {'chain/s':>9} {'ratio':>7}")
    for name, f in figures.items():
        print(f"{name:<18} {f['plain_per_s']:>9} {f['chain_per_s']:>9} {f['ratio']:>7}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
