"""Streams that clients and proxies can wait for: while the ladder decides,
SSE comments flow; no piece of an answer leaves before the gate accepted it;
an error decided late arrives in OpenAI's streaming error shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from router_helpers import STANDIN_ANSWERS, STANDIN_KEY, tiers_config
from testbed import ThreadedServer

from sovereign.router.standin import create_standin

QUESTION = next(iter(STANDIN_ANSWERS))


@pytest.fixture
def slow_cloud() -> Iterator[ThreadedServer]:
    """The cloud stand-in (simulated), taking 1.2 s to answer."""
    srv = ThreadedServer(create_standin(STANDIN_ANSWERS, api_key=STANDIN_KEY, delay_s=1.2)).start()
    yield srv
    srv.stop()


def _only_the_cloud(slow_cloud: ThreadedServer, **extra) -> dict:
    cfg = tiers_config(None, None, slow_cloud.url, embedding={"backend": "none"}, stream_keepalive_s=0.2,
                       **extra)
    cfg["tiers"] = [{"name": "system-1", "enabled": False}, {"name": "system-2", "enabled": False}]
    return cfg


def _events(srv: ThreadedServer, body: dict) -> tuple[list[tuple[float, str]], int]:
    """(seconds since the request, line) of every non-empty SSE line, and the status."""
    out: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line:
                out.append((time.perf_counter() - t0, line))
        return out, r.status_code


def test_keep_alive_comments_flow_until_the_answer_is_decided(serve_router, slow_cloud) -> None:
    srv, _ = serve_router(_only_the_cloud(slow_cloud))
    events, status = _events(srv, {"model": "auto", "stream": True,
                                   "messages": [{"role": "user", "content": QUESTION}]})
    assert status == 200
    comments = [(t, line) for t, line in events if line.startswith(":")]
    data = [(t, line) for t, line in events if line.startswith("data: ")]
    # The first byte left long before the answer: at the keep-alive interval, not after 1.2 s.
    assert comments and comments[0][0] < 0.8, events
    assert len(comments) >= 3, events
    # Every comment came before the first piece of the answer.
    assert max(t for t, _ in comments) <= min(t for t, _ in data)
    chunks = [json.loads(line[6:]) for _, line in data if line != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == STANDIN_ANSWERS[QUESTION]
    assert data[-1][1] == "data: [DONE]"


def test_the_official_client_reads_a_kept_alive_stream(serve_router, slow_cloud) -> None:
    from openai import OpenAI

    srv, _ = serve_router(_only_the_cloud(slow_cloud))
    client = OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="auto", stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == STANDIN_ANSWERS[QUESTION]


def test_an_error_decided_after_the_stream_began_is_an_error_event(serve_router, slow_cloud) -> None:
    # The cloud tier gives up after 0.6 s (its answer takes 1.2 s): no tier can answer,
    # and the stream had begun by then.
    cfg = _only_the_cloud(slow_cloud)
    cfg["tiers"].append({"name": "cloud", "timeout_s": 0.6})
    srv, _ = serve_router(cfg)
    events, status = _events(srv, {"model": "auto", "stream": True,
                                   "messages": [{"role": "user", "content": QUESTION}]})
    assert status == 200 and events[0][1].startswith(":"), events
    data = [line for _, line in events if line.startswith("data: ")]
    error = json.loads(data[0][6:])
    assert error["error"]["code"] == "no_tier_available" and data[-1] == "data: [DONE]", data
    assert "choices" not in error


def test_a_quick_decision_keeps_its_http_status(serve_router, slow_cloud) -> None:
    srv, _ = serve_router(_only_the_cloud(slow_cloud))
    body = {"model": "no-such-tier", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(srv.url + "/v1/chat/completions", timeout=10, json=body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
