"""`python -m sovereign.backup COMMAND [--config FILE]`: the backup as its
systemd unit runs it (role backup: sovereign-backup.service, started by its
timer), without the CLI: the settings from the file and the environment
(SOVEREIGN_BACKUP_PASSWORD, SOVEREIGN_BACKUP_POSTGRES__DSN from the unit's
environment file), progress on stderr (the journal), the result as JSON on
stdout, and the exit codes of `sovereign backup`: 4 a snapshot with no data,
a failed verification or drill; 11 bad settings; 12 a repository that cannot
be opened (docs/backup.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sovereign.backup.run import Progress, engine_of, list_snapshots, restore_drill, run_backup, verify
from sovereign.backup.settings import BackupSettings, backup_settings
from sovereign.errors import SovereignError, report

# What a command returns: its result as JSON data, and the failure it found (exit 4), if any.
Outcome = tuple[Any, SovereignError | None]


def _init(settings: BackupSettings, _read_data: float | None, _progress: Progress) -> Outcome:
    created = engine_of(settings).init()
    return {"repository": settings.repository, "engine": settings.engine, "created": created}, None


def _run(settings: BackupSettings, _read_data: float | None, progress: Progress) -> Outcome:
    return run_backup(settings, progress).model_dump(mode="json"), None


def _list(settings: BackupSettings, _read_data: float | None, _progress: Progress) -> Outcome:
    return [s.model_dump(mode="json") for s in list_snapshots(settings)], None


def _verify(settings: BackupSettings, read_data: float | None, progress: Progress) -> Outcome:
    result = verify(settings, read_data, progress)
    return result.model_dump(mode="json"), result.failure()


def _drill(settings: BackupSettings, _read_data: float | None, progress: Progress) -> Outcome:
    result = restore_drill(settings, progress)
    return result.model_dump(mode="json"), result.failure()


COMMANDS: dict[str, tuple[Callable[[BackupSettings, float | None, Progress], Outcome], str]] = {
    "init": (_init, "create the repository unless it exists (idempotent)"),
    "run": (_run, "dump the databases, snapshot them with the paths, apply the keep policy"),
    "list": (_list, "the repository's backups, oldest first"),
    "verify": (_verify, "the engine's check, and the latest snapshot holds what its manifest promises"),
    "restore-drill": (_drill, "restore the latest into a scratch Postgres and compare"),
}


def _progress(text: str) -> None:
    print(f"… {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sovereign.backup",
        description="The backup as its systemd unit runs it: "
                    + "; ".join(f"{name}: {what}" for name, (_, what) in COMMANDS.items())
                    + ". The result as JSON on stdout; exit 4 on a failed check, 11 on bad settings, "
                      "12 when the repository cannot be opened (docs/backup.md).")
    parser.add_argument("command", choices=list(COMMANDS))
    parser.add_argument("--config", "-c", type=Path,
                        default=os.environ.get("SOVEREIGN_BACKUP_CONFIG") or None,
                        help="YAML/JSON settings file (default $SOVEREIGN_BACKUP_CONFIG, else "
                             "/etc/sovereign/backup.yaml when it exists)")
    parser.add_argument("--read-data", type=float, default=None,
                        help="verify: percent of the data to read back (default: check_read_data_percent)")
    args = parser.parse_args(argv)
    work, _ = COMMANDS[args.command]
    try:
        data, failure = work(backup_settings(args.config), args.read_data, _progress)
    except SovereignError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return 130
    print(json.dumps(data, indent=2))
    return report(failure) if failure is not None else 0


if __name__ == "__main__":
    sys.exit(main())
