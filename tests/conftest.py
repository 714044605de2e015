"""The whole suite: in CI, a skip is a failure.

Every skip in this suite means a real part of the test bed is missing: the
llama-server binary, a model file, Postgres, root (for the lab or molecule), a
system file such as /etc/os-release. On a developer's machine that is a skip,
with its reason in the summary (`-ra`). In CI (the environment has `CI` set
to `true`, `1` or `yes`) it is a failure: a run that cannot exercise a part
must not pass as if it had.

The mechanism is the `pytest_runtest_makereport` hook below. After each phase
of a test (setup, call, teardown) it looks at the report; when CI is set, a
skipped report (from `pytest.skip()` in a test or a fixture, a `skipif` or
`skip` mark) becomes a failed one whose message names what was missing (the
skip's reason) and says that CI requires it. A skip during setup, a fixture's,
is then reported as an error, as any failing fixture is. An expected failure
(`xfail`) is left alone: it is no skip. A module skipped at collection
(`pytest.skip(allow_module_level=True)`, `pytest.importorskip`) is turned into
a collection error by `pytest_make_collect_report` in the same way.

The one way out is explicit: a test marked
`@pytest.mark.skip_in_ci_ok("why this skip is not a missing part")` keeps its
skip in CI. The reason is required. No test of this suite carries the mark
today: each of its skips is a missing part.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

# pytester drives a pytest run inside a test: tests/test_ci_skips.py uses it
# to prove the hook below.
pytest_plugins = ["pytester"]

OPT_OUT = "skip_in_ci_ok"
_CI_VALUES = {"true", "1", "yes"}


def in_ci() -> bool:
    """Whether this run is CI's: the environment has CI=true (or 1, yes)."""
    return os.environ.get("CI", "").strip().lower() in _CI_VALUES


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{OPT_OUT}(reason): this test's skip is not a missing part and stays a skip in CI "
        "(the reason is required)")


def _skip_reason(longrepr: Any) -> str:
    """The reason a skip report carries (`(path, line, "Skipped: why")`)."""
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(reason).removeprefix("Skipped: ")


def _ci_failure(what: str, reason: str) -> str:
    return (f"{what} was skipped in CI: {reason}\n"
            "A skip here means a real part of the test bed is missing (the llama-server binary, "
            "a model file, Postgres, root for the lab or molecule, a system file). CI requires "
            f"every one of them: provide it, or mark the test @pytest.mark.{OPT_OUT}(reason) if "
            "this skip is not about a missing part.")


def _opted_out(item: pytest.Item) -> bool:
    mark = item.get_closest_marker(OPT_OUT)
    if mark is None:
        return False
    reason = mark.args[0] if mark.args else mark.kwargs.get("reason")
    if not (isinstance(reason, str) and reason.strip()):
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{OPT_OUT} needs a reason")
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (report.skipped and in_ci() and not hasattr(report, "wasxfail")
            and not _opted_out(item)):
        report.outcome = "failed"
        report.longrepr = _ci_failure(item.nodeid, _skip_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = _ci_failure(collector.nodeid, _skip_reason(report.longrepr))
    return report
