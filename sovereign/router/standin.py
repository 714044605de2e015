"""The cloud stand-in (simulated): a local OpenAI-compatible endpoint on loopback.

The only simulated part of the router's test bed and of the lab: it plays a
cloud provider so that escalation, the egress gate, crystallization and key
handling run end to end without leaving the machine. It says what it is in
every answer (`model: cloud-standin-simulated`, `system_fingerprint:
"cloud stand-in (simulated)"`, a `simulated: true` field) and in its log.

Answers come from a table of known questions (normalised text → answer);
anything else gets a fixed, labelled reply. With a key configured it checks
`Authorization: Bearer <key>` and, like some real providers, echoes the
offending key in its 401 message: the router must redact it.

Simulated parameters, as a provider would honour them: `stop` cuts the
answer; `response_format` json_object/json_schema wraps it as
`{"answer": …}`; `tools` with `tool_choice` `required` or a named function
get a call to that function (the first tool for `required`) with
`{"question": …}` as arguments; a conversation ending in a tool result gets
`[simulated] tool result: …`. The last request's parameters are in `/stats`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sovereign.errors import SovereignError
from sovereign.router.config import SIMULATED, STANDIN_PORT, ListenSettings
from sovereign.router.crystals import normalise_text
from sovereign.service.serve import entry_point
from sovereign.service.settings import ServiceSettings, build_settings, service_config

log = logging.getLogger(__name__)

MODEL = "cloud-standin-simulated"
KEY_ENV = "SOVEREIGN_CLOUD_STANDIN_KEY"


def create_standin(answers: dict[str, str] | None = None, api_key: str | None = None,
                   delay_s: float = 0.0) -> Starlette:
    table = {normalise_text(k): v for k, v in (answers or {}).items()}
    stats: dict[str, Any] = {"calls": 0, "unauthorized": 0, "prompts": [], "last": {}}

    async def chat(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if api_key is not None and auth != f"Bearer {api_key}":
            stats["unauthorized"] += 1
            given = auth.removeprefix("Bearer ")
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {given}",
                                           "type": "invalid_request_error", "code": "invalid_api_key"}},
                                status_code=401)
        body = json.loads(await request.body())
        messages = body.get("messages") or []
        question = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        stats["calls"] += 1
        stats["prompts"].append(question)
        if delay_s:
            await asyncio.sleep(delay_s)
        stats["last"] = {k: body.get(k)
                         for k in ("stop", "response_format", "tools", "tool_choice", "messages")}
        text = table.get(normalise_text(str(question)))
        if text is None:
            text = f"[{SIMULATED}] no recorded answer for this question."
        if messages and messages[-1].get("role") == "tool":
            text = f"[{SIMULATED}] tool result: {messages[-1].get('content', '')}"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        choice, tools = body.get("tool_choice"), body.get("tools") or []
        if tools and (choice == "required" or isinstance(choice, dict)):
            name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                "function": {"name": name, "arguments": json.dumps({"question": question})}}]}
            finish = "tool_calls"
        elif (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            message["content"] = json.dumps({"answer": text})
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if isinstance(message["content"], str) and stop in message["content"]:
                message["content"] = message["content"][:message["content"].index(stop)]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages) + 4
        completion_tokens = len(text.split())
        log.info("%s answered a request (%d prompt tokens)", SIMULATED, prompt_tokens)
        return JSONResponse({
            "id": f"chatcmpl-standin-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": MODEL, "system_fingerprint": SIMULATED, "simulated": True,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model",
                                                         "owned_by": SIMULATED}]})

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/v1/models", models, methods=["GET"]),
                            Route("/stats", get_stats, methods=["GET"])])
    app.state.stats = stats
    return app


class StandinSettings(ServiceSettings):
    """`python -m sovereign.router.standin --config FILE` (the lab's unit): where it
    listens, the table of known questions, and the variable holding its key."""

    model_config = service_config("cloud_standin")
    service: ClassVar[str] = "cloud_standin"
    listen: ListenSettings = ListenSettings(port=STANDIN_PORT)
    answers: dict[str, str] = {}
    key_env: str = KEY_ENV


def read_answers(path: Path | None) -> dict[str, str]:
    """The table of known questions: a JSON object, question → answer."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SovereignError(f"{path}: not a JSON object of question → answer ({exc})") from None
    if not isinstance(data, dict):
        raise SovereignError(f"{path}: not a JSON object of question → answer")
    return {str(k): str(v) for k, v in data.items()}


def run(host: str, port: int, answers: dict[str, str], key_env: str = KEY_ENV) -> None:
    """Serve the stand-in until stopped (`sovereign router cloud-standin`, and
    `python -m sovereign.router.standin` in the lab's unit)."""
    from sovereign.service.serve import configure_logging, serve

    configure_logging()
    log.info("%s on http://%s:%s/v1 (%d known question(s))", SIMULATED, host, port, len(answers))
    serve(create_standin(answers, api_key=os.environ.get(key_env) or None), host, port, name=SIMULATED)


def _from_config(config: Path | None, host: str | None, port: int | None) -> None:
    settings = build_settings(StandinSettings, config_file=config)
    run(host or settings.listen.host, port or settings.listen.port, settings.answers, settings.key_env)


if __name__ == "__main__":
    sys.exit(entry_point("cloud_standin", _from_config))
