"""tests/conftest.py: with CI=true a skipped test fails the run; without CI it is a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

SKIPPING = """
import pytest

@pytest.fixture
def llama_server():
    pytest.skip("llama-server not found: set SOVEREIGN_LLAMA_SERVER")

def test_skip_in_the_body():
    pytest.skip("PostgreSQL server binaries not installed")

@pytest.mark.skipif(True, reason="the lab needs root")
def test_skipif_mark():
    pass

def test_skip_in_a_fixture(llama_server):
    pass

def test_that_runs():
    assert 1 + 1 == 2

@pytest.mark.xfail(reason="a known bug, not a missing part", strict=True)
def test_expected_failure():
    assert 1 + 1 == 3

@pytest.mark.skip_in_ci_ok("only meaningful on a terminal, which CI never is")
def test_opted_out():
    pytest.skip("no terminal")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A small suite under the project's own conftest.py."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_parts=SKIPPING)
    return pytester


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_in_ci_a_skip_fails_the_run(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    value: str) -> None:
    monkeypatch.setenv("CI", value)
    result = suite.runpytest("-p", "no:cacheprovider", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The skip in the body fails the test; the skips in setup (a mark, a fixture)
    # fail it there, which pytest counts as errors.
    result.assert_outcomes(passed=1, failed=1, errors=2, xfailed=1, skipped=1)
    out = result.stdout.str()
    for reason in ("PostgreSQL server binaries not installed", "the lab needs root",
                   "llama-server not found: set SOVEREIGN_LLAMA_SERVER"):
        assert f"was skipped in CI: {reason}" in out
    assert "CI requires every one of them" in out
    result.stdout.fnmatch_lines(["SKIPPED * no terminal"])


@pytest.mark.parametrize("value", [None, "false"])
def test_without_ci_a_skip_is_a_skip(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                     value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = suite.runpytest("-p", "no:cacheprovider", "-rA")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert "skipped in CI" not in result.stdout.str()


def test_in_ci_a_module_skipped_at_collection_is_an_error(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_needs_a_module="""
import pytest
pytest.importorskip("a_module_this_machine_lacks")

def test_never_collected():
    pass
""")
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_needs_a_module.py was skipped in CI: *a_module_this_machine_lacks*"])
    monkeypatch.delenv("CI")
    assert pytester.runpytest("-p", "no:cacheprovider").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_the_opt_out_needs_a_reason(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_bare_mark="""
import pytest

@pytest.mark.skip_in_ci_ok
def test_bare():
    pytest.skip("why?")
""")
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_bare: @pytest.mark.skip_in_ci_ok needs a reason"])
