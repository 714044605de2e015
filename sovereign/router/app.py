"""The HTTP service: an OpenAI-compatible API in front of the ladder.

- `POST /v1/chat/completions` (stream and non-stream): the body and SSE chunks
  of the OpenAI API, plus a `sovereign` object (tier, score, scorer, path,
  crystal, egress) and `X-Sovereign-*` headers that standard clients ignore.
  Streaming sends the answer once the ladder has decided: the gate scores a
  whole answer before it is released, so no token of a rejected answer ever
  reaches the client.
- `GET /v1/models`: `auto` (the ladder) and one entry per tier (a request
  naming a tier starts the ladder there).
- `GET /health`: tiers, store, spool, egress budget; 200 when a local tier
  and the store are up, 503 (with the same body) when degraded. Without an
  admin key (or a loopback client) only the status and each tier's state.
- `GET /metrics`: Prometheus text (an admin key or a loopback client).
Who may ask, and from which names, is access.py's: a caller's key on every
API request (`Authorization: Bearer`), the Host and Origin checked first.
Errors have OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
`stop`, `response_format` and `tools` are honoured or refused with a 400
naming them (params.py, ladder.py), never dropped; a malformed body (too
deep, a lone surrogate) is a 400 too, not a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sovereign.router.access import Denied, Door, HostGuard, error, health_summary
from sovereign.router.callers import Caller
from sovereign.router.config import SIMULATED, RouterSettings
from sovereign.router.ladder import AUTO_MODELS, Forbidden, NoAnswer, RouteResult, UnknownModel, Unsupported
from sovereign.router.metrics import CONTENT_TYPE_LATEST
from sovereign.router.params import BadParam, parse_body, read_params
from sovereign.router.service import Router

log = logging.getLogger(__name__)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ToolFunction(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: Literal["function"] = "function"
    function: ToolFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1)
    stream_options: dict[str, Any] | None = None
    # Checked by params.read_params (honoured or refused, never dropped).
    stop: Any = None
    response_format: Any = None
    tools: Any = None
    tool_choice: Any = None


def _flatten(req: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(req.messages):
        if m.role == "tool" and not m.tool_call_id:
            raise ValueError(f"messages[{i}].tool_call_id: required in a tool message")
        if m.tool_calls and m.role != "assistant":
            raise ValueError(f"messages[{i}].tool_calls: only an assistant message makes tool calls")
        if m.content is None and m.tool_calls:
            out.append({"role": "assistant", "content": "",
                        "tool_calls": [c.model_dump() for c in m.tool_calls]})
            continue
        if m.content is None:
            raise ValueError(f"messages[{i}].content: required")
        if isinstance(m.content, str):
            text = m.content
        else:
            parts = []
            for j, p in enumerate(m.content):
                if p.type != "text" or p.text is None:
                    raise ValueError(f"messages[{i}].content[{j}]: only text parts are supported "
                                     f"(got {p.type!r})")
                parts.append(p.text)
            text = "\n".join(parts)
        msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": text}
        if m.tool_calls:
            msg["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.role == "tool":
            msg["tool_call_id"] = m.tool_call_id
        out.append(msg)
    if not any(m["role"] == "user" for m in out):
        raise ValueError("messages: at least one user message is required")
    return out


def _ascii(value: Any) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", str(value))[:1000]


def headers_of(r: RouteResult) -> dict[str, str]:
    h = {
        "X-Sovereign-Request-Id": r.request_id,
        "X-Sovereign-Tier": r.tier,
        "X-Sovereign-Model": r.model,
        "X-Sovereign-Score": "" if r.score is None else f"{r.score:.4f}",
        "X-Sovereign-Scorer": r.scorer,
        "X-Sovereign-Calibrated": str(r.calibrated).lower(),
        "X-Sovereign-Below-Threshold": str(r.below_threshold).lower(),
        "X-Sovereign-Path": ",".join(f"{s.tier}={s.decision}" + ("" if s.score is None else f":{s.score:.3f}")
                                     for s in r.path),
        "X-Sovereign-Crystallized": (f"{r.crystallized.match}:{r.crystallized.crystal_id}"
                                     if r.crystallized else "no"),
        "X-Sovereign-Egress": r.egress.decision + (f":{r.egress.provider}" if r.egress.provider else ""),
        "X-Sovereign-Class": r.assessment.cls,
        "X-Sovereign-Domain": r.assessment.domain,
    }
    if r.simulated:
        h["X-Sovereign-Simulated"] = SIMULATED
    return {k: _ascii(v) for k, v in h.items()}


def _message(r: RouteResult) -> dict[str, Any]:
    if r.tool_calls:
        return {"role": "assistant", "content": r.text or None, "tool_calls": r.tool_calls}
    return {"role": "assistant", "content": r.text}


def completion_body(r: RouteResult) -> dict[str, Any]:
    return {
        "id": r.request_id, "object": "chat.completion", "created": r.created, "model": r.model,
        "system_fingerprint": "sovereign-router",
        "choices": [{"index": 0, "message": _message(r),
                     "finish_reason": r.finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                  "total_tokens": r.prompt_tokens + r.completion_tokens},
        "sovereign": r.sovereign(),
    }


def _pieces(text: str) -> list[str]:
    """The answer cut after each whitespace run (words keep their spaces)."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


async def stream_body(r: RouteResult, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {"id": r.request_id, "object": "chat.completion.chunk", "created": r.created, "model": r.model,
                "system_fingerprint": "sovereign-router",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    if r.text or not r.tool_calls:
        for piece in _pieces(r.text):
            yield chunk({"content": piece})
    if r.tool_calls:
        yield chunk({"tool_calls": [{"index": i, **c} for i, c in enumerate(r.tool_calls)]})
    yield chunk({}, r.finish_reason, sovereign=r.sovereign())
    if include_usage:
        usage = {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                 "total_tokens": r.prompt_tokens + r.completion_tokens}
        body = {"id": r.request_id, "object": "chat.completion.chunk", "created": r.created, "model": r.model,
                "choices": [], "usage": usage}
        yield f"data: {json.dumps(body)}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def kept_alive(routing: asyncio.Future[Any], include_usage: bool, every: float) -> AsyncIterator[bytes]:
    """A stream whose ladder has not decided yet: SSE comments (which clients
    ignore and proxies count as traffic) until it has, then the answer, or the
    error in OpenAI's streaming shape. Nothing of an answer leaves before the
    gate has accepted it."""
    yield b": sovereign router: the ladder is still deciding\n\n"
    while True:
        done, _ = await asyncio.wait({routing}, timeout=every)
        if done:
            break
        yield b": keep-alive\n\n"
    result = routing.result()
    if isinstance(result, Response):
        yield b"data: " + bytes(result.body) + b"\n\n"
        yield b"data: [DONE]\n\n"
        return
    async for piece in stream_body(result, include_usage):
        yield piece


def create_app(settings: RouterSettings, router_factory: Callable[[RouterSettings],
                                                                  Router] | None = None) -> Starlette:
    state: dict[str, Any] = {}

    def router() -> Router:
        return state["router"]

    def door() -> Door:
        return state["door"]

    async def chat(request: Request) -> Response:
        r = router()
        try:
            caller = door().admit(request)
        except Denied as exc:
            r.metrics.requests.labels(outcome="unauthorized").inc()
            return exc.response()
        raw = await request.body()
        if len(raw) > settings.max_request_bytes:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(413, f"request body of {len(raw)} bytes exceeds {settings.max_request_bytes}",
                         code="request_too_large")
        try:
            data = parse_body(raw)
        except BadParam as exc:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(400, exc.message, param=exc.param, code=exc.code)
        if not isinstance(data, dict):
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(400, "the request body must be a JSON object", code="invalid_json")
        try:
            req = ChatRequest.model_validate(data)
            messages = _flatten(req)
            params = read_params(data, messages)
        except BadParam as exc:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(400, exc.message, param=exc.param, code=exc.code)
        except ValidationError as exc:
            r.metrics.requests.labels(outcome="invalid").inc()
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            return error(400, f"{param}: {first['msg']}" if param else first["msg"], param=param or None,
                         code="invalid_value")
        except ValueError as exc:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(400, str(exc), param="messages", code="invalid_value")
        routing = asyncio.ensure_future(routed(r, req, messages, params, caller))
        if req.stream:
            # Wait a little for the ladder: an error decided by then keeps its HTTP status.
            done, _ = await asyncio.wait({routing}, timeout=settings.stream_keepalive_s)
            if not done:
                include = bool((req.stream_options or {}).get("include_usage"))
                return StreamingResponse(kept_alive(routing, include, settings.stream_keepalive_s),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
        result = await routing
        if isinstance(result, Response):
            return result
        headers = headers_of(result)
        if req.stream:
            include = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(stream_body(result, include), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        return JSONResponse(completion_body(result), headers=headers)

    async def routed(r: Router, req: ChatRequest, messages: list[dict[str, Any]],
                     params: Any, caller: Caller) -> RouteResult | Response:
        """The ladder's result, or the error response it comes to."""
        try:
            return await r.route(messages, model=req.model,
                                 max_tokens=req.max_completion_tokens or req.max_tokens,
                                 temperature=req.temperature, params=params, caller=caller)
        except Forbidden as exc:
            r.metrics.requests.labels(outcome="forbidden").inc()
            return error(403, exc.message, type_="permission_error", param=exc.param, code="tier_not_allowed")
        except Unsupported as exc:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(400, exc.message, param=exc.param, code="unsupported_parameter",
                         extra={"request_id": exc.request_id, "path": [s.model_dump() for s in exc.path]})
        except UnknownModel:
            r.metrics.requests.labels(outcome="invalid").inc()
            return error(404, f"The model `{req.model}` does not exist: use one of "
                         f"{', '.join([*AUTO_MODELS[:1], *r.tier_names()])}", param="model",
                         code="model_not_found")
        except NoAnswer as exc:
            return error(503, exc.reason, type_="service_unavailable", code="no_tier_available",
                         extra={"request_id": exc.request_id, "path": [s.model_dump() for s in exc.path]})

    async def models(request: Request) -> Response:
        r = router()
        try:
            caller = door().admit(request)
        except Denied as exc:
            return exc.response()
        now = int(r.started)
        mine = [n for n in r.tier_names() if caller.policy.may_use(n)]
        data = [{"id": "auto", "object": "model", "created": now, "owned_by": "sovereign",
                 "sovereign": {"kind": "ladder", "tiers": mine}}]
        for name, c in r.clients.items():
            if name not in mine:
                continue
            data.append({"id": name, "object": "model", "created": now, "owned_by": "sovereign",
                         "sovereign": {"kind": c.tier.kind, "model": c.model, "threshold": c.tier.threshold,
                                       "scorer": c.tier.scorer, "simulated": c.simulated}})
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        body = await router().health()
        status = 200 if body["status"] == "ok" else 503
        return JSONResponse(body if door().sees_detail(request) else health_summary(body), status_code=status)

    async def metrics(request: Request) -> Response:
        r = router()
        if not door().sees_detail(request):
            return error(403, "/metrics needs an admin key (or a client on a loopback address)",
                         type_="permission_error", code="admin_scope_required")
        r.metrics.crystals.set(len(r.crystals.index))
        return Response(r.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=kind)

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}", type_="server_error",
                     code="internal_error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        r = (router_factory or Router)(settings)
        await r.start()
        state["router"] = r
        state["door"] = Door(settings, r.callers)
        log.info("router ready: tiers %s, store %s, embedder %s", r.tier_names(),
                 r.store.describe() if r.store else f"unavailable ({r.store_error})", r.embedder_note)
        if settings.auth.mode == "none":
            log.warning("authentication off (auth.mode: none): listening on %s, a loopback address, only",
                        settings.listen.host)
        elif (keys := r.callers.count()) == 0:
            log.warning("no caller keys yet (%s): every API request gets 401 until `sovereign router keys "
                        "add NAME`", settings.keys_path())
        else:
            log.info("%d caller key(s); Host and Origin must be one of %s", keys,
                     ", ".join(sorted(settings.listen.allowed_hosts)) or "this machine's names")
        try:
            yield
        finally:
            await r.close()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: on_http_error, Exception: on_crash},
        lifespan=lifespan,
        middleware=middleware(settings),
    )
    app.state.started = time.time()
    app.state.routers = state
    return app


def middleware(settings: RouterSettings) -> list[Middleware]:
    """The Host/Origin guard, outermost; CORS only for the origins configured."""
    out = [Middleware(HostGuard, settings=settings)]
    if settings.listen.cors_origins:
        out.append(Middleware(CORSMiddleware, allow_origins=settings.listen.cors_origins,
                              allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    return out


def serve(settings: RouterSettings) -> None:
    """Serve the router on settings.listen until stopped (the CLI's `router
    serve` and the unit's `python -m sovereign.router` both end here)."""
    from sovereign.service.serve import configure_logging, quiet_blas
    from sovereign.service.serve import serve as run

    quiet_blas()
    configure_logging()
    log.info("router on http://%s:%s (%s)", settings.listen.host, settings.listen.port,
             "; ".join(settings.source) or "defaults")
    run(create_app(settings), settings.listen.host, settings.listen.port, name="the router",
        close_s=Router.close_bound_s(settings))
