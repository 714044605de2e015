"""The one error hierarchy. The CLI catches `SovereignError` once and renders
its message, hint and exit code; expected failures never show a traceback."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pydantic import ValidationError


class ExitCode(IntEnum):
    """Exit codes of every `sovereign` command (documented in docs/cli.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INVALID_CONFIG = 3
    CHECKS_FAILED = 4
    PLAYBOOK_FAILED = 5
    UNREACHABLE = 6
    ENVIRONMENT = 7
    NOT_BUILT = 8
    BUNDLE_UNREADABLE = 9
    PLAN_DOES_NOT_FIT = 10
    SERVICE_CONFIG_INVALID = 11
    STORE_UNAVAILABLE = 12
    DOWNLOAD_FAILED = 13
    INTERRUPTED = 130


class SovereignError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


def validation_details(exc: ValidationError, where: str | None = None) -> list[str]:
    """A pydantic ValidationError as `[where: ]key.path: problem` lines, one
    per error (`*` for an error of the whole object)."""
    prefix = f"{where}: " if where else ""
    return [f"{prefix}{'.'.join(str(p) for p in e['loc']) or '*'}: {e['msg']}" for e in exc.errors()]


def report(exc: SovereignError, stream: TextIO | None = None) -> int:
    """Print an error as the module entry points (python -m ...) do, plainly
    (the CLI renders its own); return its exit code."""
    out = stream or sys.stderr
    print(f"error: {exc.message}", file=out)
    for line in exc.details:
        print(f"  - {line}", file=out)
    if exc.hint:
        print(f"hint: {exc.hint}", file=out)
    return int(exc.exit_code)


def run_json(work: Callable[[], Any]) -> int:
    """A module entry point (python -m sovereign.X): progress on stderr, the
    result as JSON on stdout, or the error plainly with its exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        result = work()
    except SovereignError as exc:
        return report(exc)
    print(json.dumps(result, sort_keys=True))
    return 0


class UsageError(SovereignError):
    """Options that do not go together (typer's own usage errors exit 2 too)."""

    exit_code = ExitCode.USAGE


class DownloadFailed(SovereignError):
    """A model or wheel could not be fetched, or did not verify (the file, the
    source and, for a mismatch, both hashes are named)."""

    exit_code = ExitCode.DOWNLOAD_FAILED


class InventoryError(SovereignError):
    """The inventory does not validate; `details` holds `file: key: problem` lines."""

    exit_code = ExitCode.INVALID_CONFIG


class ChecksFailed(SovereignError):
    exit_code = ExitCode.CHECKS_FAILED


class PlaybookFailed(SovereignError):
    exit_code = ExitCode.PLAYBOOK_FAILED


class HostUnreachable(SovereignError):
    exit_code = ExitCode.UNREACHABLE


class EnvironmentProblem(SovereignError):
    """Something about this machine (not the inventory) stops the command."""

    exit_code = ExitCode.ENVIRONMENT


class PhaseNotBuilt(SovereignError):
    exit_code = ExitCode.NOT_BUILT


class BundleUnreadable(SovereignError):
    exit_code = ExitCode.BUNDLE_UNREADABLE


class PlanDoesNotFit(SovereignError):
    """An enabled model does not fit its placement; `details` holds one line per model."""

    exit_code = ExitCode.PLAN_DOES_NOT_FIT
