"""The restore drill's duration (`sovereign.backup.run.restore_drill`: restic
restore of the latest snapshot, a scratch cluster's initdb and start,
pg_restore, per-table row counts on both sides, the restored chain verified
against the kept head and the live chain walked) against a plain
`pg_dump -Fc | pg_restore` of the same database into a fresh database of the
same private cluster, measured in the same run. The two take turns for
`--rounds` rounds; printed: the median seconds of each and their ratio.

The live database holds `--events` events of the knowledge chain
(tests/support/testbed.py's private cluster, fsync off).

Usage: python perf/backup.py [--events N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from pydantic import SecretStr  # noqa: E402
from testbed import PostgresCluster, find_pg_bin  # noqa: E402

from sovereign.backup.run import restore_drill, run_backup  # noqa: E402
from sovereign.backup.settings import BackupSettings  # noqa: E402
from sovereign.knowledge import KnowledgeSettings, open_knowledge  # noqa: E402
from sovereign.knowledge.events import NewEvent, append_many  # noqa: E402


def _fill(dsn: str, n: int) -> None:
    kdb = open_knowledge(KnowledgeSettings(dsn=dsn, statement_timeout_s=120))
    try:
        for start in range(0, n, 5000):
            append_many(kdb, [NewEvent(kind="tool_call", source="perf", subject=f"e{i}",
                                       payload={"tool": "search", "args": {"q": f"query {i}"}, "ms": 12.5})
                              for i in range(start, min(n, start + 5000))])
    finally:
        kdb.close()


def _plain(cluster: PostgresCluster, bin_dir: Path, db: str, round_no: int) -> float:
    """pg_dump -Fc | pg_restore into a new database of the same cluster."""
    target = f"plain_{round_no}"
    cluster.create_db(target)
    t0 = time.perf_counter()
    dump = subprocess.Popen([str(bin_dir / "pg_dump"), "-Fc", "-d", cluster.dsn_for(db)],
                            stdout=subprocess.PIPE)
    subprocess.run([str(bin_dir / "pg_restore"), "--no-owner", "--no-privileges", "-d",
                    cluster.dsn_for(target)], stdin=dump.stdout, check=True)
    dump.wait()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    bin_dir = find_pg_bin()
    if bin_dir is None or shutil.which("restic") is None:
        print("needs PostgreSQL server binaries and restic (make setup)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sovereign-perf-backup-"))
    work.chmod(0o755)
    os.environ["SOVEREIGN_STATE_DIR"] = str(work / "state")
    cluster = PostgresCluster(bin_dir, work / "pg").start()
    try:
        dsn = cluster.create_db("knowledge")
        _fill(dsn, args.events)
        settings = BackupSettings(repository=str(work / "repo"), password=SecretStr("perf-password"),
                                  postgres={"dsn": SecretStr(dsn)}, paths=[], staging_dir=work)
        run_backup(settings)
        drills, plains = [], []
        for r in range(args.rounds):
            t0 = time.perf_counter()
            result = restore_drill(settings)
            drills.append(time.perf_counter() - t0)
            if not result.ok:
                print(f"the drill failed: {result.problems}", file=sys.stderr)
                return 1
            plains.append(_plain(cluster, bin_dir, "knowledge", r))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)
    drill, plain = statistics.median(drills), statistics.median(plains)
    figures = {"events": args.events, "rounds": args.rounds, "drill_s": round(drill, 3),
               "plain_dump_restore_s": round(plain, 3), "ratio": round(drill / plain, 2)}
    print(f"restore drill, {args.events} events: {drill:.2f} s (median of {args.rounds})")
    print(f"plain pg_dump | pg_restore, same database: {plain:.2f} s")
    print(f"ratio drill / plain: {drill / plain:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
