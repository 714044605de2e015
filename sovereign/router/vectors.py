"""Vector search of the semantic crystal lookup: exact, and an ANN index above a size.

A `VectorBlock` holds the unit-norm float32 vectors of one block of crystals
(one domain and one system prompt) and answers "the `top` most similar
vectors to this one, most similar first, with their cosine similarity":

- **exact** (numpy): one matrix-vector product over every vector of the
  block. Below `store.ann_min_vectors` vectors this is the search, and it stays
  the fallback (the ANN library missing, or failing: logged once) and the
  reference the ANN index is measured against (perf/vectors.py);
- **ANN** (usearch's HNSW graph, chosen by measurement over hnswlib and
  faiss-cpu): at or above `store.ann_min_vectors` vectors. The graph is built
  once the block reaches that size (in a background thread when there is more
  than a little to insert: exact search serves meanwhile), then kept up to date
  vector by vector. The candidates it proposes are re-scored against the stored
  float32 vectors, so a similarity is always the exact one: the index only
  chooses which vectors are compared.

Removal: a removed vector's slot is marked dead (never returned by either
search) and removed from the graph. Appends must be serialised by the caller
(SemanticIndex holds its lock); the graph has its own lock, which a search only
tries: while a build holds it, the search is exact.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

INLINE = 1024  # vectors inserted into the graph in the calling thread; more go to a background build

_usearch: Any = None
_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def ann_library() -> Any:
    """usearch.index, or None when it is not installed (logged once)."""
    global _usearch
    if _usearch is None:
        try:
            import usearch.index as module
        except ImportError as exc:
            _warn_once("import", "ANN index unavailable (%s): the semantic lookup uses exact search", exc)
            _usearch = False
        else:
            _usearch = module
    return _usearch or None


def ann_available() -> bool:
    return ann_library() is not None


@dataclass(frozen=True)
class AnnParams:
    """HNSW parameters, chosen by measurement (perf/vectors.py: recall@1 >= 0.99 at 1M)."""

    connectivity: int = 32
    expansion_add: int = 128
    expansion_search: int = 256
    dtype: str = "i8"  # the graph's copy of the vectors; re-scoring uses the float32 originals


class VectorBlock:
    """The vectors of one block: exact search, and an ANN index from `ann_min_vectors` on
    (None: never)."""

    def __init__(self, dim: int, ann_min_vectors: int | None, params: AnnParams = AnnParams()) -> None:
        self.dim = dim
        self.ann_min = ann_min_vectors
        self.params = params
        self.vecs = np.zeros((16, dim), dtype=np.float32)
        self.ids: list[str | None] = []
        self.slot: dict[str, int] = {}
        self.n = 0  # slots used, dead ones included
        self.dead: set[int] = set()
        self.ann: Any = None
        self.ann_n = 0  # slots [0, ann_n) are in the graph (the live ones)
        self.failed = False
        self._dead_pending: list[int] = []
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.slot)

    @property
    def uses_ann(self) -> bool:
        """Whether searches go through the graph (else they are exact)."""
        return (self.ann is not None and not self.failed and self.ann_min is not None
                and len(self) >= self.ann_min)

    # ---------------------------------------------------------------- writes
    def _grow(self, need: int) -> None:
        if need > len(self.vecs):
            size = len(self.vecs)
            while size < need:
                size *= 2
            grown = np.zeros((size, self.dim), dtype=np.float32)
            grown[: self.n] = self.vecs[: self.n]
            self.vecs = grown

    def extend(self, idents: list[str], vecs: np.ndarray, sync: bool = True) -> None:
        """Append vectors (an ident already present is replaced). Then, with `sync`,
        bring the graph up to date (in the background when there is much to insert)."""
        for ident in idents:
            if ident in self.slot:
                self.remove(ident)
        lo = self.n
        self._grow(lo + len(idents))
        self.vecs[lo: lo + len(idents)] = vecs
        self.ids.extend(idents)
        for i, ident in enumerate(idents):
            self.slot[ident] = lo + i
        self.n = lo + len(idents)
        if sync:
            self.sync(wait=False)

    def add(self, ident: str, vec: np.ndarray, sync: bool = True) -> None:
        self.extend([ident], vec[None, :], sync=sync)

    def remove(self, ident: str) -> None:
        slot = self.slot.pop(ident, None)
        if slot is None:
            return
        self.ids[slot] = None
        self.dead.add(slot)
        self._dead_pending.append(slot)

    def _eligible(self) -> bool:
        return (self.ann_min is not None and not self.failed and len(self) >= self.ann_min
                and ann_available())

    def sync(self, wait: bool = True) -> None:
        """Bring the graph up to date with the block: build it at the threshold,
        insert new vectors, drop removed ones. `wait=False`: without blocking, and
        with more than INLINE vectors to insert, in a background thread."""
        if not (self._eligible() or self.ann is not None):
            return
        if not wait and self.n - self.ann_n > INLINE:
            self._build_in_background()
            return
        if not self._lock.acquire(blocking=wait):
            return  # a build is running; it takes these vectors in
        try:
            self._catch_up()
        finally:
            self._lock.release()

    def _build_in_background(self) -> None:
        if self._builder is not None and self._builder.is_alive():
            return
        self._builder = threading.Thread(target=self.sync, name="ann-build", daemon=True)
        self._builder.start()

    def _catch_up(self) -> None:
        """Under the graph's lock."""
        try:
            if self.ann is None:
                lib = ann_library()
                if lib is None or self.failed:
                    return
                p = self.params
                self.ann = lib.Index(ndim=self.dim, metric="ip", dtype=p.dtype, connectivity=p.connectivity,
                                     expansion_add=p.expansion_add, expansion_search=p.expansion_search)
            while self.ann_n < self.n:
                lo, hi = self.ann_n, self.n
                live = np.array([self.ids[s] is not None for s in range(lo, hi)], dtype=bool)
                keys = np.arange(lo, hi, dtype=np.uint64)[live]
                if len(keys):
                    self.ann.add(keys, self.vecs[lo:hi][live], threads=1 if hi - lo <= INLINE else 0)
                self.ann_n = hi
            while self._dead_pending:
                slot = self._dead_pending.pop()
                if slot < self.ann_n:
                    self.ann.remove(slot)
        except Exception as exc:  # a broken index must not stop the lookup
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        _warn_once(f"fail-{type(exc).__name__}", "ANN index failed (%s: %s): exact search from now on",
                   type(exc).__name__, exc)
        self.failed = True
        self.ann = None

    # ---------------------------------------------------------------- search
    def search(self, vec: np.ndarray, top: int = 16) -> list[tuple[str, float]]:
        """Up to `top` (ident, similarity) of the most similar live vectors, most similar first."""
        if self.uses_ann and self._lock.acquire(blocking=False):
            try:
                if self.n - self.ann_n <= INLINE:
                    self._catch_up()
                    if self.ann is not None:
                        keys = self.ann.search(vec, top + len(self._dead_pending), threads=1).keys
                        return self._rescore(np.asarray(keys, dtype=np.int64), vec, top)
                else:
                    self._build_in_background()
            except Exception as exc:
                self._fail(exc)
            finally:
                self._lock.release()
        return self.exact_search(vec, top)

    def _rescore(self, slots: np.ndarray, vec: np.ndarray, top: int) -> list[tuple[str, float]]:
        slots = np.array([s for s in slots if s < self.n and self.ids[s] is not None], dtype=np.int64)
        if len(slots) == 0:
            return []
        sims = self.vecs[slots] @ vec
        order = np.argsort(-sims, kind="stable")[:top]
        return [(self.ids[int(slots[i])], float(sims[i])) for i in order]  # type: ignore[misc]

    def exact_search(self, vec: np.ndarray, top: int = 16) -> list[tuple[str, float]]:
        """Every live vector compared: the fallback and the reference."""
        n = self.n  # read before vecs: a concurrent append swaps vecs before it raises n
        vecs, ids = self.vecs, self.ids
        if n == 0:
            return []
        sims = vecs[:n] @ vec
        if self.dead:
            sims[np.fromiter(self.dead, dtype=np.int64)] = -np.inf
        k = min(top, n)
        best = np.argpartition(-sims, k - 1)[:k]
        best = best[np.argsort(-sims[best], kind="stable")]
        return [(ids[i], float(sims[i])) for i in best if ids[i] is not None]  # type: ignore[misc]
