"""The semantic lookup off a miss's critical path (ladder.py `consult_crystals`): the
first local tier's request runs alongside the embedding and the search, with a real
llama-server tier (SmolLM2) and the cloud stand-in (simulated) that makes the crystal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from router_helpers import router_of, standin_calls, tiers_config

QUESTION = "What is the capital of Italy?"
PARAPHRASE = "Which city is the capital of Italy?"


@pytest.fixture
def router(smol_server, standin, serve_router) -> Any:
    """system-1 (SmolLM2, threshold 0: it answers whatever it says), system-2 off, the
    stand-in as the cloud; one crystal ("Rome.") made by asking the cloud tier by name."""
    cfg = tiers_config(smol_server, None, standin.url)
    cfg["tiers"][0]["threshold"] = 0.0
    cfg["tiers"][1] = {"name": "system-2", "enabled": False}
    srv, _ = serve_router(cfg)
    made = chat(srv, QUESTION, model="cloud")
    assert made["sovereign"]["tier"] == "cloud" and made["choices"][0]["message"]["content"] == "Rome."
    srv.call(router_of(srv).drain())
    return srv


def chat(srv: Any, text: str, **kw: Any) -> dict[str, Any]:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 48, **kw}
    r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=60)
    r.raise_for_status()
    return r.json()


def steps(resp: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["tier"], s["decision"]) for s in resp["sovereign"]["path"]]


def test_a_semantic_hit_cancels_the_tier_request_and_never_shows_its_text(router, standin) -> None:
    calls = standin_calls(standin)
    resp = chat(router, PARAPHRASE)
    sov = resp["sovereign"]
    assert sov["crystallized"]["match"] == "semantic" and sov["tier"] == "crystal"
    assert resp["choices"][0]["message"]["content"] == "Rome."  # the crystal's text, not SmolLM2's
    assert steps(resp) == [("system-1", "cancelled"), ("crystals", "crystallized")]
    assert "answered first" in sov["path"][0]["reason"]
    assert standin_calls(standin) == calls
    r = router_of(router)
    router.call(r.drain())
    atts = r.store.attempts(resp["id"])
    assert [(a.tier, a.decision) for a in atts] == steps(resp)
    assert all(not a.answer for a in atts)  # no tier answer was kept for the hit


def test_a_semantic_miss_answers_from_the_tier_started_alongside(router, standin) -> None:
    calls = standin_calls(standin)
    resp = chat(router, "Which planet is the largest?")  # the same block (general), no crystal near it
    sov = resp["sovereign"]
    assert sov["crystallized"] is None and sov["tier"] == "system-1"
    assert steps(resp) == [("system-1", "accepted")]
    assert resp["choices"][0]["message"]["content"].strip()
    assert resp["choices"][0]["message"]["content"] != "Rome."
    assert standin_calls(standin) == calls
    r = router_of(router)
    router.call(r.drain())
    atts = r.store.attempts(resp["id"])
    assert [(a.seq, a.tier, a.decision) for a in atts] == [(1, "system-1", "accepted")]


def test_an_exact_hit_starts_no_tier(router) -> None:
    resp = chat(router, "what is the capital of  ITALY?")
    assert resp["sovereign"]["crystallized"]["match"] == "exact"
    assert steps(resp) == [("crystals", "crystallized")]


def test_the_cloud_is_never_started_alongside_the_lookup(router, standin) -> None:
    calls = standin_calls(standin)
    resp = chat(router, PARAPHRASE, model="cloud")  # the first rung is the cloud: the lookup goes first
    assert resp["sovereign"]["crystallized"]["match"] == "semantic"
    assert steps(resp) == [("crystals", "crystallized")]
    assert standin_calls(standin) == calls


def test_tools_requests_never_use_crystals(router) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    resp = chat(router, PARAPHRASE, tools=tools, model="cloud")
    assert resp["sovereign"]["crystallized"] is None
    assert ("crystals", "crystallized") not in steps(resp)
