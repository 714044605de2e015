# ruff: noqa: S608  (table names come from pg_class and are quoted as identifiers)
"""The backup, its verification and the restore drill.

`run_backup`: each database is dumped (pg_dump, custom format) from one
exported snapshot, inside a REPEATABLE READ transaction that also reads every
table's row count and the event chain's head: the dump, the counts and the
head are one instant. The dumps, `chain-head.json` (the head, kept outside
Postgres) and `manifest.json` go to a staging directory, snapshotted with the
configured paths in one tagged snapshot. A snapshot with no data (no file
beyond its manifest) is a failure and is dropped.

`verify`: the engine's check, and the latest snapshot holds the files its
manifest promises; zero expected files is a failure.

`restore_drill`: the latest snapshot restored to a temporary directory, each
dump restored into a scratch cluster, every table's rows counted against the
counts at the backup and against the live database, the restored chain
verified against the head kept in the snapshot, and the live chain checked to
still contain that head. The scratch cluster is always torn down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from sovereign.backup.engines import TAG, BackupEngine, EngineCheck, Snapshot, open_engine
from sovereign.backup.scratch import ScratchPostgres
from sovereign.backup.settings import BackupSettings
from sovereign.errors import ChecksFailed, SovereignError
from sovereign.knowledge import events
from sovereign.knowledge.store import KnowledgeDB
from sovereign.service.redact import redact, register_dsn

Progress = Callable[[str], None]
STAGING_PREFIX = "sovereign-backup-"
MANIFEST, HEAD_FILE = "manifest.json", "chain-head.json"
FAILURE_HINT = "docs/backup.md: what each failure means"
_TABLES = ("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
           "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
           "ORDER BY 1, 2")


class DatabaseDump(BaseModel):
    database: str
    file: str  # relative to the staging directory
    tables: dict[str, int]  # schema.table -> rows, at the dump's snapshot
    head: events.Head | None


class Manifest(BaseModel):
    created: datetime
    engine: str
    databases: list[DatabaseDump]
    paths: list[str]
    missing: list[str]  # configured paths that did not exist


class RunResult(BaseModel):
    ok: bool
    created_repository: bool
    snapshot: Snapshot
    manifest: Manifest


def checks_failed(what: str, problems: list[str]) -> ChecksFailed:
    """A failed verification or drill as the one error (exit 4): the first problem in the
    message, the others as details."""
    return ChecksFailed(f"{what}: {problems[0]}" if problems else what, details=problems[1:],
                        hint=FAILURE_HINT)


class VerifyResult(BaseModel):
    ok: bool
    repository: str
    check: EngineCheck
    snapshot: Snapshot | None
    expected_files: list[str]
    missing_files: list[str]
    files: int
    problems: list[str]

    def failure(self) -> ChecksFailed | None:
        return None if self.ok else checks_failed(f"backup repository {self.repository} failed verification",
                                                  self.problems)


class Comparison(BaseModel):
    database: str
    what: str
    backup: Any = None
    restored: Any = None
    live: Any = None
    ok: bool
    message: str = ""


class DrillResult(BaseModel):
    ok: bool
    snapshot: Snapshot
    comparisons: list[Comparison]
    duration_s: float
    problems: list[str]

    def failure(self) -> ChecksFailed | None:
        what = f"restore drill of snapshot {self.snapshot.short_id} failed"
        return None if self.ok else checks_failed(what, self.problems)


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def engine_of(settings: BackupSettings) -> BackupEngine:
    assert settings.repository and settings.password  # backup_settings() requires both
    return open_engine(settings.engine, settings.repository, settings.password, binary=settings.engine_binary,
                       cache_dir=settings.state() / "engine-cache", timeout_s=settings.timeout_s)


# --------------------------------------------------------------------------- Postgres


def _split_dsn(dsn: str, database: str | None = None) -> tuple[str, dict[str, str], str]:
    """(the DSN without its password, the environment that carries it, the database's name)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    password = parts.pop("password", None)
    if database:
        parts["dbname"] = database
    return make_conninfo(**parts), ({"PGPASSWORD": password} if password else {}), parts.get("dbname", "")


def _databases(settings: BackupSettings) -> list[str]:
    if settings.postgres.dsn is None:
        return []
    named = settings.postgres.databases
    return named or [_split_dsn(settings.postgres.dsn.get_secret_value())[2] or "postgres"]


def _connect(dsn: str) -> KnowledgeDB:
    register_dsn(dsn)
    return KnowledgeDB.connect(SecretStr(dsn), statement_timeout_s=600.0)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_counts(kdb: KnowledgeDB) -> dict[str, int]:
    """Rows per user table (schema.table)."""
    return {f"{s}.{t}": int(kdb.run(f"SELECT count(*) FROM {_quote(s)}.{_quote(t)}", fetch="one")[0])
            for s, t in kdb.run(_TABLES, fetch="all")}


def _has_chain(kdb: KnowledgeDB) -> bool:
    return kdb.run("SELECT to_regclass('sovereign.behavioral_events') IS NOT NULL", fetch="one")[0]


def _pg(settings: BackupSettings, tool: str, *args: str, env: dict[str, str], what: str) -> None:
    proc = subprocess.run([str(settings.pg_tool(tool)), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL, timeout=settings.timeout_s)
    if proc.returncode != 0:
        raise SovereignError(f"{tool} of {what} failed (exit {proc.returncode}): "
                             f"{redact(proc.stderr.strip()[-600:])}")


def _dump(settings: BackupSettings, database: str, staging: Path) -> DatabaseDump:
    """pg_dump of `database` from a snapshot exported by a transaction that also reads
    the row counts and the chain head: the three agree."""
    assert settings.postgres.dsn is not None
    conninfo, env, _ = _split_dsn(settings.postgres.dsn.get_secret_value(), database)
    out = staging / "postgres" / f"{database}.dump"
    out.parent.mkdir(parents=True, exist_ok=True)
    kdb = _connect(_with_db(settings.postgres.dsn.get_secret_value(), database))
    try:
        with kdb.db.transaction():
            kdb.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            exported = kdb.run("SELECT pg_export_snapshot()", fetch="one")[0]
            tables = table_counts(kdb)
            top = events.head(kdb) if _has_chain(kdb) else None
            _pg(settings, "pg_dump", "--format=custom", f"--snapshot={exported}", f"--file={out}",
                f"--dbname={conninfo}", env=env, what=f"database {database}")
    finally:
        kdb.close()
    return DatabaseDump(database=database, file=str(out.relative_to(staging)), tables=tables, head=top)


def _with_db(dsn: str, database: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=database)


# --------------------------------------------------------------------------- run


def own_files(settings: BackupSettings) -> list[Path]:
    """What a backup never holds: the engine's cache and a repository on a local path (the
    ledger's directory, a default path, holds both on a node)."""
    assert settings.repository
    local = Path(settings.repository.removeprefix("filesystem:"))
    return [settings.state() / "engine-cache", *([local] if local.is_absolute() else [])]


def run_backup(settings: BackupSettings, progress: Progress | None = None) -> RunResult:
    engine = engine_of(settings)
    created = engine.init()
    _say(progress, f"repository {settings.repository} ({settings.engine}){' created' if created else ''}")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=settings.staging_dir))
    try:
        dumps = []
        for db in _databases(settings):
            _say(progress, f"pg_dump {db}")
            dumps.append(_dump(settings, db, staging))
        existing = [p for p in settings.paths if p.exists()]
        manifest = Manifest(created=datetime.now(UTC), engine=settings.engine, databases=dumps,
                            paths=[str(p) for p in existing],
                            missing=[str(p) for p in settings.paths if not p.exists()])
        if dumps:
            (staging / HEAD_FILE).write_text(json.dumps(
                {d.database: d.head.model_dump(mode="json") if d.head else None for d in dumps}, indent=2))
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        meta = 1 + bool(dumps)
        _say(progress, f"snapshot of {len(dumps)} dumps and {len(existing)} paths")
        tags = [TAG, *[f"db:{d.database}" for d in dumps]]
        snap = engine.backup([staging, *existing], tags, exclude=own_files(settings))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if (snap.files or 0) <= meta:
        engine.drop(snap)
        raise ChecksFailed(f"snapshot {snap.short_id} holds no data ({snap.files or 0} files, "
                           f"{meta} of them its own manifest): no database and no file under "
                           f"{', '.join(manifest.paths) or 'any configured path'}; it was dropped",
                           hint="configure `postgres.dsn` and `paths:` that exist (docs/backup.md)")
    _say(progress, f"keep policy ({settings.keep.model_dump()})")
    engine.forget(settings.keep.model_dump())
    return RunResult(ok=True, created_repository=created, snapshot=snap, manifest=manifest)


def list_snapshots(settings: BackupSettings) -> list[Snapshot]:
    return engine_of(settings).snapshots()


# --------------------------------------------------------------------------- verify


def _staging_root(snapshot: Snapshot) -> str | None:
    return next((p for p in snapshot.paths if Path(p).name.startswith(STAGING_PREFIX)), None)


def expected_files(snapshot: Snapshot) -> list[str]:
    """What the snapshot must hold, from its paths and tags: the manifest, and per
    tagged database its dump and the chain head file."""
    root = _staging_root(snapshot)
    if root is None:
        return []
    dbs = [t.removeprefix("db:") for t in snapshot.tags if t.startswith("db:")]
    return [f"{root}/{MANIFEST}", *([f"{root}/{HEAD_FILE}"] if dbs else []),
            *[f"{root}/postgres/{db}.dump" for db in dbs]]


def verify(settings: BackupSettings, read_data_percent: float | None = None,
           progress: Progress | None = None) -> VerifyResult:
    engine = engine_of(settings)
    percent = read_data_percent or settings.check_read_data_percent
    _say(progress, f"{settings.engine} check, reading {percent:g}% of the data")
    check = engine.check(percent)
    problems = [] if check.ok else [check.message]
    snap, files, want, missing = None, [], [], []
    try:
        found = engine.snapshots()
        snap = found[-1] if found else None
        if snap is None:
            problems.append(f"repository {settings.repository} holds no {TAG} snapshot")
        else:
            files = engine.files(snap)
            want = expected_files(snap)
            missing = sorted(set(want) - set(files))
    except SovereignError as exc:
        problems.append(exc.message)
    if snap is not None and not want:
        problems.append(f"snapshot {snap.short_id}: zero expected files (no staging directory): not a proof")
    if missing:
        problems.append(f"snapshot {snap.short_id if snap else '?'} lacks {', '.join(missing)}")
    if snap is not None and not files:
        problems.append(f"snapshot {snap.short_id} holds zero files")
    return VerifyResult(ok=not problems, repository=settings.repository or "", check=check, snapshot=snap,
                        expected_files=want, missing_files=missing, files=len(files), problems=problems)


# --------------------------------------------------------------------------- the restore drill


def _compare_counts(db: str, backup: dict[str, int], restored: dict[str, int],
                    live: dict[str, int] | None) -> list[Comparison]:
    out = []
    for table in sorted(set(backup) | set(restored) | set(live or {})):
        b, r, lv = backup.get(table), restored.get(table), (live or {}).get(table)
        ok = b == r and (live is None or lv == r)
        msg = "" if ok else (f"restored {r} rows, the backup counted {b}" if b != r
                             else f"the live database has {lv} rows, the restored {r}")
        out.append(Comparison(database=db, what=f"rows {table}", backup=b, restored=r, live=lv, ok=ok,
                              message=msg))
    return out


def _chain(db: str, what: str, got: events.Verification, kept: str, grew: str) -> Comparison:
    """One chain's verification against the head kept in the snapshot."""
    top = got.head.hash if got.head else None
    message = got.problem.message if got.problem else ("" if top == kept else grew)
    side = {"restored": top} if what == "restored chain" else {"live": top}
    return Comparison(database=db, what=what, backup=kept, ok=got.ok and top == kept, message=message, **side)


def _chain_checks(db: str, kept: events.Head | None, restored: KnowledgeDB,
                  live: KnowledgeDB | None) -> list[Comparison]:
    """The restored chain is intact and ends at the kept head; the live one still holds it."""
    if kept is None:
        return []
    out = [_chain(db, "restored chain", events.verify(restored, kept_head=kept.hash), kept.hash,
                  "the restored head is not the head kept in the snapshot")]
    if live is not None:
        now = events.verify(live, kept_head=kept.hash)
        out.append(_chain(db, "live chain", now, kept.hash,
                          f"the live chain grew to seq {now.head.seq if now.head else 0} since the backup"))
    return out


def _drill_database(settings: BackupSettings, dump: DatabaseDump, folder: Path,
                    scratch: ScratchPostgres) -> list[Comparison]:
    dsn = scratch.create_db(dump.database)
    _pg(settings, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={dsn}",
        str(folder / dump.file), env={}, what=f"database {dump.database} into the scratch cluster")
    restored = _connect(dsn)
    live: KnowledgeDB | None = None
    problems: list[Comparison] = []
    try:
        assert settings.postgres.dsn is not None
        try:
            live = _connect(_with_db(settings.postgres.dsn.get_secret_value(), dump.database))
        except SovereignError as exc:
            problems.append(Comparison(database=dump.database, what="live database", ok=False,
                                       message=exc.message))
        counts = _compare_counts(dump.database, dump.tables, table_counts(restored),
                                 table_counts(live) if live else None)
        return [*problems, *counts, *_chain_checks(dump.database, dump.head, restored, live)]
    finally:
        restored.close()
        if live is not None:
            live.close()


def restore_drill(settings: BackupSettings, progress: Progress | None = None) -> DrillResult:
    t0 = time.perf_counter()
    engine = engine_of(settings)
    found = engine.snapshots()
    if not found:
        raise ChecksFailed(f"repository {settings.repository} holds no {TAG} snapshot to restore",
                           hint="sovereign backup run")
    snap = found[-1]
    root = _staging_root(snap)
    if root is None:
        raise ChecksFailed(f"snapshot {snap.short_id} has no staging directory: not a sovereign backup")
    work = Path(tempfile.mkdtemp(prefix="sovereign-drill-", dir=settings.staging_dir))
    # The scratch cluster in the system's temp dir: the `postgres` user must reach it.
    pg_root = Path(tempfile.mkdtemp(prefix="sovereign-pg-"))
    scratch = ScratchPostgres(settings.pg_tool("initdb").parent, pg_root)
    comparisons: list[Comparison] = []
    problems: list[str] = []
    try:
        _say(progress, f"restore snapshot {snap.short_id}")
        engine.restore(snap, work / "restore", include=[root])
        folder = work / "restore" / root.lstrip("/")
        manifest = Manifest.model_validate_json((folder / MANIFEST).read_text())
        if not manifest.databases:
            problems.append(f"snapshot {snap.short_id} holds no database dump")
        else:
            _say(progress, f"scratch Postgres on port {scratch.port}")
            scratch.start()
            for dump in manifest.databases:
                _say(progress, f"pg_restore {dump.database} and compare")
                comparisons += _drill_database(settings, dump, folder, scratch)
    except (OSError, ValueError) as exc:
        problems.append(f"snapshot {snap.short_id}: {exc}")
    finally:
        scratch.stop()
        shutil.rmtree(work, ignore_errors=True)
    problems += [f"{c.database}: {c.what}: {c.message}" for c in comparisons if not c.ok]
    ok = not problems and bool(comparisons)
    return DrillResult(ok=ok, snapshot=snap, comparisons=comparisons,
                       duration_s=round(time.perf_counter() - t0, 3), problems=problems)
