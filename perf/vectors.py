"""The semantic crystal search at 100,000 and 1,000,000 stored answers: exact vs ANN.

What is measured, in one run and on the same vectors (384 dimensions,
all-MiniLM-L6-v2's): a semantic miss and a semantic hit through
`VectorBlock.search` (sovereign/router/vectors.py), the serving path's search,
once exact (numpy, every stored vector) and once through the approximate
nearest-neighbour index (usearch HNSW); p50 and p99 latency, the time to build
the index, its memory (the process's resident size before and after), and the
recall@1 of the ANN search against exact search on the query set (the same
best crystal, or one exactly as similar).

The vectors are realistic, not random: random uniform vectors are the worst
case of any ANN index and look nothing like crystals. The queries and the
seeds are real all-MiniLM-L6-v2 embeddings of the repository's labelled
prompts (perf/data/crystal_pairs.jsonl, perf/data/privacy.jsonl): the stored
set holds the embeddings of the pairs' first prompts, and around them and the
privacy prompts (the even ones) synthetic vectors, each a random blend of two
seeds plus Gaussian noise of random size, normalised, so that the store is
clustered the way a crystal store is (many answers near a few topics). The
queries are the pairs' second prompts (paraphrases, which hit, and
near-misses) and the odd privacy prompts (not stored: misses). A query is a
hit when the exact search finds a vector at or above `store.semantic_threshold`.

Usage: python perf/vectors.py [--quick] [--sizes 100000,1000000] [--json FILE]
       (--quick: 100,000 only)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sovereign import downloads  # noqa: E402
from sovereign.router.config import StoreSettings  # noqa: E402
from sovereign.router.vectors import VectorBlock, ann_available  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
DIM = 384
BLEND = (4.0, 1.0, 1.0)  # Dirichlet weights of the three seeds a synthetic vector blends
NOISE = (0.1, 0.5)  # the size of its Gaussian noise, relative to the blend


def labelled_prompts() -> tuple[list[str], list[str], list[str]]:
    """(stored first prompts, paraphrase/near-miss second prompts, privacy prompts)."""
    pairs = [json.loads(x) for x in (DATA / "crystal_pairs.jsonl").read_text().splitlines() if x.strip()]
    privacy = [json.loads(x) for x in (DATA / "privacy.jsonl").read_text().splitlines() if x.strip()]
    firsts = list(dict.fromkeys(p["a"] for p in pairs))
    seconds = list(dict.fromkeys(p["b"] for p in pairs if p["b"] not in firsts))
    private = list(dict.fromkeys(m["content"] for p in privacy for m in p["messages"] if m["role"] == "user"))
    return firsts, seconds, private


def embed_prompts() -> tuple[np.ndarray, np.ndarray]:
    """(seeds, queries): real all-MiniLM-L6-v2 embeddings."""
    from sovereign.service.embed import MiniLMEmbedder

    embedder = MiniLMEmbedder(downloads.fetch(downloads.MINILM).parent)
    firsts, seconds, private = labelled_prompts()
    vecs = embedder.embed(firsts + seconds + private)
    a, b = len(firsts), len(firsts) + len(seconds)
    seeds = np.concatenate([vecs[:a], vecs[b:][0::2]])
    queries = np.concatenate([vecs[a:b], vecs[b:][1::2]])
    return seeds.astype(np.float32), queries.astype(np.float32)


def clustered(seeds: np.ndarray, n: int, rng: np.random.Generator, first: np.ndarray | None = None,
              chunk: int = 100_000) -> np.ndarray:
    """n unit vectors: `first` (real embeddings) and then blends of two seeds plus noise."""
    out = np.empty((n, seeds.shape[1]), dtype=np.float32)
    start = 0
    if first is not None:
        out[: len(first)] = first
        start = len(first)
    for lo in range(start, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        w = rng.dirichlet(BLEND, m).astype(np.float32)
        idx = rng.integers(0, len(seeds), (m, len(BLEND)))
        v = np.einsum("mk,mkd->md", w, seeds[idx])
        noise = rng.standard_normal((m, seeds.shape[1]), dtype=np.float32)
        noise *= (rng.uniform(*NOISE, (m, 1)) / np.sqrt(seeds.shape[1])).astype(np.float32)
        v += noise
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[lo:hi] = v
    return out


def realistic_set(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """(stored, queries, how many of the stored are real embeddings)."""
    seeds, queries = embed_prompts()
    firsts = seeds[: len(labelled_prompts()[0])]
    return clustered(seeds, n, rng, first=firsts), queries, len(firsts)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1000.0, q)), 3)


Found = list[list[tuple[str, float]]]


def timed(block: VectorBlock, queries: np.ndarray, top: int) -> tuple[list[float], Found]:
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(block.search(q, top))
        lat.append(time.perf_counter() - t)
    return lat, found


def measure(n: int, seeds: np.ndarray, queries: np.ndarray, n_real: int, settings: StoreSettings,
            rng: np.random.Generator) -> dict[str, Any]:
    stored = clustered(seeds, n, rng, first=seeds[:n_real])
    rss0 = rss_mb()
    exact = VectorBlock(DIM, ann_min_vectors=None)
    t = time.perf_counter()
    exact.extend([str(i) for i in range(n)], stored)
    exact_build = time.perf_counter() - t
    rss1 = rss_mb()
    ann = VectorBlock(DIM, ann_min_vectors=settings.ann_min_vectors)
    t = time.perf_counter()
    ann.extend([str(i) for i in range(n)], stored)
    ann.sync()
    ann_build = time.perf_counter() - t
    rss2 = rss_mb()
    assert ann.uses_ann, "the ANN index was not used"
    del stored
    gc.collect()
    top = 16
    e_lat, e_found = timed(exact, queries, top)
    a_lat, a_found = timed(ann, queries, top)
    threshold = settings.semantic_threshold
    hit = [bool(f) and f[0][1] >= threshold for f in e_found]
    agree = sum(1 for e, a in zip(e_found, a_found, strict=True)
                if a and (a[0][0] == e[0][0] or abs(a[0][1] - e[0][1]) < 1e-6))

    def split(lat: list[float], want: bool) -> dict[str, float]:
        sel = [x for x, h in zip(lat, hit, strict=True) if h == want]
        return {"n": len(sel), "p50_ms": pct(sel, 50), "p99_ms": pct(sel, 99)} if sel else {"n": 0}

    return {
        "n": n, "queries": len(queries), "hits": sum(hit),
        "exact": {"build_s": round(exact_build, 2), "memory_mb": round(rss1 - rss0),
                  "miss": split(e_lat, False), "hit": split(e_lat, True)},
        "ann": {"build_s": round(ann_build, 2), "memory_mb": round(rss2 - rss1),
                "miss": split(a_lat, False), "hit": split(a_lat, True),
                "recall_at_1": round(agree / len(queries), 4)},
        "hit_answers_equal": all(
            (a[0][0] if a else None) == e[0][0] for a, e, h in zip(a_found, e_found, hit, strict=True) if h),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 stored vectors only")
    ap.add_argument("--sizes", default=None, help="comma-separated store sizes (default 100000,1000000)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if not ann_available():
        raise SystemExit("the ANN library (usearch) is not installed: pip install usearch")
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else (
        [100_000] if args.quick else [100_000, 1_000_000])
    settings = StoreSettings()
    rng = np.random.default_rng(0)
    seeds, queries = embed_prompts()
    n_real = len(labelled_prompts()[0])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results: dict[str, Any] = {"machine": machine, "ann_min_vectors": settings.ann_min_vectors, "runs": []}
    print(f"machine: {machine}; {len(queries)} queries (real embeddings); "
          f"threshold {settings.semantic_threshold}")
    for n in sizes:
        r = measure(n, seeds, queries, n_real, settings, rng)
        results["runs"].append(r)
        print(f"\n{n:,} stored vectors, {r['hits']} of {r['queries']} queries hit "
              f"(ANN recall@1 vs exact {r['ann']['recall_at_1']}; hits answered alike: "
              f"{r['hit_answers_equal']})")
        print(f"  {'':6} {'build s':>8} {'mem MB':>7} {'miss p50':>9} {'miss p99':>9} {'hit p50':>8} "
              f"{'hit p99':>8}   (ms)")
        for name in ("exact", "ann"):
            x = r[name]
            print(f"  {name:6} {x['build_s']:>8} {x['memory_mb']:>7} {x['miss'].get('p50_ms', '-'):>9} "
                  f"{x['miss'].get('p99_ms', '-'):>9} {x['hit'].get('p50_ms', '-'):>8} "
                  f"{x['hit'].get('p99_ms', '-'):>8}")
        e, a = r["exact"]["miss"], r["ann"]["miss"]
        if e.get("n") and a.get("n"):
            print(f"  ANN / exact, miss p50 {a['p50_ms'] / e['p50_ms']:.3f}, "
                  f"p99 {a['p99_ms'] / e['p99_ms']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
