"""The semantic lookup's vector search (sovereign/router/vectors.py): the ANN index
(usearch) against exact search, removal, and the fallback to exact search."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from sovereign.router import vectors
from sovereign.router.constraints import signature
from sovereign.router.crystals import SemanticIndex
from sovereign.router.store import Crystal
from sovereign.router.vectors import INLINE, VectorBlock

DIM = 384
N = 6000  # above the threshold below, and more than INLINE: the graph is built in the background


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def stored() -> np.ndarray:
    return unit(np.random.default_rng(1).standard_normal((N, DIM)))


def near(stored: np.ndarray, rows: np.ndarray, scale: float = 0.3) -> np.ndarray:
    """Queries close to stored rows (each one's nearest neighbour is that row)."""
    noise = np.random.default_rng(2).standard_normal((len(rows), DIM)) * scale / np.sqrt(DIM)
    return unit(stored[rows] + noise)


def built(stored: np.ndarray, ann_min: int | None = 1000) -> VectorBlock:
    block = VectorBlock(DIM, ann_min)
    block.extend([f"v{i}" for i in range(len(stored))], stored, sync=False)
    block.sync()
    return block


def test_ann_equals_exact_above_the_threshold(stored: np.ndarray) -> None:
    pytest.importorskip("usearch")
    block = built(stored)
    assert block.uses_ann and block.ann_n == N, (block.failed, block.ann_n)
    rng = np.random.default_rng(3)
    for q in near(stored, rng.integers(0, N, 200)):  # paraphrase-like queries: a clear nearest neighbour
        ann, exact = block.search(q, 16), block.exact_search(q, 16)
        assert ann[0] == exact[0]
        assert [s for _, s in ann] == sorted((s for _, s in ann), reverse=True)
        for ident, sim in ann:  # the similarity reported is the exact one
            assert sim == pytest.approx(float(stored[int(ident[1:])] @ q), abs=1e-6)
    for q in unit(rng.standard_normal((50, DIM))):  # far from everything: both searches miss alike
        assert block.search(q, 16)[0][1] < 0.92 and block.exact_search(q, 16)[0][1] < 0.92


def test_below_the_threshold_the_search_is_exact(stored: np.ndarray) -> None:
    block = built(stored[:500])
    assert not block.uses_ann and block.ann is None
    q = near(stored, np.array([7]))[0]
    assert block.search(q, 4) == block.exact_search(q, 4)
    assert block.search(q, 4)[0][0] == "v7"


def test_vectors_added_after_the_build_are_found(stored: np.ndarray) -> None:
    pytest.importorskip("usearch")
    block = built(stored[:3000])
    for i in range(3000, 3010):
        block.add(f"v{i}", stored[i])
    assert block.uses_ann
    for i in range(3000, 3010):
        assert block.search(stored[i], 1)[0] == (f"v{i}", pytest.approx(1.0, abs=1e-5))
    assert block.ann_n == 3010


def test_a_removed_vector_is_never_returned(stored: np.ndarray) -> None:
    pytest.importorskip("usearch")
    block = built(stored[:3000])
    gone = [f"v{i}" for i in range(0, 3000, 7)]
    for ident in gone:
        block.remove(ident)
    assert len(block) == 3000 - len(gone)
    for ident in gone[:60]:
        q = stored[int(ident[1:])]
        for found in (block.search(q, 16), block.exact_search(q, 16)):
            assert ident not in {i for i, _ in found}
            assert found and found[0][1] < 0.99
    block.add("v0", stored[0])  # added again: found again
    assert block.search(stored[0], 1)[0][0] == "v0"


def test_a_large_append_builds_in_the_background_while_exact_serves(stored: np.ndarray) -> None:
    pytest.importorskip("usearch")
    block = VectorBlock(DIM, 1000)
    block.extend([f"v{i}" for i in range(N)], stored)  # sync=True: more than INLINE, so in a thread
    assert N > INLINE
    q = near(stored, np.array([42]))[0]
    assert block.search(q, 1)[0][0] == "v42"  # answered now, by whichever search is ready
    assert block._builder is not None
    block._builder.join(60)
    assert block.uses_ann and block.ann_n == N, (block.failed, block.ann_n)
    assert block.search(q, 1)[0][0] == "v42"


def test_without_the_library_the_search_is_exact(stored: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(vectors, "_usearch", False)
    monkeypatch.setattr(vectors, "_warned", set())
    block = built(stored[:2000])
    assert not block.uses_ann and block.ann is None
    q = near(stored, np.array([5]))[0]
    assert block.search(q, 3) == block.exact_search(q, 3)
    assert block.search(q, 3)[0][0] == "v5"


def test_import_failure_is_logged_once(monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    import builtins

    real_import = builtins.__import__

    def no_usearch(name: str, *a: object, **kw: object) -> object:
        if name.startswith("usearch"):
            raise ImportError("No module named 'usearch'")
        return real_import(name, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(vectors, "_usearch", None)
    monkeypatch.setattr(vectors, "_warned", set())
    monkeypatch.setattr(builtins, "__import__", no_usearch)
    with caplog.at_level(logging.WARNING, logger="sovereign.router.vectors"):
        assert vectors.ann_library() is None
        assert vectors.ann_library() is None
    assert [r.message for r in caplog.records].count(
        "ANN index unavailable (No module named 'usearch'): the semantic lookup uses exact search") == 1


class Broken:
    """An index whose search raises, as a corrupted or incompatible library would."""

    def search(self, *a: object, **kw: object) -> object:
        raise RuntimeError("index corrupted")


def test_a_failing_index_falls_back_to_exact_logged_once(stored: np.ndarray,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("usearch")
    monkeypatch.setattr(vectors, "_warned", set())
    block = built(stored[:3000])
    assert block.uses_ann
    block.ann = Broken()
    q = near(stored, np.array([9]))[0]
    with caplog.at_level(logging.WARNING, logger="sovereign.router.vectors"):
        assert block.search(q, 3) == block.exact_search(q, 3)
        assert block.search(q, 3)[0][0] == "v9"
    assert block.failed and not block.uses_ann
    assert sum("ANN index failed (RuntimeError: index corrupted)" in r.message for r in caplog.records) == 1


def crystal(i: int, prompt: str) -> Crystal:
    msgs = [{"role": "user", "content": prompt}]
    return Crystal(id=f"c{i}", created_at=time.time(), exact_key=f"k{i}", domain="general", single_turn=True,
                   system_key="", prompt=prompt, messages=msgs, answer=f"answer {i}", provider="p", model="m",
                   prompt_tokens=1, completion_tokens=1, raw_response={})


def test_semantic_index_through_the_ann_forgets_and_checks_signatures(stored: np.ndarray) -> None:
    pytest.importorskip("usearch")
    index = SemanticIndex(DIM, ann_min_vectors=1000)
    for i in range(3000):
        index.add(crystal(i, "What is this made of?" if i != 11 else "What is this made of, in French?"),
                  stored[i], sync=False)
    index.sync()
    block = index.blocks[("general", "")]
    assert block.uses_ann
    ask = "What is this made of?"
    q = near(stored, np.array([10]), 0.1)[0]
    found = index.search("general", "", q, 0.9, signature(ask))
    assert found == ("c10", pytest.approx(float(stored[10] @ q)))
    # another signature ("in French") never matches, however similar
    q11 = near(stored, np.array([11]), 0.1)[0]
    assert index.search("general", "", q11, 0.9, signature(ask)) is None
    index.remove("c10")
    assert index.search("general", "", q, 0.9, signature(ask)) is None
    assert "c10" not in {i for i, _ in block.search(q, 16)}
