"""The ladder: pre-assess, consult the crystals, climb the tiers, keep the best answer.

`Ladder.route` runs one request through named steps:

1. `assess`: class A/B/C and domain (classify.py); the class picks the
   starting tier (a request naming a tier as its `model` starts there);
2. `consult_crystals`: an exact or semantic hit answers at once (crystals.py);
3. `climb`: tiers in order from the start (`try_tier` each): a tier that is
   unconfigured, disabled or recently down is skipped (and recorded); a local
   tier that takes context from the RAG store gets it (retrieval.py: searched
   once, when the first such tier is tried), a cloud tier never: it is called
   with the original messages, and only if the egress gate allows; an answer is scored
   (scoring.py), calibrated when a calibration exists (calibrate.py), and
   accepted at or above the tier's threshold; an error, a timeout or a score
   below threshold sends the request to the next tier;
4. `choose`: the accepted answer, else the best one seen marked
   `below_threshold` (egress denied, every tier below threshold); a request
   no tier could answer at all is `NoAnswer` (HTTP 503), never an empty reply;
5. `crystallize`: a cloud answer is kept, and labels the local attempts of
   the same request (agreement with it) as calibration ground truth;
6. `record`: every attempt (request id, tier, model, score, latency, tokens,
   decision, reason) and every egress decision goes to the store in the
   background, or to the outbox when the store is unreachable; a request that
   made a cloud call has its crystal and audit rows durable before its answer
   is released (`crystallize`).

The parts it climbs with (clients, gate, crystals, calibration, writer) are
built by the composition root, service.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from sovereign.router import metrics as m
from sovereign.router.calibrate import CalibrationSet, agree
from sovereign.router.callers import LOCAL, Caller
from sovereign.router.classify import (
    CLASSIFY_PROMPT,
    Assessment,
    RuleClassifier,
    read_class_from_logprobs,
    start_tier,
)
from sovereign.router.config import RouterSettings, TierSettings
from sovereign.router.crystals import Crystallizer, Hit
from sovereign.router.egress import EgressDecision, EgressGate, cost_of
from sovereign.router.params import Params, check_format, check_tool_calls, cut_at_stop
from sovereign.router.retrieval import Retrieval, Retriever, context_message, decide, question_of
from sovereign.router.scoring import Score, score_answer
from sovereign.router.store import ATTEMPTS, AUDIT, CRYSTALS, HITS, Attempt, AuditEntry, CrystalHit, Label
from sovereign.router.tiers import TierAnswer, TierClient, TierError
from sovereign.service.outbox import Writer

log = logging.getLogger(__name__)

AUTO_MODELS = ("auto", "sovereign", "sovereign-router")


class Step(BaseModel):
    tier: str
    decision: str
    reason: str = ""
    score: float | None = None
    latency_ms: float | None = None


class EgressInfo(BaseModel):
    decision: str  # allow | deny | not-needed
    provider: str | None = None
    reason: str = ""


class RouteResult(BaseModel):
    request_id: str
    created: int
    text: str
    finish_reason: str
    tier: str
    model: str
    score: float | None
    raw_score: float | None
    scorer: str
    calibrated: bool
    threshold: float | None
    below_threshold: bool
    reason: str
    path: list[Step]
    crystallized: Hit | None = None
    crystal_id: str | None = None  # the crystal this request's cloud answer became
    egress: EgressInfo
    assessment: Assessment
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens_all_attempts: int = 0
    simulated: bool = False
    latency_ms: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    retrieval: dict[str, Any] = {}

    def sovereign(self) -> dict[str, Any]:
        """The extra `sovereign` object of a response."""
        return {
            "request_id": self.request_id, "tier": self.tier, "model": self.model,
            "score": None if self.score is None else round(self.score, 4),
            "raw_score": None if self.raw_score is None else round(self.raw_score, 4),
            "scorer": self.scorer, "calibrated": self.calibrated, "threshold": self.threshold,
            "below_threshold": self.below_threshold, "reason": self.reason,
            "path": [s.model_dump() for s in self.path],
            "crystallized": self.crystallized.model_dump() if self.crystallized else None,
            "crystal_id": self.crystal_id,
            "egress": self.egress.model_dump(), "class": self.assessment.cls,
            "domain": self.assessment.domain,
            "classifier": self.assessment.method, "simulated": self.simulated,
            "tokens_all_attempts": self.total_tokens_all_attempts, "latency_ms": round(self.latency_ms, 1),
            "retrieval": self.retrieval,
        }


class NoAnswer(Exception):
    def __init__(self, request_id: str, path: list[Step], reason: str) -> None:
        super().__init__(reason)
        self.request_id = request_id
        self.path = path
        self.reason = reason


class UnknownModel(Exception):
    pass


class Forbidden(Exception):
    """The caller's policy does not allow what the request names (HTTP 403)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param, self.message = param, message


# What a response's path may say: a tier's name and decision, never its
# internal address (the stored attempt keeps the whole reason for the operator).
_ADDRESS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s,;)]+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def public_reason(reason: str) -> str:
    return _ADDRESS.sub("<endpoint>", reason)


class Unsupported(Exception):
    """No tier of the ladder can honour a parameter of the request (HTTP 400 naming it)."""

    def __init__(self, request_id: str, path: list[Step], param: str, message: str) -> None:
        super().__init__(message)
        self.request_id, self.path, self.param, self.message = request_id, path, param, message



Candidate = tuple[float, TierAnswer, Score, TierSettings]


@dataclass
class Request:
    """One request on its way up the ladder: what it has seen so far."""

    id: str
    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    metrics: m.RouterMetrics
    t0: float = field(default_factory=time.perf_counter)
    assessment: Assessment | None = None
    attempts: list[Attempt] = field(default_factory=list)
    path: list[Step] = field(default_factory=list)
    audits: list[AuditEntry] = field(default_factory=list)
    best: Candidate | None = None
    chosen: Candidate | None = None
    cloud: TierAnswer | None = None
    cloud_provider: str = "?"
    crystal_id: str | None = None
    egress: EgressInfo = field(default_factory=lambda: EgressInfo(decision="not-needed"))
    total_tokens: int = 0
    params: Params = field(default_factory=Params)
    caller: Caller = field(default_factory=lambda: LOCAL)
    retrieval: Retrieval = field(default_factory=Retrieval)

    def record(self, tier: str, decision: str, reason: str, **kw: Any) -> None:
        """One attempt: kept for the store and shown in the response's path."""
        assert self.assessment is not None
        self.attempts.append(Attempt(request_id=self.id, seq=len(self.attempts) + 1, at=time.time(),
                                     tier=tier, decision=decision, reason=reason,
                                     domain=self.assessment.domain, cls=self.assessment.cls,
                                     caller=self.caller.name, chunks=self.retrieval.chunk_ids(tier), **kw))
        score, latency = kw.get("score"), kw.get("latency_ms")
        self.path.append(Step(tier=tier, decision=decision, reason=public_reason(reason),
                              score=None if score is None else round(score, 4),
                              latency_ms=None if latency is None else round(latency, 1)))
        self.metrics.attempts.labels(tier=tier, decision=decision).inc()

    def latency_ms(self) -> float:
        latency = (time.perf_counter() - self.t0) * 1000
        self.metrics.request_latency.observe(latency / 1000)
        return latency


class Ladder:
    def __init__(self, settings: RouterSettings, *, clients: dict[str, TierClient], crystals: Crystallizer,
                 classifier: RuleClassifier, gate: EgressGate, calibration: CalibrationSet,
                 writer: Writer, metrics: m.RouterMetrics, retriever: Retriever | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self.clients = clients
        self.crystals = crystals
        self.classifier = classifier
        self.gate = gate
        self.calibration = calibration
        self.writer = writer
        self.metrics = metrics
        # Tiers that failed: skipped until the time given, with the last error.
        self.down: dict[str, tuple[float, str]] = {}

    async def route(self, messages: list[dict[str, str]], *, model: str = "auto",
                    max_tokens: int | None = None, temperature: float | None = None,
                    params: Params | None = None, caller: Caller = LOCAL) -> RouteResult:
        if model not in AUTO_MODELS and model not in self.clients:
            raise UnknownModel(model)
        if model in self.clients and not caller.policy.may_use(model):
            raise Forbidden("model", f"caller {caller.name!r} may not use tier {model!r} (its tiers: "
                            f"{', '.join(caller.policy.tiers or [])})")
        req = Request(id=f"chatcmpl-sov-{uuid.uuid4().hex[:24]}", messages=messages, max_tokens=max_tokens,
                      temperature=temperature, metrics=self.metrics, params=params or Params(), caller=caller)
        req.assessment = await self.assess(messages, model)
        req.retrieval = decide(req.params.retrieve, caller, [t for t in self.rungs(req.assessment.start_tier)
                                                            if caller.policy.may_use(t.name)])
        self.refuse_unsupported(req)
        hit, first = await self.consult_crystals(req)
        if hit is not None:
            return hit
        if first is None:
            await self.climb(req)
        elif req.chosen is None:  # the first rung answered alongside the lookup, below its threshold
            await self.climb_after(req, first)
        below = self.choose(req)
        await self.crystallize(req)
        self.record(req)
        return self.result(req, below)

    # ---------------------------------------------------------------- 1. assess
    async def assess(self, messages: list[dict[str, str]], model: str = "auto") -> Assessment:
        a = self.classifier.assess(messages, self.settings.egress)
        cfg = self.settings.classifier
        if cfg.mode == "model" and cfg.model_tier in self.clients:
            client = self.clients[cfg.model_tier]
            text = "\n".join(x["content"] for x in messages if x["role"] == "user")[-2000:]
            try:
                alts = await client.next_token_alternatives(
                    [{"role": "user", "content": CLASSIFY_PROMPT.format(text=text)}], 20)
                got = read_class_from_logprobs([x.model_dump() for x in alts])
            except TierError as exc:
                a.reasons.append(f"model classifier failed ({exc.kind}); rules used")
            else:
                if got is not None:
                    a.cls, a.method = got[0], f"model ({cfg.model_tier}, p={got[1]:.2f})"
                    a.reasons.append(f"class {got[0]} read from {cfg.model_tier}'s log-probabilities")
        a.start_tier = start_tier(a.cls, self.settings.tiers, cfg)
        if model in self.clients:
            a.start_tier = model
            a.reasons.append(f"request names tier {model!r}")
        return a

    @staticmethod
    def cannot(tier: TierSettings, params: Params) -> tuple[str, str] | None:
        """(parameter, why) when a tier cannot honour the request's tools or response_format."""
        if params.needs_tools and not (tier.supports_tools and (tier.kind == "cloud" or tier.api == "chat")):
            why = "its completion api has no tools" if tier.supports_tools else "supports_tools: false"
            return "tools", f"cannot take tools ({why})"
        if params.json_mode is not None and not tier.supports_response_format:
            return "response_format", (f"cannot take response_format {params.json_mode} "
                                       "(supports_response_format: false)")
        return None

    def refuse_unsupported(self, req: Request) -> None:
        """Unsupported (recorded) when no runnable tier of the climb can honour
        the request's tools or response_format."""
        assert req.assessment is not None
        p = req.params
        if not p.needs_tools and p.json_mode is None:
            return
        runnable = [t for t in self.rungs(req.assessment.start_tier)
                    if self.clients[t.name].problem() is None and req.caller.policy.may_use(t.name)]
        whys = [(t, self.cannot(t, p)) for t in runnable]
        if any(why is None for _, why in whys):
            return
        tools_only = Params(tools=p.tools, tool_turns=p.tool_turns)
        param = "tools" if p.needs_tools and all(self.cannot(t, tools_only) for t in runnable) \
            else "response_format"
        for t, why in whys:
            assert why is not None
            req.record(t.name, "skipped", why[1], model=self.clients[t.name].model)
        self.metrics.requests.labels(outcome="invalid").inc()
        self.record(req)
        what = "tools or tool messages" if param == "tools" else f"response_format {p.json_mode}"
        tiers = ", ".join(t.name for t in runnable) or "none"
        raise Unsupported(req.id, req.path, param, f"{param}: no runnable tier of this ladder can honour "
                          f"{what} (runnable from {req.assessment.start_tier}: {tiers})")

    # ---------------------------------------------------------------- 2. crystals
    async def consult_crystals(self, req: Request) -> tuple[RouteResult | None, TierSettings | None]:
        """(the crystal's answer or None, the tier already tried or None).

        The exact lookup first (a hash). Then, when a semantic lookup could match,
        the embedding and the search run alongside the first rung's request, when
        that rung is local (a cloud call costs budget and egress: never started
        speculatively): on a hit the tier's request is cancelled (recorded), on a
        miss the tier's attempt, judged as in the climb, is the request's."""
        assert req.assessment is not None
        if req.params.needs_tools:  # a stored text answer does not answer a request that offers tools
            return None, None
        sharing = req.caller.policy.crystals
        if sharing == "none":
            return None, None
        owner = req.caller.name if sharing == "own" else None
        hit = await self._lookup(req, self.crystals.lookup_exact(req.messages, owner))
        if hit is not None and (hit := self.crystal_fits(req, hit)) is not None:
            return self.serve_crystal(req, hit), None
        if not self.crystals.wants_semantic(req.messages, req.assessment.domain):
            return None, None
        first = self.early_tier(req)
        shadow, since = self._shadow(req), (len(req.attempts), len(req.audits))
        early = asyncio.create_task(self.try_tier(shadow, first)) if first is not None else None
        try:
            hit = await self._lookup(req, self.crystals.lookup_semantic(req.messages, req.assessment.domain,
                                                                        owner))
        except BaseException:
            if early is not None:
                early.cancel()
            raise
        if hit is not None:
            hit = self.crystal_fits(req, hit)
        if early is None or first is None:
            return (self.serve_crystal(req, hit) if hit is not None else None), None
        if hit is not None and early.cancel():
            req.record(first.name, "cancelled", f"crystal {hit.crystal_id} answered first "
                       f"({hit.match} match)", model=self.clients[first.name].model, kind=first.kind)
            return self.serve_crystal(req, hit), None
        await early
        self._adopt(req, shadow, since)
        if hit is not None:  # the tier had answered before the crystal's confirmation came back
            return self.serve_crystal(req, hit), None
        return None, first

    async def _lookup(self, req: Request, lookup: Any) -> Hit | None:
        try:
            return await lookup
        except Exception as exc:  # a broken lookup must not stop the ladder
            log.exception("crystal lookup failed")
            req.record("crystals", "error", f"lookup failed: {type(exc).__name__}")
            return None

    def early_tier(self, req: Request) -> TierSettings | None:
        """The first rung, when it may be started before the lookup is done: a local tier."""
        assert req.assessment is not None
        rungs = self.rungs(req.assessment.start_tier)
        return rungs[0] if rungs and rungs[0].kind != "cloud" else None

    @staticmethod
    def _shadow(req: Request) -> Request:
        """A copy of the request for a tier run alongside the lookup: what it records
        is the request's only once the lookup missed (`_adopt`)."""
        return dataclasses.replace(req, attempts=list(req.attempts), path=list(req.path),
                                   audits=list(req.audits))

    @staticmethod
    def _adopt(req: Request, shadow: Request, since: tuple[int, int]) -> None:
        """What the shadow recorded after `since` (its attempts and audits when it was made)
        becomes the request's, attempts renumbered after the request's own, and its outcome."""
        for a, step in zip(shadow.attempts[since[0]:], shadow.path[since[0]:], strict=True):
            req.attempts.append(a.model_copy(update={"seq": len(req.attempts) + 1}))
            req.path.append(step)
        req.audits += shadow.audits[since[1]:]
        req.best, req.chosen, req.total_tokens = shadow.best, shadow.chosen, shadow.total_tokens
        req.cloud, req.cloud_provider, req.egress = shadow.cloud, shadow.cloud_provider, shadow.egress

    async def climb_after(self, req: Request, done: TierSettings) -> None:
        """The climb from the rung after `done`."""
        assert req.assessment is not None
        rungs = self.rungs(req.assessment.start_tier)
        for tier in rungs[rungs.index(done) + 1:]:
            if await self.try_tier(req, tier):
                return

    def crystal_fits(self, req: Request, hit: Hit) -> Hit | None:
        """The hit, cut at the request's stop strings; None (recorded) when it does not
        satisfy the request's response_format."""
        text, stopped = cut_at_stop(hit.answer, req.params.stop)
        if (bad := check_format(text, req.params)) is not None:
            req.record("crystals", "invalid-format", f"crystal {hit.crystal_id} does not satisfy "
                       f"response_format {req.params.json_mode}: {bad}", model=hit.model)
            return None
        return hit.model_copy(update={"answer": text}) if stopped is not None else hit

    def serve_crystal(self, req: Request, hit: Hit) -> RouteResult:
        """The crystal's answer as the request's result (recorded)."""
        assert req.assessment is not None
        req.record("crystals", "crystallized", f"{hit.match} match of crystal {hit.crystal_id} "
                   f"(similarity {hit.similarity:.3f}) from {hit.provider}", score=hit.similarity,
                   model=hit.model)
        self.writer.submit(ATTEMPTS, req.attempts)
        self.writer.submit(HITS, [CrystalHit(id=hit.crystal_id, at=time.time())])
        self.metrics.crystal_hits.labels(match=hit.match).inc()
        self.metrics.requests.labels(outcome="crystallized").inc()
        return RouteResult(
            request_id=req.id, created=int(time.time()), text=hit.answer, finish_reason="stop",
            tier="crystal", model=hit.model, score=hit.similarity, raw_score=hit.similarity,
            scorer=f"crystal-{hit.match}",
            calibrated=False,
            threshold=self.settings.store.semantic_threshold if hit.match == "semantic" else 1.0,
            below_threshold=False, reason=f"crystallized answer ({hit.match} match) from {hit.provider}",
            path=req.path, crystallized=hit, egress=EgressInfo(decision="not-needed"),
            assessment=req.assessment, latency_ms=req.latency_ms(), retrieval=self.settled(req, "crystal"))

    # ---------------------------------------------------------------- 3. climb
    def rungs(self, start: str | None) -> list[TierSettings]:
        tiers = self.settings.tiers
        names = [t.name for t in tiers]
        return tiers[names.index(start) if start in names else 0:]

    async def climb(self, req: Request) -> None:
        assert req.assessment is not None
        for tier in self.rungs(req.assessment.start_tier):
            if await self.try_tier(req, tier):
                return

    def _skip_reason(self, tier: TierSettings, client: TierClient) -> str | None:
        if (why := client.problem()) is not None:
            return f"not runnable: {why}"
        down = self.down.get(tier.name)
        if down and down[0] > time.time():
            return (f"down (last error: {down[1]}); retried after "
                    f"{time.strftime('%H:%M:%S', time.localtime(down[0]))}")
        return None

    def _pass_gate(self, req: Request, tier: TierSettings, client: TierClient) -> EgressDecision | None:
        """The egress decision for a cloud tier (recorded; a denial is audited)."""
        assert client.provider is not None and req.assessment is not None
        chars = sum(len(x["content"]) for x in req.messages)
        est = chars // 4 + min(req.max_tokens or tier.max_tokens, tier.max_tokens)
        decision = self.gate.check(client.provider, req.assessment.domain, est, req.id,
                                   findings=req.assessment.findings, caller=req.caller)
        self.metrics.egress.labels(provider=client.provider.name,
                                   decision="allow" if decision.allowed else "deny").inc()
        req.egress = EgressInfo(decision="allow" if decision.allowed else "deny",
                                provider=client.provider.name, reason=decision.reason)
        if not decision.allowed:
            req.audits.append(EgressGate.audit_entry(decision))
            req.record(tier.name, "egress-denied", decision.reason, model=client.model, kind="cloud")
        return decision

    async def try_tier(self, req: Request, tier: TierSettings) -> bool:
        """Ask one tier; True when its answer is accepted (the climb stops)."""
        client = self.clients[tier.name]
        if not req.caller.policy.may_use(tier.name):
            req.record(tier.name, "skipped", f"not one of caller {req.caller.name!r}'s tiers",
                       model=client.model)
            return False
        if (skip := self._skip_reason(tier, client)) is not None:
            req.record(tier.name, "skipped", skip, model=client.model)
            return False
        if (cannot := self.cannot(tier, req.params)) is not None:
            req.record(tier.name, "skipped", cannot[1], model=client.model)
            return False
        decision: EgressDecision | None = None
        if tier.kind == "cloud":
            decision = self._pass_gate(req, tier, client)
            if decision is None or not decision.allowed:
                return False
        sent = await self.messages_for(req, tier)
        try:
            answer = await client.complete(sent, max_tokens=req.max_tokens,
                                           temperature=req.temperature,
                                           want_logprobs=tier.scorer in ("logprob", "logprob+verify"),
                                           params=req.params)
        except TierError as exc:
            if exc.kind in ("down", "timeout"):
                self.down[tier.name] = (time.time() + self.settings.down_retry_s, exc.message)
            if decision is not None:
                self.gate.settle(decision, 0, 0.0)
                req.audits.append(EgressGate.audit_entry(decision, outcome=f"call failed: {exc.kind}"))
            req.record(tier.name, exc.kind if exc.kind in ("timeout", "down") else "error", exc.message,
                       model=client.model, kind=tier.kind)
            return False
        self.down.pop(tier.name, None)
        self.metrics.tier_latency.labels(tier=tier.name).observe(answer.latency_ms / 1000)
        req.total_tokens += answer.prompt_tokens + answer.completion_tokens
        if decision is not None:
            assert client.provider is not None
            cost = cost_of(client.provider, answer.prompt_tokens, answer.completion_tokens)
            tokens = answer.prompt_tokens + answer.completion_tokens
            self.gate.settle(decision, tokens, cost)
            req.audits.append(EgressGate.audit_entry(decision, tokens, cost,
                                                     outcome=f"answered by {answer.model} ({tokens} tokens)"))
            req.cloud, req.cloud_provider = answer, client.provider.name
        return await self.judge(req, tier, answer, sent)

    async def messages_for(self, req: Request, tier: TierSettings) -> list[dict[str, Any]]:
        """What a tier is sent: the conversation, after the context from the RAG
        store when the tier takes it (a local tier only: retrieval.py). The
        search is made once per request, for the first tier that takes it."""
        r = req.retrieval
        if not r.takes(tier):
            return req.messages
        if not r.searched:
            r.searched = True
            if self.retriever is None:
                r.reason = "store unavailable: this router has no RAG store"
            else:
                r.hits, why = await self.retriever.search(question_of(req.messages))
                r.reason = why or ""
        if not r.hits:
            return req.messages
        if tier.name not in r.tiers:
            r.tiers.append(tier.name)
        return [context_message(r.hits), *req.messages]

    @staticmethod
    def settled(req: Request, tier: str) -> dict[str, Any]:
        req.retrieval.settle(tier)
        return req.retrieval.public()

    async def judge(self, req: Request, tier: TierSettings, answer: TierAnswer,
                    sent: list[dict[str, Any]]) -> bool:
        """Score an answer against the tier's threshold; keep the best one seen.
        An answer that breaks the request's response_format or tool_choice is
        `invalid-format` and never kept. An echo is judged against what the
        tier was sent (the context included)."""
        p = req.params
        bad = check_tool_calls(answer.tool_calls, p) if p.tools else None
        if bad is None and not answer.tool_calls:
            bad = check_format(answer.text, p)
        if bad is not None:
            req.record(tier.name, "invalid-format", bad, model=answer.model, kind=tier.kind,
                       latency_ms=answer.latency_ms, prompt_tokens=answer.prompt_tokens,
                       completion_tokens=answer.completion_tokens, answer=answer.text)
            return False
        verifier = self.clients.get(tier.verifier or "")
        score = await score_answer(tier.scorer or "logprob", sent, answer, verifier, self.settings.scoring)
        score.calibrated = self.calibration.apply(tier.name, score.scorer, score.raw)
        value = score.value
        base = dict(model=answer.model, kind=tier.kind, scorer=score.scorer, raw_score=score.raw, score=value,
                    calibrated=score.calibrated is not None, threshold=tier.threshold,
                    latency_ms=answer.latency_ms, prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens, answer=answer.text, features=score.features)
        if not answer.text.strip() and not answer.tool_calls:
            req.record(tier.name, "empty", "the tier returned an empty answer", **base)
            return False
        cand = (value, answer, score, tier)
        if req.best is None or value > req.best[0]:
            req.best = cand
        what = "calibrated P(correct)" if score.calibrated is not None else f"raw {score.scorer} score"
        note = f" ({score.note})" if score.note else ""
        if value >= tier.threshold:
            req.record(tier.name, "accepted", f"{what} {value:.3f} >= threshold {tier.threshold}{note}",
                       **base)
            req.chosen = cand
            return True
        req.record(tier.name, "below-threshold", f"{what} {value:.3f} < threshold {tier.threshold}{note}",
                   **base)
        return False

    # ---------------------------------------------------------------- 4. choose
    def choose(self, req: Request) -> bool:
        """The answer to return; True when it is below its threshold. Raises
        NoAnswer (after recording) when no tier answered at all."""
        if req.chosen is not None:
            return False
        if req.best is None:
            self.metrics.requests.labels(outcome="no-answer").inc()
            self.record(req)
            reasons = "; ".join(f"{s.tier}: {s.decision}" for s in req.path) or "no tier configured"
            raise NoAnswer(req.id, req.path, f"no tier could answer ({reasons})")
        req.chosen = req.best
        return True

    # ---------------------------------------------------------------- 5. crystallize
    async def crystallize(self, req: Request) -> None:
        """A cloud answer becomes a crystal and labels the local attempts of the
        request. A request that made a cloud call returns from here only once its
        crystal and its audit rows are durable (`Writer.persist`: in the store, or
        in the outbox fsynced), so that a router killed right after the answer
        loses neither; the answer is released after this."""
        cloud = req.cloud
        kept: list[Any] = []
        # Answers shaped by the request (tool calls, JSON, stop strings) do not answer the bare question.
        shaped = cloud is not None and bool(cloud.tool_calls or req.params.needs_tools
                                            or req.params.json_mode is not None or req.params.stop)
        if cloud is not None and not shaped:
            assert req.assessment is not None
            try:
                crystal = await self.crystals.crystallize(
                    messages=req.messages, domain=req.assessment.domain, answer=cloud.text,
                    provider=req.cloud_provider, model=cloud.model, prompt_tokens=cloud.prompt_tokens,
                    completion_tokens=cloud.completion_tokens, raw=cloud.raw, request_id=req.id,
                    caller=req.caller.name)
                kept.append(crystal)
                req.crystal_id = crystal.id
            except Exception:
                log.exception("crystallization failed for %s", req.id)
            for a in req.attempts:
                if a.kind == "local" and a.answer:
                    label = Label(request_id=req.id, seq=a.seq, label=agree(a.answer, cloud.text),
                                  source="cloud")
                    a.label, a.label_source = label.label, label.source
        if any(e.decision == "allow" for e in req.audits):  # a cloud call was made
            await asyncio.gather(self.writer.persist(CRYSTALS, kept), self.writer.persist(AUDIT, req.audits))
            req.audits = []  # durable now: `record` has none of them left to write

    # ---------------------------------------------------------------- 6. record
    def record(self, req: Request) -> None:
        """The attempts, and the audit rows not yet kept by `crystallize`, in the
        background (`close` brings them to disk at a stop)."""
        self.writer.submit(ATTEMPTS, req.attempts)
        self.writer.submit(AUDIT, req.audits)

    def result(self, req: Request, below: bool) -> RouteResult:
        assert req.chosen is not None and req.assessment is not None
        value, answer, score, tier = req.chosen
        if below:
            why = "no tier reached its threshold"
            if req.egress.decision == "deny":
                why = "egress denied: " + req.egress.reason
            reason = f"best local answer, below threshold ({why})"
        else:
            reason = f"accepted at {tier.name}"
        self.metrics.requests.labels(outcome="below-threshold" if below else "answered").inc()
        return RouteResult(
            request_id=req.id, created=int(time.time()), text=answer.text, finish_reason=answer.finish_reason,
            tier=tier.name, model=answer.model, score=value, raw_score=score.raw, scorer=score.scorer,
            calibrated=score.calibrated is not None, threshold=tier.threshold, below_threshold=below,
            reason=reason, path=req.path, crystal_id=req.crystal_id, egress=req.egress,
            assessment=req.assessment,
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
            total_tokens_all_attempts=req.total_tokens, simulated=answer.simulated,
            latency_ms=req.latency_ms(), tool_calls=answer.tool_calls, retrieval=self.settled(req, tier.name))
