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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sovereign.router.config import SIMULATED
from sovereign.router.store.base import normalise_text

log = logging.getLogger(__name__)

MODEL = "cloud-standin-simulated"


def create_standin(answers: dict[str, str] | None = None, api_key: str | None = None,
                   delay_s: float = 0.0) -> Starlette:
    table = {normalise_text(k): v for k, v in (answers or {}).items()}
    stats: dict[str, Any] = {"calls": 0, "unauthorized": 0, "prompts": []}

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
        text = table.get(normalise_text(str(question)))
        if text is None:
            text = f"[{SIMULATED}] no recorded answer for this question."
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages) + 4
        completion_tokens = len(text.split())
        log.info("%s answered a request (%d prompt tokens)", SIMULATED, prompt_tokens)
        return JSONResponse({
            "id": f"chatcmpl-standin-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": MODEL, "system_fingerprint": SIMULATED, "simulated": True,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop",
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
