"""False hits of the semantic crystal match, on a labelled set of prompt pairs.

perf/data/crystal_pairs.jsonl holds pairs of prompts written by hand, each
`{"a", "b", "same", "kind"}`: `same` pairs are paraphrases (one answer serves
both); the others are near-misses that ask for another answer: another length,
language, negation, format, added clause, number, tone, audience, direction
(largest/smallest), question (when/why) or topic. For each pair, `b` would be
served `a`'s crystal when the cosine similarity of their all-MiniLM-L6-v2
embeddings is at or above the threshold and their answer-changing signatures
(sovereign/router/constraints.py) are equal, the rule of the serving path.

Printed, per kind and in all: pairs, served, and the rate (false hits for
near-misses, hits for paraphrases), at the threshold in force
(`store.semantic_threshold`, 0.92) and, for comparison, with the similarity
alone and at other thresholds. Exit status 1 when false hits exceed 1%.

Usage: python perf/crystals.py [--threshold T] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sovereign.router.config import StoreSettings  # noqa: E402
from sovereign.router.constraints import signature  # noqa: E402

PAIRS = Path(__file__).resolve().parent / "data" / "crystal_pairs.jsonl"
MAX_FALSE_HITS = 0.01


def load_pairs(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def similarities(embedder: Any, pairs: list[dict[str, Any]]) -> np.ndarray:
    va = embedder.embed([p["a"] for p in pairs])
    vb = embedder.embed([p["b"] for p in pairs])
    return np.einsum("ij,ij->i", va, vb)


def evaluate(
    pairs: list[dict[str, Any]], sims: np.ndarray, threshold: float, use_signature: bool = True
) -> dict[str, Any]:
    """Served pairs per kind, and the false-hit and paraphrase hit rates."""
    kinds: dict[str, dict[str, Any]] = defaultdict(lambda: {"pairs": 0, "served": 0, "served_pairs": []})
    for p, s in zip(pairs, sims, strict=True):
        served = bool(s >= threshold) and (not use_signature or signature(p["a"]) == signature(p["b"]))
        k = kinds[p["kind"]]
        k["pairs"] += 1
        k["same"] = p["same"]
        if served:
            k["served"] += 1
            if not p["same"]:
                k["served_pairs"].append({"a": p["a"], "b": p["b"], "similarity": round(float(s), 4)})
        elif p["same"]:
            k["served_pairs"].append(
                {"a": p["a"], "b": p["b"], "similarity": round(float(s), 4), "refused": True}
            )
    near = [k for k in kinds.values() if not k["same"]]
    same = [k for k in kinds.values() if k["same"]]
    n_near, n_same = sum(k["pairs"] for k in near), sum(k["pairs"] for k in same)
    return {
        "threshold": threshold,
        "signature": use_signature,
        "kinds": dict(kinds),
        "near_misses": n_near,
        "false_hits": sum(k["served"] for k in near),
        "false_hit_rate": sum(k["served"] for k in near) / n_near if n_near else 0.0,
        "paraphrases": n_same,
        "paraphrase_hits": sum(k["served"] for k in same),
        "paraphrase_hit_rate": sum(k["served"] for k in same) / n_same if n_same else 0.0,
    }


def report(r: dict[str, Any]) -> None:
    rule = "similarity and signature" if r["signature"] else "similarity alone"
    print(f"\nthreshold {r['threshold']:.2f}, {rule}")
    print(f"  {'kind':<12} {'pairs':>5} {'served':>6} {'rate':>7}")
    for name, k in sorted(r["kinds"].items(), key=lambda kv: (not kv[1]["same"], kv[0])):
        print(f"  {name:<12} {k['pairs']:>5} {k['served']:>6} {k['served'] / k['pairs']:>7.1%}")
    print(
        f"  false hits {r['false_hits']}/{r['near_misses']} = {r['false_hit_rate']:.1%}; "
        f"paraphrases served {r['paraphrase_hits']}/{r['paraphrases']} = {r['paraphrase_hit_rate']:.1%}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--threshold", type=float, default=StoreSettings().semantic_threshold)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from sovereign.service.embed import MiniLMEmbedder, minilm_model_dir

    model_dir = minilm_model_dir(None)
    if model_dir is None:
        print("all-MiniLM-L6-v2 not found: run `sovereign router fetch-models`", file=sys.stderr)
        return 2
    pairs = load_pairs()
    sims = similarities(MiniLMEmbedder(model_dir), pairs)
    print(f"{len(pairs)} pairs from {PAIRS.relative_to(ROOT)}, embedder all-MiniLM-L6-v2")
    chosen = evaluate(pairs, sims, args.threshold)
    for t in (0.85, 0.92):
        if t != args.threshold:
            report(evaluate(pairs, sims, t))
    report(evaluate(pairs, sims, args.threshold, use_signature=False))
    report(chosen)
    print("\nnear-misses served at the chosen threshold:" if chosen["false_hits"] else "")
    for k in chosen["kinds"].values():
        for p in k["served_pairs"]:
            if not p.get("refused"):
                print(f"  {p['similarity']:.3f}  {p['a']!r} ~ {p['b']!r}")
    if args.json:
        args.json.write_text(json.dumps(chosen, indent=2))
    ok = chosen["false_hit_rate"] <= MAX_FALSE_HITS
    print(
        f"\nfalse hits {chosen['false_hit_rate']:.1%} {'≤' if ok else '>'} {MAX_FALSE_HITS:.0%} "
        f"at threshold {args.threshold:.2f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
