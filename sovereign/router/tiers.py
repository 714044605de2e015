"""Tier clients: one OpenAI-compatible (or llama-server native) endpoint each.

A local tier is a llama-server unit: `POST /v1/chat/completions` with
`logprobs: true, top_logprobs: N` for chat models, or `POST /completion` with
`n_probs: N` for base models without a chat template (the prompt is rendered
from `prompt_template`). A cloud tier is a provider's OpenAI-compatible
`/chat/completions`, reached only through the egress gate (ladder.py).

Every failure becomes a `TierError` with a kind (`timeout`, `down`, `http`,
`bad-response`, `unconfigured`) and a redacted message.

A local tier's text is cut at its chat-template markers (markers.py): the
model's own, read once from llama-server's `GET /props` and cached, and its
prompt template's. They also go out as `stop` strings (a `/completion` tier's
with its `stop`). `TierAnswer.cut` names the marker an answer was cut at; the
tokens after it are dropped with the text, so they are not scored either. A
cloud tier's answer is left as it is.

The request's parameters (params.py) go out with it: `stop` (merged with the
tier's own; the text is cut at them after generation as well),
`response_format` (llama-server's `json_schema` on `/completion`), `tools`
and `tool_choice`; `TierAnswer.tool_calls` holds the calls in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, SecretStr

from sovereign.router.config import ProviderSettings, TierSettings
from sovereign.router.markers import Markers, markers_for
from sovereign.router.params import Params, cut_at_stop
from sovereign.service.redact import redact

log = logging.getLogger(__name__)

ErrorKind = Literal["timeout", "down", "http", "bad-response", "unconfigured"]
PROPS_RETRY_S = 60.0  # a tier whose /props could not be read is asked again after this


class TierError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(redact(message))
        self.kind = kind
        self.message = redact(message)


class Alt(BaseModel):
    token: str
    logprob: float


class TokenLP(BaseModel):
    token: str
    id: int | None = None
    logprob: float
    top: list[Alt] = []


class TierAnswer(BaseModel):
    tier: str
    model: str
    text: str
    finish_reason: str
    tokens: list[TokenLP]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    raw: dict[str, Any] = {}
    simulated: bool = False
    cut: str | None = None  # the template marker the text was cut at
    stopped_at: str | None = None  # the request's stop string the text was cut at
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI's shape: id, type, function {name, arguments}


def _tokens_from(items: list[dict[str, Any]] | None) -> list[TokenLP]:
    out = []
    for it in items or []:
        try:
            out.append(TokenLP(
                token=str(it.get("token", "")), id=it.get("id"), logprob=float(it["logprob"]),
                top=[Alt(token=str(a.get("token", "")), logprob=float(a["logprob"]))
                     for a in it.get("top_logprobs") or []],
            ))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _cut(text: str, tokens: list[TokenLP], marks: Markers | None) -> tuple[str, list[TokenLP], str | None]:
    """The text cut at its first template marker, with the tokens that make up what is kept."""
    if marks is None:
        return text, tokens, None
    cut = marks.cut(text)
    if cut.marker is None:
        return text, tokens, None
    kept, pos = [], 0
    for tok in tokens:
        end = pos + len(tok.token)
        if tok.token and pos < cut.end and end > cut.start:
            kept.append(tok)
        pos = end
    return cut.text, kept, cut.marker


def _cut_stop(answer: TierAnswer, stops: list[str]) -> TierAnswer:
    """The answer cut at the first of the request's stop strings (its tokens with it)."""
    text, hit = cut_at_stop(answer.text, stops)
    if hit is None:
        return answer
    kept, pos = [], 0
    for tok in answer.tokens:
        if pos >= len(text):
            break
        kept.append(tok)
        pos += len(tok.token)
    return answer.model_copy(update={"text": text,
                                     "tokens": kept, "stopped_at": hit, "finish_reason": "stop"})


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    calls = message.get("tool_calls")
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for i, c in enumerate(calls):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict):
            raise TierError("bad-response", f"tool_calls[{i}] has no function")
        args = fn.get("arguments")
        out.append({"id": str(c.get("id") or f"call_{i}"), "type": "function",
                    "function": {"name": str(fn.get("name") or ""),
                                 "arguments": args if isinstance(args, str) else json.dumps(args or {})}})
    return out


def _finish(finish: str, cut: str | None) -> str:
    """An answer cut at an end-of-turn marker ended there, whatever the server says;
    one that only lost its leading header did not."""
    return "stop" if cut and cut != "header" else finish


def render_prompt(messages: list[dict[str, str]], template: str) -> str:
    """A plain-text prompt for a base model: the template for one user turn, a
    transcript ending in `Assistant:` for a conversation."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) == 1 and turns[0]["role"] == "user":
        body = template.format(prompt=turns[0]["content"])
    else:
        lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in turns]
        body = "\n".join(lines) + "\nAssistant:"
    return f"{system}\n\n{body}" if system else body


class TierClient:
    def __init__(self, tier: TierSettings, http: httpx.AsyncClient,
                 provider: ProviderSettings | None = None, api_key: SecretStr | None = None) -> None:
        self.tier = tier
        self.http = http
        self.provider = provider
        self._key = api_key
        self.props: dict[str, Any] | None = None  # llama-server's /props, once read
        self._markers: Markers | None = None
        self._markers_until = 0.0  # when markers read without /props are read again

    @property
    def name(self) -> str:
        return self.tier.name

    @property
    def model(self) -> str:
        if self.tier.kind == "cloud":
            return self.tier.model or (self.provider.model if self.provider else None) or "?"
        return self.tier.model or self.tier.name

    @property
    def simulated(self) -> bool:
        return bool(self.provider and self.provider.simulated)

    def problem(self) -> str | None:
        """Why this tier cannot run, or None."""
        t = self.tier
        if not t.enabled:
            return "disabled in the configuration"
        if t.unconfigured:
            return t.unconfigured
        if t.kind == "local" and not t.endpoint:
            return "no endpoint"
        if t.kind == "cloud":
            if self.provider is None or not self.provider.base_url:
                return f"provider {t.provider!r} has no base_url"
            if not (t.model or self.provider.model):
                return f"provider {t.provider!r} has no model"
            if self._key is None and not self.provider.simulated:
                env = self.provider.api_key_env or "its api_key_env"
                return f"provider {t.provider!r} has no API key (set {env})"
        return None

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self._key is not None:
            h["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return h

    def _url(self, path: str) -> str:
        if self.tier.kind == "cloud":
            assert self.provider is not None and self.provider.base_url
            return self.provider.base_url.rstrip("/") + path
        return (self.tier.endpoint or "").rstrip("/") + path

    async def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        url = self._url(path)
        try:
            resp = await asyncio.wait_for(
                self.http.post(url, json=body, headers=self._headers(), timeout=timeout), timeout + 1.0)
        except (TimeoutError, httpx.TimeoutException):
            raise TierError("timeout", f"{self.name}: no answer from {url} within {timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise TierError("down", f"{self.name}: cannot connect to {url} ({exc})") from None
        except httpx.HTTPError as exc:
            raise TierError("down", f"{self.name}: {url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise TierError("http", f"{self.name}: {url} answered HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = resp.json()
        except ValueError:
            raise TierError("bad-response",
                            f"{self.name}: {url} answered non-JSON: {resp.text[:200]}") from None
        if not isinstance(data, dict):
            raise TierError("bad-response", f"{self.name}: {url} answered JSON that is not an object")
        return data

    async def markers(self) -> Markers | None:
        """The tier's template markers (None for a cloud tier): from its `/props`,
        read once and cached (retried after PROPS_RETRY_S when it could not be
        read), and from its prompt template."""
        t = self.tier
        if t.kind != "local":
            return None
        if self._markers is not None and (self.props is not None or time.monotonic() < self._markers_until):
            return self._markers
        props = None
        try:
            resp = await self.http.get(self._url("/props"), headers=self._headers(),
                                       timeout=min(2.0, t.timeout_s))
            if resp.status_code == 200 and isinstance(body := resp.json(), dict):
                props = body
            else:
                log.info("%s: /props answered HTTP %s; markers from the prompt template",
                         self.name, resp.status_code)
        except (httpx.HTTPError, ValueError) as exc:
            log.info("%s: /props unavailable (%s); markers from the prompt template",
                     self.name, type(exc).__name__)
        self.props = props
        self._markers = markers_for(props, t.prompt_template, completion=t.api == "completion")
        self._markers_until = time.monotonic() + PROPS_RETRY_S
        return self._markers

    async def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                       temperature: float | None = None, want_logprobs: bool = True,
                       top_logprobs: int | None = None, params: Params | None = None) -> TierAnswer:
        """One answer. `params` (the request's stop, response_format, tools) go
        to the endpoint; the text is cut at the request's stop strings after
        generation as well."""
        t = self.tier
        p = params or Params()
        n_top = t.top_logprobs if top_logprobs is None else top_logprobs
        max_tokens = min(max_tokens or t.max_tokens, t.max_tokens)
        temperature = 0.0 if temperature is None else temperature
        marks = await self.markers()
        started = time.perf_counter()
        stop = list(dict.fromkeys([*t.stop, *marks.stop(), *p.stop])) if marks else [*t.stop, *p.stop]
        if t.kind == "local" and t.api == "completion":
            body: dict[str, Any] = {"prompt": render_prompt(messages, t.prompt_template),
                                    "n_predict": max_tokens,
                                    "temperature": temperature, "stop": stop, "cache_prompt": True}
            if want_logprobs:
                body["n_probs"] = max(n_top, 1)
            if p.json_mode is not None:  # llama-server turns the schema into a grammar
                body["json_schema"] = p.schema if p.schema is not None else {"type": "object"}
            data = await self._post("/completion", body, t.timeout_s)
            return _cut_stop(self._from_completion(data, started, marks), p.stop)
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "stream": False}
        chat_stop = list(dict.fromkeys([*(marks.special if marks else []), *p.stop]))
        if chat_stop:
            body["stop"] = chat_stop
        if p.response_format is not None:
            body["response_format"] = p.response_format
        if p.tools:
            body["tools"] = p.tools
            body["tool_choice"] = p.tool_choice or "auto"
        if want_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = n_top
        path = "/chat/completions" if t.kind == "cloud" else "/v1/chat/completions"
        data = await self._post(path, body, t.timeout_s)
        return _cut_stop(self._from_chat(data, started, marks), p.stop)

    def _from_chat(self, data: dict[str, Any], started: float, marks: Markers | None = None) -> TierAnswer:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise TierError("bad-response", f"{self.name}: no choices[0].message in the answer") from None
        usage = data.get("usage") or {}
        lp = choice.get("logprobs") or {}
        tokens = _tokens_from(lp.get("content") if isinstance(lp, dict) else None)
        finish = str(choice.get("finish_reason") or "stop")
        text, tokens, cut = _cut(text, tokens, marks)
        try:
            calls = _tool_calls(choice["message"])
        except TierError as exc:
            raise TierError("bad-response", f"{self.name}: {exc.message}") from None
        return TierAnswer(
            tier=self.name, model=str(data.get("model") or self.model), text=text,
            finish_reason="tool_calls" if calls else _finish(finish, cut), tokens=tokens, cut=cut,
            tool_calls=calls,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=(time.perf_counter() - started) * 1000, raw=data, simulated=self.simulated,
        )

    def _from_completion(self, data: dict[str, Any], started: float,
                         marks: Markers | None = None) -> TierAnswer:
        if "content" not in data:
            raise TierError("bad-response", f"{self.name}: /completion answer has no content")
        stop_type = data.get("stop_type")
        finish = "length" if stop_type == "limit" or data.get("truncated") else "stop"
        text, tokens, cut = _cut(str(data.get("content") or ""),
                                 _tokens_from(data.get("completion_probabilities")), marks)
        return TierAnswer(
            tier=self.name, model=self.model, text=text.strip(), finish_reason=_finish(finish, cut),
            tokens=tokens, cut=cut,
            prompt_tokens=int(data.get("tokens_evaluated") or 0),
            completion_tokens=int(data.get("tokens_predicted") or 0),
            latency_ms=(time.perf_counter() - started) * 1000, raw=data,
        )

    async def next_token_alternatives(self, messages: list[dict[str, str]], top_n: int) -> list[Alt]:
        """The top-N alternatives for the first generated token (the verifier's P(yes))."""
        t = self.tier
        if t.kind == "local" and t.api == "completion":
            prompt = render_prompt(messages, "{prompt}\nAnswer:")
            data = await self._post("/completion", {"prompt": prompt, "n_predict": 1, "n_probs": top_n,
                                                    "temperature": 0.0, "cache_prompt": True}, t.timeout_s)
            items = data.get("completion_probabilities") or []
        else:
            path = "/chat/completions" if t.kind == "cloud" else "/v1/chat/completions"
            data = await self._post(path, {"model": self.model, "messages": messages, "max_tokens": 1,
                                           "temperature": 0.0, "logprobs": True, "top_logprobs": top_n},
                                           t.timeout_s)
            try:
                items = (data["choices"][0].get("logprobs") or {}).get("content") or []
            except (KeyError, IndexError, TypeError, AttributeError):
                items = []
        toks = _tokens_from(items)
        if not toks:
            raise TierError("bad-response", f"{self.name}: the verifier returned no log-probabilities")
        first = toks[0]
        return first.top or [Alt(token=first.token, logprob=first.logprob)]

    async def health(self) -> tuple[bool, str]:
        if (why := self.problem()) is not None:
            return False, why
        if self.tier.kind == "cloud":
            return True, "cloud tier: not probed (every call goes through the egress gate)"
        try:
            resp = await self.http.get(self._url("/health"), timeout=2.0)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}"
        return resp.status_code == 200, f"HTTP {resp.status_code}"
