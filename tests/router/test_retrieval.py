"""Retrieval: the router adds context from the RAG store to a local tier's
request and names the chunks it used. A real Qdrant embedded engine ingested
through sovereign.rag's own ingest, the real all-MiniLM-L6-v2 on both sides, a
real llama-server tier (SmolLM2) behind a pass-through that keeps what it was
sent, and the cloud stand-in (simulated) with its record of what it received."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from router_helpers import LAB, router_of, standin_calls, tiers_config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from testbed import ThreadedServer

from sovereign.errors import SovereignError
from sovereign.rag import RagSettings, RagStore
from sovereign.rag.ingest import ingest
from sovereign.router.callers import Policy, Registry
from sovereign.router.config import load_settings
from sovereign.router.retrieval import HEADER, select

BOAT = ("# The boat\n\nThe owner's sailing boat is called Marigold. Its hull is painted vermilion and it is "
        "moored at pier seven in Lowestoft harbour.\n")
BEES = ("The beehives stand behind the orchard wall. Inspect the hives every nine days from April to August, "
        "and never open them in the rain.\n")
PIANO = "The piano was tuned last in March by Mr Okafor; it should be tuned again each spring.\n"
QUESTION = "What colour is the hull of the owner's boat?"
BOAT_TEXT = "painted vermilion"  # a piece of the boat's chunk: it must never reach the cloud


# --------------------------------------------------------------------------- the parts


@pytest.fixture(scope="module")
def rag_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Any]:
    """Three documents ingested into an embedded Qdrant store (closed again: the
    engine serves one client at a time, and the router opens it)."""
    root = tmp_path_factory.mktemp("rag")
    docs = root / "docs"
    docs.mkdir()
    (docs / "boat.md").write_text(BOAT)
    (docs / "bees.txt").write_text(BEES)
    (docs / "piano.md").write_text(PIANO)
    settings = RagSettings(path=root / "qdrant", state_dir=root / "state",
                           embedding={"backend": "minilm", "model_dir": minilm_dir})
    with RagStore.open(settings) as store:
        report = ingest(store, [docs])
        assert report.added == 3 and not report.failed
        [boat] = [h for h in store.search(QUESTION, 4) if h.source.endswith("boat.md")]
    return {"path": root / "qdrant", "boat": boat}


class Capture:
    """A pass-through in front of a llama-server that keeps every request body it forwards."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[dict[str, Any]] = []

    async def forward(self, request: Request) -> Response:
        raw = await request.body()
        if request.method == "POST":
            self.bodies.append(json.loads(raw))
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
        async with httpx.AsyncClient() as http:
            r = await http.request(request.method, self.target + request.url.path, content=raw,
                                   headers=headers, timeout=60)
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))

    def chats(self) -> list[list[dict[str, Any]]]:
        return [b["messages"] for b in self.bodies if "messages" in b]


@pytest.fixture(scope="module")
def capture_server(smol_server: Any) -> Iterator[tuple[ThreadedServer, Capture]]:
    cap = Capture(smol_server.url)
    srv = ThreadedServer(Starlette(routes=[Route("/{path:path}", cap.forward, methods=["GET", "POST"])]))
    srv.start()
    yield srv, cap
    srv.stop()


@pytest.fixture
def capture(capture_server: tuple[ThreadedServer, Capture]) -> Capture:
    capture_server[1].bodies.clear()
    return capture_server[1]


@pytest.fixture
def router(serve_router: Any, capture_server: Any, standin: Any, rag_dir: dict[str, Any],
           minilm_dir: Path) -> Any:
    """A router: system-1 (SmolLM2, through the capture), the cloud stand-in, the RAG store."""

    def make(threshold: float = 0.0, retrieve: bool = False, name: str = "router",
             **over: Any) -> tuple[ThreadedServer, Any]:
        minilm = {"backend": "minilm", "model_dir": str(minilm_dir)}
        store = {"path": str(rag_dir["path"]), "embedding": minilm, **over.pop("store", {})}
        cfg = tiers_config(None, None, standin.url, embedding=minilm, rag={"store": store}, **over)
        cfg["tiers"] = [{"name": "system-1", "endpoint": capture_server[0].url, "timeout_s": 20,
                         "threshold": threshold, "max_tokens": 12, "retrieve": retrieve},
                        {"name": "system-2", "enabled": False}]
        return serve_router(cfg, name=name)

    return make


def ask(srv: ThreadedServer, text: str = QUESTION, key: str | None = None,
        **sovereign: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "auto", "max_tokens": 12,
                            "messages": [{"role": "user", "content": text}]}
    if sovereign:
        body["sovereign"] = sovereign
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    resp = httpx.post(srv.url + "/v1/chat/completions", json=body, headers=headers, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def attempts_of(srv: ThreadedServer, request_id: str) -> list[Any]:
    r = router_of(srv)
    srv.call(r.drain())
    return r.store.attempts(request_id)


def context_of(messages: list[dict[str, Any]]) -> str | None:
    first = messages[0]
    return first["content"] if first["role"] == "system" and first["content"].startswith(HEADER) else None


# --------------------------------------------------------------------------- asked, not asked


def test_asked_the_chunks_are_named_and_the_context_reaches_the_local_tier(router, capture, rag_dir) -> None:
    srv, _ = router()
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    comp = client.chat.completions.create(model="auto", max_tokens=12,
                                          messages=[{"role": "user", "content": QUESTION}],
                                          extra_body={"sovereign": {"retrieve": True}})
    sov = comp.model_extra["sovereign"]
    boat = rag_dir["boat"]
    got = sov["retrieval"]
    assert sov["tier"] == "system-1" and got["used"] is True and "reason" not in got
    assert got["tiers"] == ["system-1"]
    assert [c["chunk_id"] for c in got["chunks"]] == [boat.chunk_id]  # the bees and the piano are below 0.3
    assert got["chunks"][0]["source"].endswith("boat.md") and got["chunks"][0]["score"] >= 0.3
    assert (got["chunks"][0]["start"], got["chunks"][0]["end"]) == (boat.start, boat.end)
    [sent] = capture.chats()
    context = context_of(sent)
    assert context is not None and f"[1] {boat.source}#{boat.start}-{boat.end}: " in context
    assert BOAT_TEXT in context and sent[1:] == [{"role": "user", "content": QUESTION}]
    [att] = attempts_of(srv, comp.id)
    assert att.tier == "system-1" and att.chunks == [boat.chunk_id]


def test_not_asked_no_context(router, capture) -> None:
    srv, _ = router()
    body = ask(srv)
    got = body["sovereign"]["retrieval"]
    assert got == {"used": False, "reason": "not asked", "chunks": [], "tiers": []}
    assert [context_of(m) for m in capture.chats()] == [None]
    assert attempts_of(srv, body["id"])[0].chunks == []


def test_a_tier_configured_retrieves_unasked_and_the_request_may_refuse(router, capture, rag_dir) -> None:
    srv, _ = router(retrieve=True)
    unasked = ask(srv)["sovereign"]["retrieval"]
    assert unasked["used"] is True
    assert [c["chunk_id"] for c in unasked["chunks"]] == [rag_dir["boat"].chunk_id]
    refused = ask(srv, "What is the name of the boat?", retrieve=False)["sovereign"]["retrieval"]
    assert refused["used"] is False and "sovereign.retrieve: false" in refused["reason"]
    assert [context_of(m) is not None for m in capture.chats()] == [True, False]


def test_a_caller_whose_policy_denies_it_gets_none(router, capture) -> None:
    srv, settings = router(auth={"mode": "keys"})
    key = Registry(settings.keys_path()).add("reader", Policy(rag="deny"))
    got = ask(srv, key=key, retrieve=True)["sovereign"]["retrieval"]
    assert got["used"] is False and got["reason"] == "caller may not (caller 'reader': rag deny)"
    assert [context_of(m) for m in capture.chats()] == [None]


def test_nothing_close_enough_is_not_used(router, capture) -> None:
    srv, _ = router()
    got = ask(srv, "Name a colour.", retrieve=True)["sovereign"]["retrieval"]
    assert got["used"] is False and got["reason"].startswith("no passage above min_score 0.3 (best ")
    assert [context_of(m) for m in capture.chats()] == [None]


# --------------------------------------------------------------------------- the store away


def test_a_missing_or_mismatched_store_is_answered_without_context(router, capture, tmp_path) -> None:
    srv, _ = router(store={"path": str(tmp_path / "nowhere")})
    body = ask(srv, retrieve=True)
    got = body["sovereign"]["retrieval"]
    assert body["choices"][0]["message"]["content"] is not None and body["sovereign"]["tier"] == "system-1"
    assert got["used"] is False and got["reason"].startswith("store unavailable: collection 'knowledge' "
                                                             "does not exist")
    # Vectors of another model are refused by the store: named, and still answered.
    srv2, _ = router(name="hashed", store={"embedding": {"backend": "hashed"}})
    got = ask(srv2, retrieve=True)["sovereign"]["retrieval"]
    assert got["used"] is False and got["reason"].startswith("store unavailable: collection 'knowledge'")
    assert "made with embedding model all-minilm-l6-v2" in got["reason"]
    assert [context_of(m) for m in capture.chats()] == [None, None]


# --------------------------------------------------------------------------- the cloud rule


def test_climbing_to_the_cloud_sends_no_chunk_of_the_owners_documents(router, capture, standin,
                                                                      rag_dir) -> None:
    srv, _ = router(threshold=1.0)  # never accepted locally: the request climbs to the stand-in
    before = standin_calls(standin)
    body = ask(srv, retrieve=True)
    sov = body["sovereign"]
    assert sov["tier"] == "cloud" and sov["simulated"] is True and standin_calls(standin) == before + 1
    got, boat = sov["retrieval"], rag_dir["boat"].chunk_id
    assert got["used"] is False
    assert got["reason"] == "answered by tier 'cloud', which was not sent the context"
    assert got["tiers"] == ["system-1"] and [c["chunk_id"] for c in got["chunks"]] == [boat]
    # The local tier had the context; the stand-in received the original conversation and nothing else.
    assert context_of(capture.chats()[0]) is not None
    stats = httpx.get(standin.url + "/stats").json()
    assert stats["last"]["messages"] == [{"role": "user", "content": QUESTION}]
    assert BOAT_TEXT not in json.dumps(stats) and "Marigold" not in json.dumps(stats)
    atts = attempts_of(srv, body["id"])
    assert [(a.tier, a.decision, a.chunks) for a in atts] == [
        ("system-1", "below-threshold", [boat]), ("system-2", "skipped", []), ("cloud", "accepted", [])]
    # Nor is it kept in the crystal the cloud's answer became.
    crystal = router_of(srv).store.get_crystal(sov["crystal_id"])
    assert crystal.messages == [{"role": "user", "content": QUESTION}]


# --------------------------------------------------------------------------- bad input, the selection


def test_bad_settings_and_a_bad_request_field_are_named(tmp_path: Path, serve_router) -> None:
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"tiers": [{"name": "cloud", "retrieve": True}]}))
    with pytest.raises(SovereignError) as exc:
        load_settings(LAB, f)
    assert "tier cloud: retrieve is for local tiers only" in " ".join(exc.value.details)
    f.write_text(yaml.safe_dump({"rag": {"store": {"engine": "server"}}}))
    with pytest.raises(SovereignError) as exc:
        load_settings(LAB, f)
    assert "rag.store" in " ".join(exc.value.details) and "url is not set" in " ".join(exc.value.details)
    srv, _ = serve_router(tiers_config(None, None, None))
    for field, value, says in (("retrieve", "yes", "sovereign.retrieve: expected bool, got str"),
                               ("retreive", True, "sovereign.retreive: not a field of the router")):
        resp = httpx.post(srv.url + "/v1/chat/completions", timeout=30, json={
            "model": "auto", "messages": [{"role": "user", "content": "hi"}], "sovereign": {field: value}})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == f"sovereign.{field}"
        assert says in resp.json()["error"]["message"]


def test_the_deployed_configuration_keeps_no_qdrant_key() -> None:
    from sovereign.inventory import load_inventory
    from sovereign.router.config import deployable_config

    store = {"engine": "server", "url": "http://qdrant:6333", "api_key": "qdrant-key-not-in-the-file"}
    data = deployable_config(load_inventory(LAB), {"rag": {"store": store}})
    assert data["rag"]["store"] == {"engine": "server", "url": "http://qdrant:6333"}


def test_select_keeps_hits_above_min_score_up_to_max_chars() -> None:
    from sovereign.rag import Hit

    def hit(i: int, score: float, n: int) -> Hit:
        return Hit(chunk_id=str(i), source="/d.md", sha256="0", start=100 * i, end=100 * i + n, text="x" * n,
                   score=score)

    hits = [hit(1, 0.9, 50), hit(2, 0.8, 50), hit(3, 0.7, 50), hit(4, 0.2, 10)]
    assert [h.chunk_id for h in select(hits, 0.3, 1000)] == ["1", "2", "3"]
    assert [h.chunk_id for h in select(hits, 0.3, 120)] == ["1", "2"]
    [only] = select([hit(1, 0.9, 500)], 0.3, 200)  # one longer than max_chars: cut, its end with it
    assert len(only.text) == 200 and only.end == only.start + 200
    assert select(hits, 0.95, 1000) == []
