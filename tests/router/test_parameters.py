"""Every parameter is honoured or refused, never dropped: malformed bodies,
`stop`, `response_format`, `tools`; real llama-server tiers (SmolLM2 135M on
/v1/chat/completions, Gemma 3 270M on /completion) and the cloud stand-in
(simulated)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from router_helpers import standin_calls, tiers_config

from sovereign.router.params import Params, check_format, schema_errors

pytestmark = pytest.mark.usefixtures("smol_server", "gemma_server")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "minLength": 1}},
          "required": ["city"], "additionalProperties": False}
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def live(smol_server, gemma_server, standin, serve_router):
    """A router over the real tiers and the stand-in; `local=False` points the
    local tiers nowhere (the ladder goes to the cloud), `cloud=False` disables it."""

    def make(*, local: bool = True, cloud: bool = True, threshold: float | None = 0.0,
             **tier_fields: Any) -> tuple[Any, openai.OpenAI]:
        cfg = tiers_config(smol_server if local else None, gemma_server if local else None, standin.url)
        for t in cfg["tiers"]:
            if threshold is not None:
                t["threshold"] = threshold
            t.update(tier_fields)
        cfg["tiers"].append({"name": "cloud", "enabled": cloud, **tier_fields})
        srv, _ = serve_router(cfg)
        return srv, openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)

    return make


def post(srv: Any, body: dict[str, Any] | bytes, client: httpx.Client | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (client or httpx).post(srv.url + "/v1/chat/completions", content=content, timeout=60,
                                  headers={"content-type": "application/json"})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def refused(r: httpx.Response, param: str) -> str:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    return str(err["message"])


def decisions(sov: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["tier"], s["decision"]) for s in sov["path"]]


def last_standin_request(standin: Any) -> dict[str, Any]:
    return dict(httpx.get(standin.url + "/stats").json()["last"])


# --------------------------------------------------------------------------- malformed input


def test_malformed_bodies_get_400_and_the_connection_survives(live) -> None:
    srv, _ = live()
    deep = b'{"model": "auto", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert len(deep) > 100_000
    surrogate = b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}'
    too_deep = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi",
                                                          "x": json.loads("[" * 70 + "]" * 70)}]}).encode()
    with httpx.Client(timeout=30) as client:
        ports = set()
        for body, param in ((deep, None), (surrogate, "messages[0].content"), (too_deep, None)):
            r = post(srv, body, client)
            assert r.status_code == 400, (body[:80], r.status_code, r.text[:200])
            err = r.json()["error"]
            assert err["code"] == "invalid_json" and err["type"] == "invalid_request_error"
            assert err["param"] == param, err
            assert ("nested deeper" in err["message"]) if param is None else ("surrogate" in err["message"])
            assert r.headers.get("connection", "").lower() != "close"
            ports.add(r.extensions["network_stream"].get_extra_info("client_addr"))
        ok = client.get(srv.url + "/v1/models")
        assert ok.status_code == 200
        ports.add(ok.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(ports) == 1, f"the connection was dropped and reopened: {ports}"


# --------------------------------------------------------------------------- stop


def test_stop_is_validated(live) -> None:
    srv, _ = live()
    assert "at most 4" in refused(post(srv, {"model": "auto", "messages": user("hi"),
                                             "stop": ["a", "b", "c", "d", "e"]}), "stop")
    refused(post(srv, {"model": "auto", "messages": user("hi"), "stop": 7}), "stop")
    refused(post(srv, {"model": "auto", "messages": user("hi"), "stop": [""]}), "stop")


@pytest.mark.parametrize("tier", ["system-1", "system-2"])
def test_stop_reaches_the_local_tiers(live, tier) -> None:
    """Sent to llama-server (it stops generating: fewer tokens) and cut at."""
    _srv, client = live(local=True, cloud=False)
    msgs = user("List the days of the week, separated by commas.")
    plain = client.chat.completions.create(model=tier, messages=msgs, max_tokens=40)
    text = plain.choices[0].message.content
    words = text.split()
    assert len(words) >= 4, text
    stop = words[len(words) // 2][:3]
    cut = client.chat.completions.create(model=tier, messages=msgs, max_tokens=40, stop=[stop, "@@@"])
    got = cut.choices[0].message.content
    assert stop not in got and text.startswith(got.strip()[:10]), (text, stop, got)
    assert len(got) <= text.index(stop), (text, stop, got)
    assert cut.usage.completion_tokens < plain.usage.completion_tokens, (text, got)
    assert cut.model_extra["sovereign"]["tier"] == tier


def test_stop_reaches_the_cloud_and_the_crystals(live, standin) -> None:
    _srv, client = live(local=False)
    first = client.chat.completions.create(model="auto", messages=user("What is the capital of Italy?"))
    assert first.choices[0].message.content == "Rome."
    assert first.model_extra["sovereign"]["crystal_id"]  # a plain answer is crystallized
    calls = standin_calls(standin)
    again = client.chat.completions.create(model="auto", messages=user("What is the capital of Italy?"),
                                           stop=["m"])
    sov = again.model_extra["sovereign"]
    assert sov["tier"] == "crystal" and again.choices[0].message.content == "Ro"
    assert standin_calls(standin) == calls
    stream = client.chat.completions.create(model="auto", messages=user("What is the capital of Italy?"),
                                            stop="o", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "R"
    cloud = client.chat.completions.create(model="auto", messages=user("What is the capital of France?"),
                                           stop=[".", "@@"])
    assert cloud.choices[0].message.content == "Paris"
    assert cloud.model_extra["sovereign"]["tier"] == "cloud"
    assert last_standin_request(standin)["stop"] == [".", "@@"]
    assert cloud.model_extra["sovereign"]["crystal_id"] is None  # a cut answer is not the answer


# --------------------------------------------------------------------------- response_format


def test_response_format_is_validated_or_refused(live) -> None:
    srv, _client = live()
    ok = post(srv, {"model": "system-1", "messages": user("Say hi."), "max_tokens": 8,
                    "response_format": {"type": "text"}})
    assert ok.status_code == 200, ok.text
    refused(post(srv, {"model": "auto", "messages": user("hi"), "response_format": {"type": "yaml"}}),
            "response_format")
    refused(post(srv, {"model": "auto", "messages": user("hi"),
                       "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}),
            "response_format")
    srv2, _ = live(supports_response_format=False)
    msg = refused(post(srv2, {"model": "auto", "messages": user("hi"),
                              "response_format": {"type": "json_object"}}), "response_format")
    assert "no runnable tier" in msg


def test_json_object_on_a_chat_tier(live) -> None:
    _srv, client = live(cloud=False)
    r = client.chat.completions.create(model="system-1", max_tokens=64,
                                       messages=user("Give the capital of France as JSON with the key city."),
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict), r.choices[0].message.content
    assert decisions(r.model_extra["sovereign"]) == [("system-1", "accepted")]


def test_json_schema_on_a_completion_tier(live) -> None:
    _srv, client = live(cloud=False)
    r = client.chat.completions.create(
        model="system-2", max_tokens=64, messages=user("What is the capital of France?"),
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": SCHEMA}})
    value = json.loads(r.choices[0].message.content)
    assert schema_errors(value, SCHEMA) == [] and value["city"], value
    assert decisions(r.model_extra["sovereign"]) == [("system-2", "accepted")]


def test_answers_that_break_the_format_are_passed_over(live, standin) -> None:
    srv, client = live(local=False)
    client.chat.completions.create(model="auto", messages=user("What is the capital of Italy?"))  # a crystal
    r = client.chat.completions.create(model="auto", messages=user("What is the capital of Italy?"),
                                       response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content) == {"answer": "Rome."}
    sov = r.model_extra["sovereign"]
    assert ("crystals", "invalid-format") in decisions(sov) and sov["tier"] == "cloud"
    assert sov["crystal_id"] is None
    assert last_standin_request(standin)["response_format"] == {"type": "json_object"}
    # The stand-in's {"answer": …} is not valid against a schema that wants "city": no tier answered.
    bad = post(srv, {"model": "auto", "messages": user("What is the capital of France?"),
                     "response_format": {"type": "json_schema",
                                         "json_schema": {"name": "c", "schema": SCHEMA}}})
    assert bad.status_code == 503, bad.text
    path = bad.json()["sovereign"]["path"]
    [cloud] = [s for s in path if s["tier"] == "cloud"]
    assert cloud["decision"] == "invalid-format" and "'city' is required" in cloud["reason"]


def test_schema_validator() -> None:
    assert schema_errors({"city": "Paris"}, SCHEMA) == []
    assert schema_errors({"city": 3}, SCHEMA) == ["$.city: expected string, got int"]
    assert schema_errors({"city": "x", "y": 1}, SCHEMA) == ["$: 'y' is not allowed"]
    assert schema_errors([1, "a"], {"type": "array", "items": {"type": "integer"}}) == [
        "$[1]: expected integer, got str"]
    assert schema_errors(True, {"type": "integer"}) and not schema_errors(2, {"type": "number", "minimum": 1})
    p = Params(response_format={"type": "json_object"})
    assert check_format('{"a": 1}', p) is None and check_format("[1]", p) and check_format("{", p)


# --------------------------------------------------------------------------- tools


def test_tools_go_to_tiers_that_support_them(live, standin) -> None:
    _srv, client = live()
    r = client.chat.completions.create(model="auto", messages=user("What is the weather in Paris?"),
                                       tools=WEATHER, tool_choice="required")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"question": "What is the weather in Paris?"}
    sov = r.model_extra["sovereign"]
    assert decisions(sov) == [("system-1", "skipped"), ("system-2", "skipped"), ("cloud", "accepted")]
    assert "supports_tools: false" in sov["path"][0]["reason"]
    assert sov["crystal_id"] is None
    assert last_standin_request(standin)["tools"] == WEATHER
    # The tool's result comes back in OpenAI's shape and reaches the tier as it was sent.
    msgs = [*user("What is the weather in Paris?"),
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    r2 = client.chat.completions.create(model="auto", messages=msgs, tools=WEATHER)
    assert r2.choices[0].message.content.endswith("tool result: 18 C, sunny")
    sent = last_standin_request(standin)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {
        "role": "tool", "content": "18 C, sunny", "tool_call_id": call.id}
    stream = client.chat.completions.create(model="auto", messages=user("What is the weather in Rome?"),
                                            tools=WEATHER, tool_choice={"type": "function",
                                                                        "function": {"name": "get_weather"}},
                                            stream=True)
    chunks = list(stream)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tools_are_refused_without_a_supporting_tier(live) -> None:
    srv, _ = live(cloud=False)
    msg = refused(post(srv, {"model": "auto", "messages": user("Weather?"), "tools": WEATHER}), "tools")
    assert "no runnable tier" in msg
    tool_turn = [*user("Weather?"), {"role": "tool", "tool_call_id": "c1", "content": "18 C"}]
    refused(post(srv, {"model": "auto", "messages": tool_turn}), "tools")
    refused(post(srv, {"model": "auto", "messages": user("Weather?"), "tools": [{"type": "retrieval"}]}),
            "tools")
    refused(post(srv, {"model": "auto", "messages": user("Weather?"), "tools": WEATHER,
                       "tool_choice": {"type": "function", "function": {"name": "nope"}}}), "tool_choice")
    # tool_choice none: no call may be made, so the local tiers answer.
    ok = post(srv, {"model": "system-1", "messages": user("Say hi."), "max_tokens": 8, "tools": WEATHER,
                    "tool_choice": "none"})
    assert ok.status_code == 200 and ok.json()["sovereign"]["tier"] == "system-1", ok.text
