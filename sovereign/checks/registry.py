"""The check registry: stable ids, one function each, and the runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sovereign.checks.model import CheckResult, Expectations, Status
from sovereign.hw.facts import Facts

CheckFn = Callable[[Facts, Expectations], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    fn: CheckFn


REGISTRY: dict[str, CheckSpec] = {}


def check(check_id: str, title: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise ValueError(f"duplicate check id {check_id}")
        REGISTRY[check_id] = CheckSpec(check_id, title, fn)
        return fn

    return register


def parse_ignore(value: str | None) -> set[str]:
    """`ID,ID,...` or `all` → a set of ids (upper-cased)."""
    if not value:
        return set()
    return {part.strip().upper() for part in value.split(",") if part.strip()}


def unknown_ids(ids: Iterable[str]) -> list[str]:
    return sorted(i for i in ids if i != "ALL" and i not in REGISTRY)


def run_checks(facts: Facts, expect: Expectations, ids: Iterable[str],
               ignore: set[str] | None = None) -> list[CheckResult]:
    ignore = ignore or set()
    results = []
    for check_id in ids:
        spec = REGISTRY[check_id]
        try:
            result = spec.fn(facts, expect)
        except Exception as exc:  # a check must never take the run down with it
            result = CheckResult(id=check_id, status=Status.FAIL,
                                 message=f"the check itself failed: {exc!r}",
                                 hint="report this with the bundle attached")
        if result.status is Status.FAIL and ("ALL" in ignore or check_id in ignore):
            result = result.model_copy(update={"ignored": True})
        results.append(result)
    return results


def skip(check_id: str, reason: str) -> CheckResult:
    return CheckResult(id=check_id, status=Status.SKIP, message=reason)
