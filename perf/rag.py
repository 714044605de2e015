"""The RAG store in the lab's Qdrant embedded engine at 10,000 and 100,000 chunks:
ingest throughput and search latency, each against a baseline of the same run.

What is measured, on one generated corpus per size (Markdown files of about
twenty 800-character chunks each, words drawn from a fixed vocabulary with a
topic per file, so that chunks differ and cluster by file):

- ingest: `sovereign.rag.ingest.ingest` end to end (read, SHA-256, split,
  embed, upsert into the embedded engine) in chunks per second; the baseline
  is the embedder alone over the same chunk texts, so the ratio says what the
  store adds on top of the embedding. Then a re-ingest of the unchanged corpus
  (every file skipped by its hash), in files per second.
- search: the engine's query (top 5 with their payloads, for a query vector)
  p50 and p99 over 200 queries; the baseline is an exact numpy search (one
  matrix-vector product over every stored vector, top 5) over the same
  vectors, read back from the engine, for the same query vectors. Then
  `RagStore.search` whole (the query embedded first), without a baseline.

The bulk vectors are made by the hashed character 3-gram embedder: the numpy
all-MiniLM-L6-v2 makes about ten 800-character chunks a second on two cores,
so 100,000 chunks would take hours; its own rate is measured on a sample of 64
chunks and printed beside it (when the model is in the download cache). The
embedded engine is qdrant-client's local mode, the lab's stand-in for the
Qdrant server; the server's figures are not measured here.

Usage: python perf/rag.py [--quick] [--sizes 10000,100000] [--json FILE]
       (--quick: 10,000 only)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sovereign.rag import RagSettings, RagStore  # noqa: E402
from sovereign.rag.ingest import ingest, load_text, split  # noqa: E402
from sovereign.service.embed import HashedNgramEmbedder, MiniLMEmbedder, minilm_model_dir  # noqa: E402

CHUNKS_PER_FILE = 20
QUERIES = 200
TOPICS = ["garden", "boiler", "passport", "mortgage", "bicycle", "kitchen", "roof", "car", "tax", "school",
          "dentist", "holiday", "insurance", "piano", "garage", "heating", "window", "printer", "router",
          "pension"]


def make_corpus(root: Path, chunks: int, seed: int = 7) -> list[Path]:
    """Markdown files of about CHUNKS_PER_FILE chunks each (chunking.size 800)."""
    rng = random.Random(seed)  # noqa: S311 (a corpus, not a secret)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "sa", "ti", "vu", "ze")
             for b in ("bar", "den", "fol", "gim", "hut", "jas", "kor", "lim", "mor", "nip")]
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(max(1, chunks // CHUNKS_PER_FILE)):
        topic = TOPICS[n % len(TOPICS)]
        paras = []
        for _ in range(CHUNKS_PER_FILE):
            body = " ".join(rng.choice(words) for _ in range(100))
            paras.append(f"{topic} {n}: {body[:700]}.")
        path = root / f"{topic}-{n:06d}.md"
        path.write_text("\n\n".join(paras) + "\n")
        files.append(path)
    return files


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def run_size(target: int, work: Path) -> dict[str, Any]:
    docs = work / f"docs-{target}"
    files = make_corpus(docs, target)
    settings = RagSettings(path=work / f"qdrant-{target}", collection=f"bench{target}",
                           embedding={"backend": "hashed"})
    texts = []
    for f in files:
        text = load_text(f)
        texts += [text[s:e] for s, e in split(text, settings.chunking.size, settings.chunking.overlap)]
    embedder = HashedNgramEmbedder()
    t0 = time.perf_counter()
    for start in range(0, len(texts), 64):
        embedder.embed(texts[start:start + 64])
    embed_s = time.perf_counter() - t0

    with RagStore.open(settings) as store:
        t0 = time.perf_counter()
        report = ingest(store, [docs])
        ingest_s = time.perf_counter() - t0
        assert report.chunks == len(texts) and not report.failed, report
        t0 = time.perf_counter()
        again = ingest(store, [docs])
        reingest_s = time.perf_counter() - t0
        assert again.skipped == len(files) and again.chunks == 0, again

        points = store.client.scroll(store.collection, limit=len(texts) + 1, with_vectors=True,
                                     with_payload=False)[0]
        matrix = np.array([p.vector for p in points], dtype=np.float32)
        rng = random.Random(11)  # noqa: S311
        queries = [rng.choice(texts)[:200] for _ in range(QUERIES)]
        qvecs = embedder.embed(queries)
        full, engine, exact, agree = [], [], [], 0
        for q, v in zip(queries, qvecs, strict=True):
            t0 = time.perf_counter()
            hits = store.search(q, 5)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.client.query_points(store.collection, query=v.tolist(), limit=5, with_payload=True)
            engine.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scores = matrix @ v
            top = np.argpartition(-scores, 5)[:5]
            top = top[np.argsort(-scores[top])]
            exact.append(time.perf_counter() - t0)
            agree += abs(hits[0].score - float(scores[top[0]])) < 1e-4
    return {
        "chunks": len(texts), "files": len(files),
        "ingest_chunks_per_s": len(texts) / ingest_s, "embed_only_chunks_per_s": len(texts) / embed_s,
        "reingest_files_per_s": len(files) / reingest_s,
        "search_p50_ms": pct(engine, 50), "search_p99_ms": pct(engine, 99),
        "search_with_embedding_p50_ms": pct(full, 50), "search_with_embedding_p99_ms": pct(full, 99),
        "exact_p50_ms": pct(exact, 50), "exact_p99_ms": pct(exact, 99),
        "top1_agrees_with_exact": agree / QUERIES,
    }


def minilm_rate() -> float | None:
    where = minilm_model_dir()
    if where is None:
        return None
    model = MiniLMEmbedder(where)
    text = "The boiler's pressure gauge should read between 1 and 1.5 bar when the heating is cold. " * 9
    model.embed([text[:800]] * 4)  # warm-up
    t0 = time.perf_counter()
    model.embed([text[:800]] * 64)
    return 64 / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 chunks only")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    sizes = [10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    print(f"RAG store, Qdrant embedded engine (qdrant-client local mode: the lab's stand-in for the server); "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("bulk vectors: the hashed 3-gram embedder (MiniLM is too slow for 100k chunks here; "
          "its rate below)")
    results: dict[str, Any] = {"sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            r = run_size(size, Path(tmp))
            results["sizes"].append(r)
            print(f"\n{r['chunks']} chunks in {r['files']} files")
            print(f"  ingest   {r['ingest_chunks_per_s']:8.0f} chunks/s   = "
                  f"{r['ingest_chunks_per_s'] / r['embed_only_chunks_per_s']:.2f} x the embedder alone "
                  f"({r['embed_only_chunks_per_s']:.0f} chunks/s)")
            print(f"  re-ingest {r['reingest_files_per_s']:7.0f} files/s (all unchanged, skipped by hash)")
            p50, p99 = r["search_p50_ms"] / r["exact_p50_ms"], r["search_p99_ms"] / r["exact_p99_ms"]
            print(f"  search   p50 {r['search_p50_ms']:7.2f} ms  p99 {r['search_p99_ms']:7.2f} ms   = "
                  f"{p50:.1f} x / {p99:.1f} x "
                  f"exact numpy (p50 {r['exact_p50_ms']:.2f} ms, p99 {r['exact_p99_ms']:.2f} ms); "
                  f"top-1 agrees with exact on {r['top1_agrees_with_exact']:.0%}")
            print(f"  RagStore.search, query embedded: p50 {r['search_with_embedding_p50_ms']:.2f} ms, "
                  f"p99 {r['search_with_embedding_p99_ms']:.2f} ms")
    rate = minilm_rate()
    results["minilm_chunks_per_s"] = rate
    if rate is None:
        print("\nall-MiniLM-L6-v2: not in the download cache (sovereign router fetch-models), not measured")
    else:
        hashed = results["sizes"][0]["embed_only_chunks_per_s"]
        print(f"\nall-MiniLM-L6-v2 (the production embedder): {rate:.0f} chunks/s of 800 characters = "
              f"{rate / hashed:.3f} x the hashed embedder: ingest with it is bounded by the embedding")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
