"""The one error hierarchy. The CLI catches `SovereignError` once and renders
its message, hint and exit code; expected failures never show a traceback."""

from __future__ import annotations

from enum import IntEnum


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
    INTERRUPTED = 130


class SovereignError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


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
