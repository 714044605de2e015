"""The router as a service: real llama-server tiers (SmolLM2 135M, Gemma 3 270M),
the official openai client, the cloud stand-in (simulated) behind the egress gate."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from router_helpers import STANDIN_KEY, router_of, standin_calls, tiers_config

from sovereign.router.store import open_store

pytestmark = pytest.mark.usefixtures("smol_server", "gemma_server")


@pytest.fixture
def live(smol_server, gemma_server, standin, serve_router):
    """A router over both real tiers and the stand-in, thresholds as in the lab (0.85)."""

    def make(**overrides: Any) -> tuple[Any, Any, openai.OpenAI]:
        srv, settings = serve_router(tiers_config(smol_server, gemma_server, standin.url, **overrides))
        return srv, settings, openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)

    return make


def ask(client: openai.OpenAI, text: str, **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "auto"), messages=kw.pop("messages", [{"role": "user", "content": text}]),
        max_tokens=kw.pop("max_tokens", 16), **kw)
    return raw.parse(), {k.lower(): v for k, v in raw.headers.items()}


def drain(srv: Any) -> Any:
    router = router_of(srv)
    srv.call(router.drain())
    return router


def test_openai_client_non_stream(live, smol_server) -> None:
    cfg = tiers_config(smol_server, None, None)
    cfg["tiers"][0]["threshold"] = 0.0  # accept whatever SmolLM2 says: one real tier, one call
    srv, _, client = live(tiers=cfg["tiers"])
    comp, headers = ask(client, "What is 2 + 2?")
    assert comp.object == "chat.completion" and comp.choices[0].message.content.strip()
    assert comp.choices[0].message.role == "assistant"
    assert comp.usage is not None and comp.usage.completion_tokens > 0
    sov = comp.model_extra["sovereign"]
    assert sov["tier"] == "system-1" and sov["scorer"] == "logprob" and sov["calibrated"] is False
    assert sov["below_threshold"] is False and sov["egress"]["decision"] == "not-needed"
    assert [s["decision"] for s in sov["path"]] == ["accepted"]
    assert 0.0 < sov["score"] < 1.0 and sov["class"] == "A" and sov["domain"] == "math"
    assert headers["x-sovereign-tier"] == "system-1"
    assert headers["x-sovereign-path"].startswith("system-1=accepted:")
    assert headers["x-sovereign-request-id"] == comp.id
    router = drain(srv)
    [att] = router.store.attempts(comp.id)
    assert (att.tier, att.model, att.decision, att.scorer) == ("system-1", att.model, "accepted", "logprob")
    assert att.latency_ms > 0 and att.prompt_tokens > 0 and att.completion_tokens > 0
    assert att.score == pytest.approx(sov["score"], abs=1e-3)


def test_streaming_matches_the_plain_answer(live, smol_server) -> None:
    cfg = tiers_config(smol_server, None, None)
    cfg["tiers"][0]["threshold"] = 0.0
    _, _, client = live(tiers=cfg["tiers"])
    plain, _ = ask(client, "Name a colour.")
    stream = client.chat.completions.create(model="auto", messages=[{"role": "user",
                                                                     "content": "Name a colour."}],
                                            max_tokens=16, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["sovereign"]["tier"] == "system-1"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_escalation_crystallizes_and_the_crystal_answers_next(live, standin) -> None:
    srv, _, client = live()
    before = standin_calls(standin)
    comp, headers = ask(client, "What is the capital of Italy?")
    sov = comp.model_extra["sovereign"]
    # Both small models score below 0.85 (raw): the ladder climbs to the cloud stand-in.
    assert [s["tier"] for s in sov["path"]] == ["system-1", "system-2", "cloud"]
    assert [s["decision"] for s in sov["path"]][:2] == ["below-threshold", "below-threshold"]
    assert comp.choices[0].message.content == "Rome."
    assert sov["tier"] == "cloud" and sov["simulated"] is True and sov["egress"]["decision"] == "allow"
    assert headers["x-sovereign-simulated"] == "cloud stand-in (simulated)"
    assert standin_calls(standin) == before + 1
    router = drain(srv)
    crystals = router.store.list_crystals()
    assert len(crystals) == 1 and crystals[0].answer == "Rome."
    full = router.store.get_crystal(crystals[0].id)
    assert full.raw_response["system_fingerprint"] == "cloud stand-in (simulated)"
    assert full.prompt_tokens > 0 and full.messages == [{"role": "user",
                                                         "content": "What is the capital of Italy?"}]
    atts = router.store.attempts(comp.id)
    assert [a.decision for a in atts] == ["below-threshold", "below-threshold", "accepted"]
    # Ground truth for calibrate: each local answer judged against the cloud's.
    assert all(a.label is not None and a.label_source == "cloud" for a in atts[:2])
    assert router.store.audit()[-1].decision == "allow"

    again, h2 = ask(client, "what is the capital of  ITALY?")  # normalised: exact match
    assert again.choices[0].message.content == "Rome."
    assert again.model_extra["sovereign"]["crystallized"]["match"] == "exact"
    assert h2["x-sovereign-crystallized"] == f"exact:{crystals[0].id}"
    para, _ = ask(client, "Which city is the capital of Italy?")
    hit = para.model_extra["sovereign"]["crystallized"]
    assert hit["match"] == "semantic" and hit["similarity"] >= 0.92 and hit["embedder"] == "all-minilm-l6-v2"
    assert standin_calls(standin) == before + 1  # neither went out

    # Multi-turn: never a semantic match (the answer depends on earlier turns).
    convo = [{"role": "user", "content": "Tell me about Germany."},
             {"role": "assistant", "content": "Germany is a country in Europe."},
             {"role": "user", "content": "Which city is the capital of Italy?"}]
    multi, _ = ask(client, "", messages=convo)
    assert multi.model_extra["sovereign"]["crystallized"] is None
    assert standin_calls(standin) == before + 2


def test_forgotten_crystal_stops_matching(live, standin) -> None:
    srv, _, client = live()
    ask(client, "How many legs does a spider have?")
    router = drain(srv)
    [c] = router.store.list_crystals()
    assert ask(client, "How many legs does a spider have?")[0].model_extra["sovereign"]["tier"] == "crystal"
    router.store.forget(c.id)
    before = standin_calls(standin)
    again, _ = ask(client, "How many legs does a spider have?")
    assert again.model_extra["sovereign"]["crystallized"] is None and standin_calls(standin) == before + 1


def test_never_leave_domain_returns_the_best_local_answer(live, standin) -> None:
    srv, _, client = live()
    before = standin_calls(standin)
    comp, headers = ask(client, "What is the interest rate on my bank loan?")
    sov = comp.model_extra["sovereign"]
    assert sov["domain"] == "financial" and standin_calls(standin) == before
    assert comp.choices[0].message.content.strip()  # never empty
    assert sov["below_threshold"] is True and sov["tier"] in ("system-1", "system-2")
    assert "egress denied" in sov["reason"] and "never leaves" in sov["reason"]
    assert sov["path"][-1]["decision"] == "egress-denied"
    assert sov["score"] == max(s["score"] for s in sov["path"] if s["score"] is not None)  # the best kept
    assert headers["x-sovereign-below-threshold"] == "true"
    assert headers["x-sovereign-egress"] == "deny:cloud-standin"
    router = drain(srv)
    [entry] = router.store.audit()
    assert (entry.decision, entry.domain, entry.request_id) == ("deny", "financial", comp.id)
    assert "never leaves" in entry.reason


def test_kill_switch_and_budget(live, standin, tmp_path: Path) -> None:
    srv, settings, client = live(egress={"daily_budget": {"calls": 1, "tokens": 100000}})
    settings.kill_switch_path().write_text("off")
    comp, _ = ask(client, "What is the capital of France?")
    assert "kill switch on" in comp.model_extra["sovereign"]["egress"]["reason"]
    settings.kill_switch_path().unlink()
    ok, _ = ask(client, "What is the capital of France?")
    assert ok.model_extra["sovereign"]["tier"] == "cloud"
    spent, _ = ask(client, "What is the capital of Italy?")
    assert "daily call budget spent (1/1" in spent.model_extra["sovereign"]["egress"]["reason"]
    assert spent.model_extra["sovereign"]["below_threshold"] is True
    router = drain(srv)
    assert [e.decision for e in router.store.audit()] == ["deny", "allow", "deny"]


def test_down_and_slow_tiers_are_skipped_and_recorded(live, smol_server, gemma_server, standin) -> None:
    from testbed import free_port

    cfg = tiers_config(smol_server, gemma_server, standin.url)
    cfg["tiers"][0]["endpoint"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg["tiers"][1]["timeout_s"] = 0.02  # Gemma cannot answer in 20 ms
    srv, _, client = live(tiers=cfg["tiers"])
    comp, _ = ask(client, "What is the capital of France?")
    path = comp.model_extra["sovereign"]["path"]
    assert [(s["tier"], s["decision"]) for s in path] == [("system-1", "down"), ("system-2", "timeout"),
                                                         ("cloud", "accepted")]
    assert "cannot connect" in path[0]["reason"] and "within 0.02s" in path[1]["reason"]
    # The next request skips both without calling them (no latency recorded: no call was made).
    nxt, _ = ask(client, "What is the capital of Italy?")
    steps = nxt.model_extra["sovereign"]["path"]
    assert [s["decision"] for s in steps] == ["skipped", "skipped", "accepted"]
    assert [s["latency_ms"] for s in steps[:2]] == [None, None]
    router = drain(srv)
    assert [a.decision for a in router.store.attempts(comp.id)] == ["down", "timeout", "accepted"]


def test_store_down_spools_and_replays(live, tmp_path: Path) -> None:
    from testbed import PostgresCluster, find_pg_bin

    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="sovereign-pg-spool-"))
    pg = PostgresCluster(find_pg_bin(), root).start()
    try:
        srv, settings, client = live(store={"backend": "postgres", "dsn": pg.dsn, "connect_timeout_s": 1})
        pg.stop("fast")  # (an immediate stop would lose the schema: the test cluster runs with fsync off)
        comp, _ = ask(client, "What is the capital of Italy?")
        assert comp.choices[0].message.content == "Rome."  # delivered with the store down
        router = drain(srv)
        health = httpx.get(srv.url + "/health", timeout=10).json()
        assert health["status"] == "degraded" and health["store"]["ok"] is False
        assert health["spool_pending"] >= 3  # attempts, audit, crystal
        pg.start()
        _, pending = srv.call(router.replay_outbox())  # (the router's own ticker may have got there first)
        assert pending == 0
        store = open_store(settings)
        assert [c.answer for c in store.list_crystals()] == ["Rome."]
        assert len(store.attempts(comp.id)) == 3 and store.audit()[0].request_id == comp.id
        assert httpx.get(srv.url + "/health", timeout=10).json()["spool_pending"] == 0
        store.close()
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_malformed_requests_get_openai_error_bodies(live, smol_server) -> None:
    srv, _, client = live()
    url = srv.url + "/v1/chat/completions"
    cases = [
        (b"{not json", 400, "invalid_json", None),
        (b"[]", 400, "invalid_json", None),
        (json.dumps({"model": "auto"}).encode(), 400, "invalid_value", "messages"),
        (json.dumps({"model": "auto", "messages": []}).encode(), 400, "invalid_value", "messages"),
        (json.dumps({"model": "auto", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}]}]}).encode(), 400, "invalid_value", "messages"),
        (json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                     "temperature": 7}).encode(), 400, "invalid_value", "temperature"),
        (json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).encode(), 404,
         "model_not_found", "model"),
    ]
    for body, status, code, param in cases:
        r = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == status, body
        err = r.json()["error"]
        assert err["code"] == code and err["message"] and err["type"], body
        if param:
            assert err["param"].startswith(param), (body, err)
    r = httpx.get(url, timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(srv.url + "/v2/nothing", timeout=10).json()["error"]["code"] == "not_found"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])


def test_models_health_metrics(live) -> None:
    srv, _, client = live()
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "system-1", "system-2", "cloud"]
    h = httpx.get(srv.url + "/health", timeout=10)
    assert h.status_code == 200 and h.json()["status"] == "ok"
    body = h.json()
    assert body["tiers"]["system-1"]["ok"] and body["tiers"]["cloud"]["simulated"] is True
    assert body["store"]["ok"] and body["embedder"].startswith("all-MiniLM-L6-v2")
    ask(client, "What is the capital of France?")
    text = httpx.get(srv.url + "/metrics", timeout=10).text
    assert 'sovereign_router_requests_total{outcome="answered"} 1.0' in text
    assert 'sovereign_router_attempts_total{decision="accepted",tier="cloud"} 1.0' in text
    assert 'sovereign_router_egress_decisions_total{decision="allow",provider="cloud-standin"} 1.0' in text
    assert "sovereign_router_tier_latency_seconds_bucket" in text


def test_a_named_tier_starts_the_ladder_there(live) -> None:
    _, _, client = live()
    comp, _ = ask(client, "What is the capital of France?", model="cloud")
    assert [s["tier"] for s in comp.model_extra["sovereign"]["path"]] == ["cloud"]


def test_concurrent_requests_do_not_block_each_other(live) -> None:
    srv, _, client = live()
    ask(client, "What is the capital of France?")  # crystallized
    drain(srv)
    slow_done: list[float] = []

    def slow() -> None:
        t = time.perf_counter()
        ask(client, "Write a long story about a dragon.", model="system-2", max_tokens=96)
        slow_done.append(time.perf_counter() - t)

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.3)  # the slow ones are in the tiers now
    t0 = time.perf_counter()
    fast, _ = ask(client, "What is the capital of France?")
    fast_s = time.perf_counter() - t0
    for th in threads:
        th.join(60)
    assert fast.model_extra["sovereign"]["tier"] == "crystal"
    assert len(slow_done) == 4 and fast_s < 0.5 < max(slow_done), (fast_s, slow_done)


def test_api_key_never_leaks(live, smol_server, gemma_server, standin, monkeypatch, caplog) -> None:
    wrong = "sk-wrong-" + "c0ffee" * 5
    caplog.set_level(logging.DEBUG)
    _, settings, client = live()
    monkeypatch.setenv("SOVEREIGN_CLOUD_STANDIN_KEY", wrong)
    # A second router reads the wrong key: the stand-in answers 401 and echoes it.
    from testbed import ThreadedServer

    from sovereign.router.app import create_app
    from sovereign.router.config import load_settings

    cfg_path = Path(settings.state()).parent / "wrongkey.json"
    cfg_path.write_text(json.dumps(tiers_config(smol_server, gemma_server, standin.url)))
    s2 = load_settings(Path(__file__).resolve().parents[2] / "inventory" / "lab", cfg_path)
    s2.state_dir = Path(settings.state()).parent / "state2"
    srv2 = ThreadedServer(create_app(s2)).start()
    try:
        r = httpx.post(srv2.url + "/v1/chat/completions", timeout=60,
                       json={"model": "auto", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        body = r.text
        path = r.json()["sovereign"]["path"]
        assert path[-1]["decision"] == "error" and "401" in path[-1]["reason"] and "***" in path[-1]["reason"]
        router = router_of(srv2)
        srv2.call(router.drain())
        attempts = json.dumps([a.model_dump() for a in router.store.attempts()])
        audit = json.dumps([e.model_dump() for e in router.store.audit()])
        health = httpx.get(srv2.url + "/health", timeout=10).text
        for text in (body, attempts, audit, health, caplog.text, json.dumps(dict(r.headers))):
            assert wrong not in text
        assert "***" in attempts
    finally:
        srv2.stop()
    # The right key works and is not in the logs either.
    comp, _ = ask(client, "What is the capital of France?")
    assert comp.model_extra["sovereign"]["tier"] == "cloud"
    assert STANDIN_KEY not in caplog.text and wrong not in caplog.text


def test_asyncio_is_not_blocked_by_embedding(minilm) -> None:
    # The embedder runs in a worker thread (asyncio.to_thread); check it is thread-safe.
    async def many() -> list[Any]:
        return await asyncio.gather(*(asyncio.to_thread(minilm.embed, [f"question {i}"]) for i in range(8)))

    out = asyncio.run(many())
    assert all(o.shape == (1, 384) for o in out)


def test_model_classifier_reads_the_class_from_logprobs(live, smol_server) -> None:
    cfg = tiers_config(smol_server, None, None)
    cfg["tiers"][0]["threshold"] = 0.0
    _, _, client = live(tiers=cfg["tiers"], classifier={"mode": "model", "model_tier": "system-1"})
    comp, headers = ask(client, "What is the capital of France?")
    sov = comp.model_extra["sovereign"]
    assert sov["classifier"].startswith("model (system-1, p=") and sov["class"] == "A"
    assert sov["domain"] == "general"  # the domain always comes from the rules
    assert headers["x-sovereign-class"] == "A"


def test_a_calibrated_tier_compares_the_calibrated_value(live, smol_server, _isolated) -> None:
    import numpy as np

    from sovereign.router.calibrate import CalibrationSet, fit_one

    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 0.95, 200)
    labels = (rng.uniform(size=200) < raw * 0.5).tolist()  # right half as often as the raw score claims
    cal = fit_one("system-1", "logprob", raw.tolist(), labels, "platt")
    assert cal.kept
    CalibrationSet([cal]).save(_isolated / "router" / "calibration.json")
    cfg = tiers_config(smol_server, None, None)
    cfg["tiers"][0]["threshold"] = 0.0
    _, _, client = live(tiers=cfg["tiers"])
    comp, headers = ask(client, "What is 2 + 2?")
    sov = comp.model_extra["sovereign"]
    assert sov["calibrated"] is True and headers["x-sovereign-calibrated"] == "true"
    assert sov["score"] == pytest.approx(cal.apply(sov["raw_score"]), abs=1e-3)
    assert sov["score"] < sov["raw_score"]  # this calibration says the raw score overclaims
    assert "calibrated P(correct)" in sov["path"][0]["reason"]
