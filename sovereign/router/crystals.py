"""Crystallization: every cloud answer stored, consulted before any tier runs.

Lookup, in order:
1. **exact**: the conversation's normal form (each message's role and its
   text NFKC-normalised, case-folded, whitespace collapsed) hashed with
   SHA-256; any number of turns;
2. **semantic**: only for single-turn requests (one user message, optional
   system messages): cosine similarity of the user message's embedding to the
   crystals of the same domain and the same system prompt, at or above
   `store.semantic_threshold` (0.92), and an equal answer-changing signature
   (constraints.py: numbers, negation, length, language, tone, format,
   audience, direction, when/why, added clauses): a paraphrase matches, the
   same question "in one sentence", "without an oven" or "in French" does not.
   Multi-turn conversations never match semantically: the answer to "and in
   French?" depends on turns the embedding does not see.

The serving path is an in-memory index (exact keys and unit-norm float32
vectors grouped by domain and system prompt), loaded from the store at
start-up and updated on every write; a hit is confirmed against the store
(a primary-key read), so a crystal forgotten with `sovereign router crystals
forget` stops matching at once. The confirmation waits at most
`store.request_timeout_s` (0.5 s): with the store down, slow or frozen, hits
are served from the index (`served_from: index`) and the writes go to the
outbox.

A `Hit` is what a response carries (`sovereign.crystallized`): the crystal's
id, match type, similarity, the answer's provider and model, the embedder and
where it was served from. Never the stored prompt or its date: those belong to
another request, and only the operator sees them (`sovereign router crystals
show`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from sovereign.router.config import StoreSettings
from sovereign.router.constraints import Signature, numbers_of, signature
from sovereign.router.store import Crystal, RouterStore, StoreUnavailable
from sovereign.router.vectors import VectorBlock
from sovereign.service.embed import Embedder

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- keys


def normalise_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the exact-match normal form."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def exact_key(messages: list[dict[str, str]]) -> str:
    norm = [[m["role"], normalise_text(m["content"])] for m in messages]
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode()).hexdigest()


def system_key(messages: list[dict[str, str]]) -> str:
    system = "\n".join(normalise_text(m["content"]) for m in messages if m["role"] == "system")
    return hashlib.sha256(system.encode()).hexdigest()[:16] if system else ""


def is_single_turn(messages: list[dict[str, str]]) -> bool:
    """One user message and no assistant turn (system messages allowed)."""
    roles = [m["role"] for m in messages if m["role"] != "system"]
    return roles == ["user"]


__all__ = ["Crystallizer", "Hit", "SemanticIndex", "exact_key", "is_single_turn", "normalise_text",
           "numbers_of", "signature", "system_key"]


class Hit(BaseModel):
    """A crystal's answer as a response carries it: nothing of the request it came from."""

    crystal_id: str
    match: str  # exact | semantic
    similarity: float
    answer: str
    provider: str
    model: str
    embedder: str | None = None
    served_from: str = "store"  # store | index (store unreachable)


@dataclass
class _Entry:
    id: str
    answer: str
    provider: str
    model: str
    created_at: float
    prompt: str  # the operator's, never a response's
    signature: Signature
    caller: str | None = None


class SemanticIndex:
    """Exact keys and embeddings of the crystals, in memory. The embeddings are
    grouped in blocks (domain, system prompt), each a `VectorBlock` (vectors.py):
    exact search, through an ANN index from `ann_min_vectors` vectors on (None: never)."""

    def __init__(self, dim: int, ann_min_vectors: int | None = None) -> None:
        self.dim = dim
        self.ann_min_vectors = ann_min_vectors
        self.blocks: dict[tuple[str, str], VectorBlock] = {}
        self.block_of: dict[str, tuple[str, str]] = {}
        self.entries: dict[str, _Entry] = {}
        self.exact: dict[str, str] = {}
        self.removed: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, c: Crystal, vec: np.ndarray | None, sync: bool = True) -> None:
        """One crystal. `sync=False` (a bulk load) leaves the ANN index to `sync()`."""
        with self._lock:
            self.entries[c.id] = _Entry(c.id, c.answer, c.provider, c.model, c.created_at, c.prompt,
                                        signature(c.prompt), c.caller)
            self.exact[c.exact_key] = c.id
            self.removed.discard(c.id)
            if vec is not None and c.single_turn:
                self._add_vector(c.id, c.domain, c.system_key, vec, sync)

    def add_vector(self, ident: str, domain: str, sys_key: str, vec: np.ndarray) -> None:
        with self._lock:
            self._add_vector(ident, domain, sys_key, vec, True)

    def _add_vector(self, ident: str, domain: str, sys_key: str, vec: np.ndarray, sync: bool) -> None:
        key = (domain, sys_key)
        old = self.block_of.get(ident)
        if old is not None and old != key:
            self.blocks[old].remove(ident)
        block = self.blocks.get(key)
        if block is None:
            block = self.blocks[key] = VectorBlock(self.dim, self.ann_min_vectors)
        block.add(ident, vec, sync=sync)
        self.block_of[ident] = key

    def sync(self) -> None:
        """Build or update every block's ANN index now (blocking: start-up, in a thread)."""
        for block in list(self.blocks.values()):
            block.sync(wait=True)

    def remove(self, ident: str) -> None:
        with self._lock:
            self.removed.add(ident)
            self.entries.pop(ident, None)
            for k, v in list(self.exact.items()):
                if v == ident:
                    del self.exact[k]
            key = self.block_of.pop(ident, None)
            if key is not None:
                self.blocks[key].remove(ident)

    def has_block(self, domain: str, sys_key: str) -> bool:
        """Whether any crystal could match semantically (else the embedding is skipped)."""
        block = self.blocks.get((domain, sys_key))
        return block is not None and len(block) > 0

    def find_exact(self, key: str) -> str | None:
        ident = self.exact.get(key)
        return ident if ident and ident not in self.removed else None

    def search(self, domain: str, sys_key: str, vec: np.ndarray, threshold: float,
               sig: Signature, top: int = 16, owner: str | None = None) -> tuple[str, float] | None:
        """The most similar crystal at or above the threshold whose prompt has the
        same answer-changing signature (constraints.py) as the query's (given an
        owner: among the owner's own crystals)."""
        block = self.blocks.get((domain, sys_key))
        if block is None:
            return None
        for ident, sim in block.search(vec, top):
            if sim < threshold:
                return None
            entry = self.entries.get(ident)
            if ident in self.removed or entry is None or (owner is not None and entry.caller != owner):
                continue
            if entry.signature == sig:
                return ident, sim
        return None


class Crystallizer:
    def __init__(self, settings: StoreSettings, store: RouterStore | None, embedder: Embedder | None) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.index = SemanticIndex(embedder.dim if embedder else 384,
                                   settings.ann_min_vectors if settings.ann else None)
        self.loaded = False
        self._queue: list[tuple[str, asyncio.Future[np.ndarray]]] = []
        self._batching = False
        self._tasks: set[asyncio.Task[None]] = set()

    def load_index(self) -> int:
        """Fill the index from the store (blocking; run in a thread at start-up)."""
        if self.store is None:
            return 0
        t0 = time.perf_counter()
        rows = self.store.index_rows()
        name = self.embedder.name if self.embedder else None
        for c, embedding, embedder in rows:
            if c.id in self.index.entries:  # crystallized while the store was away
                continue
            vec = None
            if embedding is not None and embedder == name and name is not None:
                vec = np.frombuffer(embedding, dtype="<f4")
                if vec.shape[0] != self.index.dim:
                    vec = None
            self.index.add(c, vec, sync=False)
        self.index.sync()
        self.loaded = True
        log.info("crystal index: %d crystal(s) loaded in %.2fs", len(rows), time.perf_counter() - t0)
        return len(rows)

    async def embed(self, text: str) -> np.ndarray | None:
        """One text's vector. Concurrent calls are batched: while one forward pass
        runs in a worker thread, the texts that arrive queue up for the next."""
        if self.embedder is None:
            return None
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append((text, fut))
        if not self._batching:
            self._batching = True
            task = asyncio.create_task(self._drain_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _drain_queue(self) -> None:
        assert self.embedder is not None
        try:
            while self._queue:
                batch, self._queue = self._queue[:32], self._queue[32:]
                try:
                    vecs = await asyncio.to_thread(self.embedder.embed, [t for t, _ in batch])
                except Exception as exc:  # hand the failure to every waiter
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                for (_, f), v in zip(batch, vecs, strict=True):
                    if not f.done():
                        f.set_result(v)
        finally:
            self._batching = False

    async def lookup(self, messages: list[dict[str, str]], domain: str,
                     owner: str | None = None) -> Hit | None:
        """The crystal that answers these messages (given an owner: one of the
        owner's own), or None: exact match first, then semantic."""
        hit = await self.lookup_exact(messages, owner)
        if hit is None and self.wants_semantic(messages, domain):
            hit = await self.lookup_semantic(messages, domain, owner)
        return hit

    async def lookup_exact(self, messages: list[dict[str, str]], owner: str | None = None) -> Hit | None:
        """The exact match (cheap: a hash and a dict)."""
        if self.settings.exact:
            ident = self.index.find_exact(exact_key(messages))
            entry = self.index.entries.get(ident or "")
            visible = entry is not None and (owner is None or entry.caller == owner)
            if ident is not None and visible and (hit := await self._confirm(ident, "exact", 1.0)):
                return hit
        return None

    def wants_semantic(self, messages: list[dict[str, str]], domain: str) -> bool:
        """Whether a semantic lookup could match (else the embedding is skipped)."""
        return (self.settings.semantic and self.embedder is not None and is_single_turn(messages)
                and self.index.has_block(domain, system_key(messages)))

    async def lookup_semantic(self, messages: list[dict[str, str]], domain: str,
                              owner: str | None = None) -> Hit | None:
        """The semantic match: the user message embedded, the block searched."""
        if not self.wants_semantic(messages, domain):
            return None
        assert self.embedder is not None
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        vec = await self.embed(prompt)
        if vec is None:
            return None
        found = self.index.search(domain, system_key(messages), vec, self.settings.semantic_threshold,
                                  signature(prompt), owner=owner)
        if found is None:
            return None
        hit = await self._confirm(found[0], "semantic", found[1])
        if hit is not None:
            hit.embedder = self.embedder.name
        return hit

    async def _confirm(self, ident: str, match: str, similarity: float) -> Hit | None:
        entry = self.index.entries.get(ident)
        if entry is None:
            return None
        served = "store"
        if self.store is not None:
            try:
                c = await asyncio.wait_for(asyncio.to_thread(self.store.get_crystal, ident),
                                           self.settings.request_timeout_s)
            except StoreUnavailable as exc:
                log.warning("crystal %s: store unreachable (%s); served from the in-memory index", ident,
                            exc.message)
                served = "index"
            except TimeoutError:
                log.warning("crystal %s: no answer from the store within %gs; served from the index",
                            ident, self.settings.request_timeout_s)
                served = "index"
            else:
                if c is None:  # forgotten through the CLI
                    self.index.remove(ident)
                    return None
        else:
            served = "index"
        return Hit(crystal_id=ident, match=match, similarity=round(similarity, 4), answer=entry.answer,
                   provider=entry.provider, model=entry.model, served_from=served)

    async def crystallize(self, *, messages: list[dict[str, str]], domain: str, answer: str, provider: str,
                          model: str, prompt_tokens: int, completion_tokens: int, raw: dict[str, Any],
                          request_id: str, caller: str | None = None) -> Crystal:
        single = is_single_turn(messages)
        prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        vec = await self.embed(prompt) if single else None
        c = Crystal(id=uuid.uuid4().hex, created_at=time.time(), exact_key=exact_key(messages), domain=domain,
                    single_turn=single, system_key=system_key(messages), prompt=prompt, messages=messages,
                    answer=answer, provider=provider, model=model, prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens, raw_response=raw,
                    embedding=vec.astype("<f4").tobytes() if vec is not None else None,
                    embedder=self.embedder.name if (self.embedder and vec is not None) else None,
                    request_id=request_id, caller=caller)
        self.index.add(c, vec)
        return c
