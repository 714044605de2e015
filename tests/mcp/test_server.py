"""The MCP data server end to end: the real server (`python -m sovereign.mcp`),
real Postgres and Qdrant's embedded engine behind it, the SDK's own client in
front, over streamable HTTP."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from mcp import MCPError
from mcp_helpers import KEY, OTHER_KEY, Served, call, with_client
from pydantic import SecretStr

from sovereign.knowledge.events import NewEvent, append
from sovereign.knowledge.rules import add_rule
from sovereign.mcp.pin import FIELDS, pin_of

PINNED = {"search_knowledge", "list_events", "get_rules", "query_crystals"}
SIDE_EFFECTS = ("write", "delete", "update", "run", "exec", "create", "insert", "remove", "set", "put",
                "send", "drop")


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def test_the_tools_listed_are_the_pinned_four_and_hash_to_the_pin(served: Served) -> None:
    tools = with_client(served, lambda c: c.list_tools()).tools
    assert {t.name for t in tools} == PINNED
    dumped = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    wire = [{k: v for k, v in d.items() if k in FIELDS} for d in dumped]
    assert pin_of(sorted(wire, key=lambda d: d["name"])) == served.bed.config["tools_pin"]


def test_no_tool_has_a_side_effect_in_its_name_and_each_says_it_only_reads(served: Served) -> None:
    tools = with_client(served, lambda c: c.list_tools()).tools
    for tool in tools:
        words = tool.name.lower().split("_")
        assert not [w for w in words if w in SIDE_EFFECTS], tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.destructive_hint is False, tool.name


def test_list_events_returns_what_knowledge_wrote_newest_first(served: Served) -> None:
    kdb = served.bed.knowledge
    kind = f"focus-{uuid.uuid4().hex[:6]}"
    for n in range(3):
        append(kdb, NewEvent(kind=kind, source="kairos", subject=f"block {n}", payload={"minutes": 25 * n}))
    append(kdb, NewEvent(kind="other", source="kairos", subject="noise"))
    events = structured(call(served, "list_events", {"kind": kind, "limit": 2}))["events"]
    assert [e["subject"] for e in events] == ["block 2", "block 1"]
    assert events[0]["payload"] == {"minutes": 50} and events[0]["kind"] == kind
    everything = structured(call(served, "list_events", {}))["events"]
    assert everything[0]["subject"] == "noise"


def test_get_rules_returns_the_versions_in_force_at_a_time(served: Served) -> None:
    kdb = served.bed.knowledge
    name = f"deep-work-{uuid.uuid4().hex[:6]}"
    first = add_rule(kdb, name, kind="threshold", statement="two deep blocks a day",
                     params={"metric": "deep_blocks", "operator": ">=", "value": 2})
    time.sleep(0.01)
    add_rule(kdb, name, kind="threshold", statement="three deep blocks a day",
             params={"metric": "deep_blocks", "operator": ">=", "value": 3})
    now = {r["name"]: r for r in structured(call(served, "get_rules", {}))["rules"]}
    assert now[name]["statement"] == "three deep blocks a day" and now[name]["version"] == 2
    then = first.valid_from + timedelta(microseconds=1)
    earlier = {r["name"]: r for r in structured(call(served, "get_rules", {"at": then.isoformat()}))["rules"]}
    assert earlier[name]["version"] == 1
    before = (first.valid_from - timedelta(days=1)).isoformat()
    assert name not in {r["name"] for r in structured(call(served, "get_rules", {"at": before}))["rules"]}


def test_query_crystals_returns_a_crystal_the_routers_store_wrote(served: Served) -> None:
    from sovereign.router.store import Crystal, RouterStore

    store = RouterStore.postgres(SecretStr(served.bed.crystals_dsn))
    word = uuid.uuid4().hex[:8]
    for n, (question, answer) in enumerate([(f"What is {word}?", "A test word."),
                                            ("Is 100% sure?", f"Yes, {word} is."),
                                            ("Unrelated?", "Nothing to see.")]):
        store.put_crystal(Crystal(id=f"c-{word}-{n}", created_at=time.time() + n, exact_key=f"k{n}",
                                  domain="general", single_turn=True, system_key="", prompt=question,
                                  messages=[{"role": "user", "content": question}], answer=answer,
                                  provider="gemma", model="gemma-3-1b", raw_response={}))
    store.close()
    found = structured(call(served, "query_crystals", {"text": word.upper()}))["crystals"]
    assert [c["id"] for c in found] == [f"c-{word}-1", f"c-{word}-0"]  # question or answer, newest first
    assert found[1] == {"id": f"c-{word}-0", "question": f"What is {word}?", "answer": "A test word.",
                        "provider": "gemma", "created_at": found[1]["created_at"]}
    assert datetime.fromisoformat(found[1]["created_at"]).tzinfo is not None
    percent = structured(call(served, "query_crystals", {"text": "%"}))["crystals"]
    assert [c["id"] for c in percent] == [f"c-{word}-1"]  # % is taken literally, not as a wildcard
    assert len(structured(call(served, "query_crystals", {"limit": 1}))["crystals"]) == 1


def test_search_knowledge_finds_a_passage_ingested_into_the_rag_store(served: Served) -> None:
    from sovereign.rag.ingest import ingest
    from sovereign.rag.settings import rag_settings
    from sovereign.rag.store import RagStore

    docs = served.bed.tmp / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "kettle.md").write_text("# Kettle\n\nDescale the kettle with citric acid every month.\n")
    (docs / "garden.md").write_text("# Garden\n\nWater the tomatoes at dawn in the summer.\n")
    with RagStore.open(rag_settings(served.bed.rag_config)) as store:
        ingest(store, [docs])
    hits = structured(call(served, "search_knowledge", {"query": "descale kettle citric acid", "limit": 2}))
    best = hits["passages"][0]
    assert best["source"].endswith("kettle.md") and "citric acid" in best["text"]
    assert best["end"] > best["start"] >= 0 and len(best["sha256"]) == 64


@pytest.mark.parametrize(("tool", "arguments"), [
    ("list_events", {"limit": 101}), ("list_events", {"limit": 0}), ("query_crystals", {"limit": 1000}),
    ("query_crystals", {"text": "x" * 501}), ("search_knowledge", {"query": ""}),
    ("search_knowledge", {"query": "kettle", "limit": 51}), ("get_rules", {"at": "not a time"}),
])
def test_inputs_out_of_their_limits_are_refused(served: Served, tool: str, arguments: dict[str, Any]) -> None:
    result = call(served, tool, arguments)
    assert result.is_error, (tool, arguments)


def test_a_missing_or_wrong_key_is_refused_with_401(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    missing = httpx.post(served.endpoint, json=body, headers=accept)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_key"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.post(served.endpoint, json=body, headers={**accept, "Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_key"
    near = httpx.post(served.endpoint, json=body, headers={**accept, "Authorization": f"Bearer {KEY[:-1]}"})
    assert near.status_code == 401
    statuses: list[int] = []
    with pytest.raises(ExceptionGroup) as refused:  # the SDK's client: its task group's errors
        with_client(served, lambda c: c.list_tools(), key="not-a-callers-key-at-all-000", statuses=statuses)
    assert refused.group_contains(MCPError) and statuses and set(statuses) == {401}
    # Every caller's key opens, not only the first.
    assert {t.name for t in with_client(served, lambda c: c.list_tools(), key=OTHER_KEY).tools} == PINNED


def test_a_foreign_host_or_origin_is_refused_with_403(served: Served) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    rebound = httpx.get(served.endpoint, headers={**auth, "Host": "attacker.example:8095"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    page = httpx.get(served.endpoint, headers={**auth, "Origin": "http://attacker.example"})
    assert page.status_code == 403 and page.json()["error"]["code"] == "origin_not_allowed"
    assert httpx.get(served.endpoint, headers={**auth, "Origin": "null"}).status_code == 403
    # The names it is configured to answer to pass the door (and reach the key check).
    named = httpx.get(served.endpoint, headers={"Host": "mcp.mimical.lan"})
    assert named.status_code == 401
    assert json.loads(named.text)["error"]["code"] == "missing_key"


def test_the_servers_sessions_cannot_write_even_as_an_owner(served: Served) -> None:
    """The read-only session is the code's own guard, beside the login's grants:
    here with the owner's DSN, which could write."""
    from sovereign.mcp.settings import McpSettings
    from sovereign.mcp.tools import Sources
    from sovereign.service.sql import RecordRejected, StoreUnavailable

    sources = Sources(McpSettings(crystals=served.bed.crystals_dsn, callers={}))
    try:
        with pytest.raises((RecordRejected, StoreUnavailable), match="read-only"):
            sources.crystals().execute("DELETE FROM crystals")
        assert sources.crystals().execute("SELECT COUNT(*) FROM crystals", fetch="one")[0] >= 0
    finally:
        sources.close()


def test_a_tool_whose_source_is_not_configured_answers_an_error_not_a_crash() -> None:
    import asyncio

    from mcp import Client

    from sovereign.mcp.settings import McpSettings
    from sovereign.mcp.tools import Sources, build_server

    async def ask() -> Any:
        async with Client(build_server(Sources(McpSettings(callers={})))) as client:
            return await client.call_tool("list_events", {})

    result = asyncio.run(ask())
    assert result.is_error and "no knowledge database" in result.content[0].text
