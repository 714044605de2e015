"""Retrieval: context from the owner's documents (the RAG store, sovereign.rag)
added to a local tier's request, and named in the response.

When it applies (`decide`): a request asks for it (`sovereign.retrieve: true`,
params.py) or, when the request does not say, the tier is configured to
(`retrieve: true`); `sovereign.retrieve: false` refuses it everywhere; a caller
whose policy says `rag: deny` never gets it. The search is made once per
request, with its last user message, when the first tier that takes context is
tried; the passages at or above `rag.min_score`, up to `rag.max_chars`, go in
as one system message before the conversation (`context_message`).

Only local tiers are ever sent it: a cloud tier's request is built from the
original messages, so the owner's documents never leave (and the privacy
classifier, which reads those messages, has nothing of them to judge).

A store that cannot be opened or searched never fails a request: it is
answered without context, with the reason, and opened again after
`down_retry_s`. The router holds the store open from its first search: the
embedded engine (the lab's) serves one process at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sovereign.errors import SovereignError
from sovereign.router.callers import Caller
from sovereign.router.config import RagSection, TierSettings
from sovereign.service.redact import register

if TYPE_CHECKING:
    from sovereign.rag import Hit, RagSettings, RagStore
    from sovereign.service.embed import Embedder

log = logging.getLogger(__name__)

HEADER = "Context from the owner's documents:"


@dataclass
class Retrieval:
    """What one request's retrieval came to (the response's `sovereign.retrieval`)."""

    wanted: bool = False  # a search is to be made for the first tier that takes context
    asked: bool | None = None  # the request's sovereign.retrieve
    searched: bool = False
    reason: str = "not asked"
    hits: list[Hit] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)  # the tiers that were sent the context
    used: bool = False

    def takes(self, tier: TierSettings) -> bool:
        """Whether this tier's request gets the context (a search is wanted, and the tier takes it)."""
        return self.wanted and takes_context(tier, self.asked)

    def chunk_ids(self, tier: str) -> list[str]:
        return [h.chunk_id for h in self.hits] if tier in self.tiers else []

    def settle(self, tier: str) -> None:
        """The answer came from `tier`: used when it was sent the context, else why not."""
        self.used = bool(self.hits) and tier in self.tiers
        if self.used or not (self.hits or (self.wanted and not self.searched)):
            return  # not wanted, or searched and nothing found: the reason stands
        if tier == "crystal":
            self.reason = "answered by a crystal (a cloud answer, made without the owner's documents)"
        elif self.hits:
            self.reason = f"answered by tier {tier!r}, which was not sent the context"
        else:
            self.reason = f"answered by tier {tier!r} before any tier that takes context was tried"

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"used": self.used}
        if not self.used:
            out["reason"] = self.reason
        out["chunks"] = [{"chunk_id": h.chunk_id, "source": h.source, "start": h.start, "end": h.end,
                          "score": round(h.score, 4)} for h in self.hits]
        out["tiers"] = list(self.tiers)
        return out


def takes_context(tier: TierSettings, asked: bool | None) -> bool:
    """A local tier, when the request asks for context, or does not say and the tier retrieves."""
    return tier.kind == "local" and (asked is True or (asked is None and tier.retrieve))


def decide(asked: bool | None, caller: Caller, tiers: list[TierSettings]) -> Retrieval:
    """Whether a search is to be made for a request climbing `tiers` (the ones the caller may use)."""
    r = Retrieval(asked=asked)
    if asked is False:
        r.reason = "not asked (the request says sovereign.retrieve: false)"
        return r
    if not any(takes_context(t, asked) for t in tiers):
        r.reason = "not asked" if asked is None else "no local tier of this climb (a cloud tier is never " \
                                                     "sent the owner's documents)"
        return r
    if caller.policy.rag == "deny":
        r.reason = f"caller may not (caller {caller.name!r}: rag deny)"
        return r
    r.wanted, r.reason = True, ""
    return r


def select(hits: list[Hit], min_score: float, max_chars: int) -> list[Hit]:
    """The hits at or above min_score, best first, up to max_chars of text (the
    first one cut to fit when it alone is longer, its `end` with it)."""
    kept: list[Hit] = []
    total = 0
    for h in hits:
        if h.score < min_score:
            break
        if total + len(h.text) > max_chars:
            if not kept:
                kept.append(h.model_copy(update={"text": h.text[:max_chars], "end": h.start + max_chars}))
            break
        kept.append(h)
        total += len(h.text)
    return kept


def context_message(hits: list[Hit]) -> dict[str, str]:
    """The one system message that carries the passages."""
    lines = [HEADER]
    lines += [f"[{i}] {h.source}#{h.start}-{h.end}: {h.text.strip()}" for i, h in enumerate(hits, 1)]
    return {"role": "system", "content": "\n".join(lines)}


def question_of(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")


def _why(exc: Exception) -> str:
    if isinstance(exc, SovereignError):
        return "; ".join([exc.message, *exc.details[:3]])
    return f"{type(exc).__name__}: {exc}"


class Retriever:
    """The RAG store, opened on the first search, and the router's retrieval settings."""

    def __init__(self, section: RagSection, retry_s: float, embedder: Embedder | None = None) -> None:
        self.section = section
        self.retry_s = retry_s
        self.embedder = embedder  # the router's, used when it is the model the store's settings name
        self.store: RagStore | None = None
        self.problem: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()  # one call at a time into the client (the embedded engine)

    def settings(self) -> RagSettings:
        from sovereign.rag.settings import DEFAULT_CONFIG, RagSettings
        from sovereign.service.settings import build_settings, deep_merge, read_config_file

        config: Path | None = self.section.config
        if config is None and DEFAULT_CONFIG.is_file():
            config = DEFAULT_CONFIG
        if not self.section.store:
            return build_settings(RagSettings, config_file=config)
        values = read_config_file(config, "rag") if config is not None else {}
        where = f"file {config}, then router settings rag.store" if config else "router settings rag.store"
        return build_settings(RagSettings, inventory=(deep_merge(values, self.section.store), where))

    def _open(self) -> RagStore:
        from sovereign.rag import RagStore
        from sovereign.rag.store import BACKENDS

        settings = self.settings()
        register(settings.api_key)  # the Qdrant server's key: masked in every log and reason
        shared = self.embedder
        if shared is not None and BACKENDS.get(shared.name) != settings.embedding.backend:
            shared = None
        return RagStore.open(settings, shared)

    def _search(self, text: str) -> tuple[list[Hit], str | None]:
        with self._lock:
            if self.store is None:
                if time.monotonic() < self._retry_at:
                    return [], f"store unavailable: {self.problem} (opened again in a moment)"
                try:
                    self.store = self._open()
                except Exception as exc:  # whatever it is, the request is answered without context
                    return [], self._failed(_why(exc))
                log.info("RAG store open: collection %r, %s", self.store.collection, self.store.describe())
            try:
                hits = self.store.search(text, self.section.limit)
                if not hits and not self.store.exists():
                    return [], (f"store unavailable: collection {self.store.collection!r} does not exist "
                                f"({self.store.describe()}): nothing ingested yet (`sovereign rag ingest`)")
            except Exception as exc:
                self._close()
                return [], self._failed(_why(exc))
        kept = select(hits, self.section.min_score, self.section.max_chars)
        if not kept:
            best = f" (best {hits[0].score:.3f})" if hits else " (the collection is empty)"
            return [], f"no passage above min_score {self.section.min_score:g}{best}"
        return kept, None

    def _failed(self, message: str) -> str:
        self.problem = message
        self._retry_at = time.monotonic() + self.retry_s
        log.warning("RAG store unavailable: %s; requests are answered without context", message)
        return f"store unavailable: {message}"

    async def search(self, text: str) -> tuple[list[Hit], str | None]:
        """(the passages kept, None) or ([], why there are none); never raises for the store's sake."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._search, text), self.section.timeout_s)
        except TimeoutError:
            return [], f"store unavailable: no answer within {self.section.timeout_s:g}s (rag.timeout_s)"

    def _close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # closing a broken client must not fail anything
                log.debug("closing the RAG store failed", exc_info=True)
            self.store = None

    async def close(self) -> None:
        """Close the store, unless a search still holds it (the router only reads: left to the exit)."""
        def shut() -> None:
            if self._lock.acquire(blocking=False):
                try:
                    self._close()
                finally:
                    self._lock.release()

        await asyncio.to_thread(shut)
