# ruff: noqa: S608  (column lists are module constants; every value is a bound parameter)
"""The methodology rules: the owner's standards as data.

A rule has a `name` and versions. A version holds a statement, a `kind`
(threshold, schedule, forbid, require) with parameters that fit that kind
(`PARAMS`, validated here), a severity, and `valid_from` / `valid_to`. A
version is never edited: `add` of a name that has an open version closes it
(its `valid_to` becomes the new one's `valid_from`) and adds the next version
in one statement; `retire` closes the open version now. Postgres refuses any
other UPDATE, and every DELETE (migrations/postgres/0001_init.sql).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sovereign.errors import ExitCode, SovereignError, validation_details
from sovereign.knowledge.store import KnowledgeDB

COLS = ["name", "version", "statement", "kind", "params", "severity", "valid_from", "valid_to", "created_at"]
SELECT = f"SELECT {', '.join(COLS)} FROM sovereign.methodology_rules"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
SEVERITIES = ("info", "warning", "critical")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_INTERVAL = re.compile(r"^[1-9][0-9]*[smhdw]$")


class RuleRejected(SovereignError):
    """A rule that does not fit: an unknown kind, parameters that do not fit it,
    a bad name or time (bad input)."""

    exit_code = ExitCode.USAGE


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThresholdParams(_Params):
    """`metric operator value [unit]`, e.g. gpu_temp_c > 85 C."""

    metric: str = Field(min_length=1)
    operator: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float
    unit: str | None = None


class ScheduleParams(_Params):
    """Exactly one of `cron` (five fields) or `interval` (e.g. 15m, 6h, 7d, 2w);
    `what` is what runs on it."""

    cron: str | None = None
    interval: str | None = None
    what: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleParams:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
                raise ValueError(f"cron {self.cron!r} is not five fields (minute hour day month weekday)")
        if self.interval is not None and not _INTERVAL.match(self.interval):
            raise ValueError(f"interval {self.interval!r} is not a number and a unit of s, m, h, d or w")
        return self


class ScopeParams(_Params):
    """`what` is forbidden (or required) within `scope` (a host, a group, a service; default all)."""

    what: str = Field(min_length=1)
    scope: str = Field("all", min_length=1)


PARAMS: dict[str, type[_Params]] = {"threshold": ThresholdParams, "schedule": ScheduleParams,
                                    "forbid": ScopeParams, "require": ScopeParams}
KINDS = tuple(PARAMS)


class Rule(BaseModel):
    name: str
    version: int
    statement: str
    kind: str
    params: dict[str, Any]
    severity: str
    valid_from: datetime
    valid_to: datetime | None
    created_at: datetime

    def open_at(self, when: datetime) -> bool:
        return self.valid_from <= when and (self.valid_to is None or when < self.valid_to)


def check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` validated against `kind`'s model, as stored (defaults filled, None dropped)."""
    model = PARAMS.get(kind)
    if model is None:
        raise RuleRejected(f"kind: unknown rule kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    try:
        return model.model_validate(params).model_dump(exclude_none=True)
    except ValidationError as exc:
        fields = ", ".join(model.model_fields)
        raise RuleRejected(f"params: these parameters do not fit a {kind} rule",
                           hint=f"a {kind} rule takes: {fields} ({(model.__doc__ or '').strip()})",
                           details=[f"params.{line}" for line in validation_details(exc)]) from None


def _rule(row: Any) -> Rule:
    return Rule.model_validate(dict(zip(COLS, row, strict=True)))


def add_rule(kdb: KnowledgeDB, name: str, *, kind: str, statement: str, params: dict[str, Any],
             severity: str = "warning", valid_from: datetime | None = None) -> Rule:
    """A new rule, or the next version of `name` (closing the open one)."""
    from psycopg.types.json import Jsonb

    if not NAME.match(name):
        raise RuleRejected(f"name: {name!r} is not a rule name",
                           hint="lowercase letters, digits, '.', '_' and '-', from a letter or digit")
    if not statement.strip():
        raise RuleRejected("statement: a rule needs its statement (what the standard says, in words)")
    if severity not in SEVERITIES:
        raise RuleRejected(f"severity: unknown severity {severity!r}",
                           hint=f"one of: {', '.join(SEVERITIES)}")
    stored = check_params(kind, params)
    now = datetime.now(UTC)
    start = (valid_from or now).astimezone(UTC)
    with kdb.transaction(f"rule.{name}"):
        current = kdb.run(f"{SELECT} WHERE name = %s AND valid_to IS NULL", (name,), "one")
        if current is not None and _rule(current).valid_from > start:
            raise RuleRejected(f"valid_from: {start.isoformat()} is before version {current[1]} of {name} "
                               f"took effect ({_rule(current).valid_from.isoformat()})")
        row = kdb.run(
            f"""WITH closed AS (UPDATE sovereign.methodology_rules SET valid_to = %(start)s
                                WHERE name = %(name)s AND valid_to IS NULL RETURNING version)
                INSERT INTO sovereign.methodology_rules ({', '.join(COLS)})
                SELECT %(name)s, coalesce((SELECT max(version) FROM sovereign.methodology_rules
                                           WHERE name = %(name)s), 0) + 1,
                       %(statement)s, %(kind)s, %(params)s, %(severity)s, %(start)s, NULL, %(now)s
                WHERE (SELECT count(*) FROM closed) >= 0  -- closes the open version first
                RETURNING {', '.join(COLS)}""",
            {"name": name, "statement": statement, "kind": kind, "params": Jsonb(stored),
             "severity": severity, "start": start, "now": now}, "one")
    return _rule(row)


def history(kdb: KnowledgeDB, name: str) -> list[Rule]:
    """Every version of `name`, oldest first (empty when there is no such rule)."""
    return [_rule(r) for r in kdb.run(f"{SELECT} WHERE name = %s ORDER BY version", (name,), "all")]


def get_rule(kdb: KnowledgeDB, name: str, version: int | None = None) -> Rule:
    """A version of `name` (default: the latest)."""
    versions = history(kdb, name)
    if not versions:
        raise RuleRejected(f"no rule named {name!r}", hint="sovereign knowledge rules list --all")
    if version is None:
        return versions[-1]
    for rule in versions:
        if rule.version == version:
            return rule
    raise RuleRejected(f"rule {name} has no version {version} (it has 1..{versions[-1].version})")


def list_rules(kdb: KnowledgeDB, *, every: bool = False, at: datetime | None = None) -> list[Rule]:
    """The versions in force at `at` (default now), or with `every` the latest
    version of every rule, retired ones included."""
    if every:
        rows = kdb.run(f"SELECT DISTINCT ON (name) {', '.join(COLS)} FROM sovereign.methodology_rules "
                       "ORDER BY name, version DESC", (), "all")
        return [_rule(r) for r in rows]
    when = (at or datetime.now(UTC)).astimezone(UTC)
    rows = kdb.run(f"{SELECT} WHERE valid_from <= %s AND (valid_to IS NULL OR valid_to > %s) ORDER BY name",
                   (when, when), "all")
    return [_rule(r) for r in rows]


def retire_rule(kdb: KnowledgeDB, name: str) -> Rule:
    """Close the open version of `name` now."""
    with kdb.transaction(f"rule.{name}"):
        row = kdb.run(f"UPDATE sovereign.methodology_rules SET valid_to = greatest(%s, valid_from) "
                      f"WHERE name = %s AND valid_to IS NULL RETURNING {', '.join(COLS)}",
                      (datetime.now(UTC), name), "one")
    if row is None:
        get_rule(kdb, name)  # no such rule: that error
        raise RuleRejected(f"rule {name} is already retired",
                           hint=f"sovereign knowledge rules history {name}")
    return _rule(row)
