"""`sovereign knowledge ...` through typer's CliRunner against a real Postgres:
--json output, exit codes, clear errors for bad input and a bad database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sovereign.cli.main import app
from sovereign.knowledge import KnowledgeDB
from sovereign.knowledge.events import NewEvent, append_many

RUNNER = CliRunner()


def cli(*args: str, dsn: str | None = None) -> tuple[int, str, str]:
    argv = [*args, *(["--dsn", dsn] if dsn else [])]
    result = RUNNER.invoke(app, ["knowledge", *argv])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def events(kdb: KnowledgeDB) -> list[str]:
    evs = append_many(kdb, [NewEvent(kind="deploy" if i % 2 else "check", source="test", subject=f"s{i}",
                                     payload={"i": i}) for i in range(5)])
    return [e.hash for e in evs]


def test_events_list_show_head_verify_as_json(pg_dsn: str, events: list[str]) -> None:
    code, out, _ = cli("events", "list", "--kind", "deploy", "--json", dsn=pg_dsn)
    assert code == 0 and [e["seq"] for e in json.loads(out)] == [4, 2]
    code, out, _ = cli("events", "show", "3", "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["payload"] == {"i": 2} and json.loads(out)["hash"] == events[2]
    code, out, _ = cli("events", "head", "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["hash"] == events[-1] and json.loads(out)["seq"] == 5
    code, out, _ = cli("events", "verify", "--head", events[1], "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["ok"] is True and json.loads(out)["rows"] == 5
    code, out, _ = cli("events", "verify", dsn=pg_dsn)
    assert code == 0 and "chain intact: 5 events" in out


def test_a_broken_chain_exits_4_naming_the_row(pg_dsn: str, events: list[str]) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        raw.execute("SET sovereign.maintenance = 'on'")
        raw.execute("UPDATE sovereign.behavioral_events SET subject = 'x' WHERE seq = 2")
    code, out, _ = cli("events", "verify", "--json", dsn=pg_dsn)
    problem = json.loads(out)["problem"]
    assert code == 4 and (problem["kind"], problem["seq"]) == ("edited", 2)
    code, _, err = cli("events", "verify", dsn=pg_dsn)
    assert code == 4 and "the event chain is broken (edited): seq 2" in " ".join(err.split())


def test_a_rewritten_table_exits_4_with_the_kept_head(pg_dsn: str, events: list[str]) -> None:
    code, out, _ = cli("events", "head", dsn=pg_dsn)
    assert (code, out) == (0, events[-1] + "\n")
    code, _, err = cli("events", "verify", "--head", "f" * 64, dsn=pg_dsn)
    assert code == 4 and "rewritten" in err
    code, _, err = cli("events", "verify", "--head", "5:abc", dsn=pg_dsn)
    assert code == 2 and "is not a chain hash" in err


def test_an_unknown_event_is_bad_input(pg_dsn: str, kdb: KnowledgeDB) -> None:
    code, _, err = cli("events", "show", "nope", dsn=pg_dsn)
    assert code == 2 and "no event with seq or id 'nope'" in err


def test_rules_add_list_show_retire_history_as_json(pg_dsn: str, kdb: KnowledgeDB) -> None:
    add = ("rules", "add", "gpu-temp", "--kind", "threshold", "--statement", "GPU below 85 C",
           "-p", "metric=gpu_temp_c", "-p", "operator=<", "-p", "value=85", "-p", "unit=C")
    code, out, _ = cli(*add, "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["version"] == 1 and json.loads(out)["params"]["value"] == 85.0
    code, out, _ = cli(*add[:-2], "-p", "unit=celsius", "--severity", "critical", dsn=pg_dsn)
    assert code == 0 and "rule gpu-temp version 2, superseding version 1" in out
    code, out, _ = cli("rules", "list", "--json", dsn=pg_dsn)
    assert code == 0 and [(r["name"], r["version"]) for r in json.loads(out)] == [("gpu-temp", 2)]
    code, out, _ = cli("rules", "show", "gpu-temp", "--version", "1", "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["params"]["unit"] == "C" and json.loads(out)["valid_to"]
    code, out, _ = cli("rules", "retire", "gpu-temp", "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out)["valid_to"] is not None
    code, out, _ = cli("rules", "history", "gpu-temp", "--json", dsn=pg_dsn)
    assert code == 0 and [r["version"] for r in json.loads(out)] == [1, 2]
    code, out, _ = cli("rules", "list", "--json", dsn=pg_dsn)
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(("args", "message"), [
    (("--kind", "limit", "--statement", "s"), "kind: unknown rule kind 'limit'"),
    (("--kind", "threshold", "--statement", "s", "-p", "metric=t"), "params.operator: Field required"),
    (("--kind", "forbid", "--statement", "s", "-p", "what"), "--param 'what': not KEY=VALUE"),
], ids=["unknown-kind", "params-do-not-fit", "param-not-key-value"])
def test_rules_bad_input_exits_2(pg_dsn: str, kdb: KnowledgeDB, args: tuple[str, ...], message: str) -> None:
    code, _, err = cli("rules", "add", "r", *args, dsn=pg_dsn)
    assert code == 2 and message in err


def test_no_dsn_is_a_settings_error(tmp_path: Path) -> None:
    code, _, err = cli("events", "list")
    assert code == 11 and "no knowledge database is configured" in err and "SOVEREIGN_KNOWLEDGE_DSN" in err


def test_an_unreachable_database_names_the_host_never_the_password(pg_cluster: object) -> None:
    from testbed import free_port

    dsn = f"postgresql://owner:s3cret-pass@127.0.0.1:{free_port()}/knowledge"
    code, _, err = cli("events", "list", dsn=dsn)
    assert code == 12 and "cannot reach the knowledge database at host 127.0.0.1" in err
    assert "s3cret-pass" not in err


def test_a_malformed_dsn_is_a_settings_error_that_does_not_echo_it() -> None:
    code, _, err = cli("events", "list", dsn="host=x password=s3cret-pass =broken")
    assert code == 11 and "not a valid Postgres connection string" in err and "s3cret-pass" not in err


def test_the_dsn_comes_from_the_environment_or_a_config_file(pg_dsn: str, kdb: KnowledgeDB, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "knowledge.yml"
    config.write_text(f"dsn: '{pg_dsn}'\n")
    assert cli("events", "list", "--config", str(config), "--json")[:2] == (0, "[]\n")
    monkeypatch.setenv("SOVEREIGN_KNOWLEDGE_DSN", pg_dsn)
    assert cli("events", "list", "--json")[:2] == (0, "[]\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("dsn: x\nport: 5\n")
    code, _, err = cli("events", "list", "--config", str(bad))
    assert code == 11 and "port" in err
