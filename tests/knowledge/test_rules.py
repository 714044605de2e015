"""The methodology rules against a real Postgres: versions supersede, history,
retire, bad input, and Postgres refusing an edit in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sovereign.knowledge import KnowledgeDB
from sovereign.knowledge.rules import RuleRejected, add_rule, get_rule, history, list_rules, retire_rule

TEMP = {"metric": "gpu_temp_c", "operator": "<", "value": "85", "unit": "C"}


def test_a_new_version_supersedes_the_open_one(kdb: KnowledgeDB) -> None:
    one = add_rule(kdb, "gpu-temp", kind="threshold", statement="GPU below 85 C", params=TEMP)
    assert (one.version, one.valid_to, one.params["value"]) == (1, None, 85.0)
    two = add_rule(kdb, "gpu-temp", kind="threshold", statement="GPU below 80 C",
                   params={**TEMP, "value": 80}, severity="critical")
    versions = history(kdb, "gpu-temp")
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].valid_to == two.valid_from and versions[0].statement == "GPU below 85 C"
    assert versions[1].valid_to is None
    assert [(r.name, r.version) for r in list_rules(kdb)] == [("gpu-temp", 2)]
    assert [r.version for r in list_rules(kdb, at=one.valid_from)] == [1]
    assert get_rule(kdb, "gpu-temp", 1).statement == "GPU below 85 C"


def test_retire_closes_the_open_version_and_keeps_the_history(kdb: KnowledgeDB) -> None:
    add_rule(kdb, "no-cloud-pii", kind="forbid", statement="no PII to the cloud", params={"what": "pii"})
    retired = retire_rule(kdb, "no-cloud-pii")
    assert retired.valid_to is not None and retired.params == {"what": "pii", "scope": "all"}
    assert list_rules(kdb) == [] and [r.version for r in list_rules(kdb, every=True)] == [1]
    with pytest.raises(RuleRejected, match="already retired"):
        retire_rule(kdb, "no-cloud-pii")
    again = add_rule(kdb, "no-cloud-pii", kind="forbid", statement="no PII leaves", params={"what": "pii"})
    assert again.version == 2 and len(history(kdb, "no-cloud-pii")) == 2


def test_a_future_version_leaves_the_current_one_in_force_until_then(kdb: KnowledgeDB) -> None:
    add_rule(kdb, "backup", kind="schedule", statement="nightly", params={"cron": "0 3 * * *"})
    later = datetime.now(UTC) + timedelta(days=1)
    add_rule(kdb, "backup", kind="schedule", statement="twice a day", params={"interval": "12h"},
             valid_from=later)
    assert [r.version for r in list_rules(kdb)] == [1]
    assert [r.version for r in list_rules(kdb, at=later)] == [2]
    with pytest.raises(RuleRejected, match="valid_from"):
        add_rule(kdb, "backup", kind="schedule", statement="x", params={"interval": "1h"},
                 valid_from=later - timedelta(hours=1))


@pytest.mark.parametrize(("kind", "params", "message", "detail"), [
    ("limit", {}, "kind: unknown rule kind 'limit'", None),
    ("threshold", {"metric": "t", "operator": "~", "value": 1}, "params:", "params.operator"),
    ("threshold", {"metric": "t", "operator": "<"}, "params:", "params.value: Field required"),
    ("threshold", {**TEMP, "colour": "red"}, "params:", "params.colour: Extra inputs"),
    ("schedule", {"cron": "0 3 * *"}, "params:", "is not five fields"),
    ("schedule", {"cron": "0 3 * * *", "interval": "1h"}, "params:", "exactly one of cron or interval"),
    ("schedule", {"interval": "soon"}, "params:", "interval 'soon'"),
    ("require", {"scope": "router"}, "params:", "params.what: Field required"),
], ids=["unknown-kind", "bad-operator", "missing-value", "unknown-param", "short-cron", "cron-and-interval",
        "bad-interval", "require-without-what"])
def test_bad_input_is_refused_naming_the_key(kdb: KnowledgeDB, kind: str, params: dict[str, object],
                                             message: str, detail: str | None) -> None:
    with pytest.raises(RuleRejected, match=message) as caught:
        add_rule(kdb, "r", kind=kind, statement="s", params=params)
    assert caught.value.exit_code == 2
    if detail is not None:
        assert any(detail in line for line in caught.value.details), caught.value.details
    assert history(kdb, "r") == []


@pytest.mark.parametrize(("name", "severity", "message"), [("Bad Name", "warning", "name:"),
                                                          ("ok", "fatal", "severity:")])
def test_a_bad_name_or_severity_is_refused(kdb: KnowledgeDB, name: str, severity: str, message: str) -> None:
    with pytest.raises(RuleRejected, match=message):
        add_rule(kdb, name, kind="forbid", statement="s", params={"what": "x"}, severity=severity)


def test_unknown_rules_and_versions_are_clear_errors(kdb: KnowledgeDB) -> None:
    with pytest.raises(RuleRejected, match="no rule named 'ghost'"):
        get_rule(kdb, "ghost")
    add_rule(kdb, "real", kind="forbid", statement="s", params={"what": "x"})
    with pytest.raises(RuleRejected, match="no version 5"):
        get_rule(kdb, "real", 5)


def test_postgres_refuses_an_edit_in_place(kdb: KnowledgeDB, pg_dsn: str) -> None:
    add_rule(kdb, "gpu-temp", kind="threshold", statement="GPU below 85 C", params=TEMP)
    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        for sql in ("UPDATE sovereign.methodology_rules SET statement = 'GPU below 95 C'",
                    "UPDATE sovereign.methodology_rules SET valid_from = now() - interval '1 day'",
                    "DELETE FROM sovereign.methodology_rules"):
            with pytest.raises(psycopg.errors.RaiseException, match="never edited"):
                raw.execute(sql)
        raw.execute("SET sovereign.maintenance = 'on'")
        raw.execute("UPDATE sovereign.methodology_rules SET statement = 'GPU below 95 C'")
    assert get_rule(kdb, "gpu-temp").statement == "GPU below 95 C"
