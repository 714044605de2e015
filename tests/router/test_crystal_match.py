"""A crystal serves only the question it answers, and responses carry nothing of another request.

The near-misses below embed (all-MiniLM-L6-v2) at or above the semantic
threshold: only the answer-changing signature (constraints.py) refuses them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sovereign.router.config import StoreSettings
from sovereign.router.constraints import Signature, signature
from sovereign.router.crystals import Crystallizer, Hit
from sovereign.router.ladder import EgressInfo, RouteResult

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = StoreSettings().semantic_threshold

# (stored prompt, near-miss): each embeds at or above the threshold.
NEAR_MISSES = {
    "length": ("Explain black holes concisely.", "Explain black holes in detail."),
    "length-count": (
        "Explain machine learning in one paragraph.",
        "Explain machine learning in three paragraphs.",
    ),
    "negation": ("Which planets have rings?", "Which planets have no rings?"),
    "negation-without": (
        "How do I install Python with admin rights?",
        "How do I install Python without admin rights?",
    ),
    "format": ("Explain the rules of chess.", "Explain the rules of chess with examples."),
    "clause": (
        "How do I fix a leaking tap?",
        "How do I fix a leaking tap, and then how do I stop it happening again?",
    ),
    "clause-condition": (
        "What is the weather like in London?",
        "What is the weather like in London in summer?",
    ),
    "number": ("Give me three reasons to learn Latin.", "Give me five reasons to learn Latin."),
    "tone": ("Write a formal letter of complaint.", "Write a casual letter of complaint."),
    "audience": ("Explain compound interest.", "Explain compound interest in simple terms."),
    "modifier": (
        "What is the cheapest way to travel to Paris?",
        "What is the most expensive way to travel to Paris?",
    ),
    "asks": ("When was the Eiffel Tower built?", "How was the Eiffel Tower built?"),
}
# Below the threshold with MiniLM today, refused by the signature whatever the embedder.
LANGUAGE = [
    ("What is a black hole?", "What is a black hole? Answer in French."),
    ("How do I reverse a list in Python?", "How do I reverse a list in JavaScript?"),
]
PARAPHRASES = [
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("Explain photosynthesis in one sentence.", "Explain photosynthesis in a single sentence."),
    ("What is a black hole? Answer in French.", "What is a black hole? Reply in French."),
    ("How do I bake bread without yeast?", "How can I bake bread without using yeast?"),
    ("Write a formal email asking for a day off.", "Write a formal email requesting a day off."),
    ("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
]


def _crystallizer(embedder: Any, stored: str) -> Crystallizer:
    cr = Crystallizer(StoreSettings(), None, embedder)
    asyncio.run(
        cr.crystallize(
            messages=[{"role": "user", "content": stored}],
            domain="general",
            answer="the stored answer",
            provider="cloud",
            model="m",
            prompt_tokens=1,
            completion_tokens=1,
            raw={},
            request_id="req-stored",
        )
    )
    return cr


def _lookup(cr: Crystallizer, prompt: str) -> Hit | None:
    return asyncio.run(cr.lookup([{"role": "user", "content": prompt}], "general"))


# --------------------------------------------------------------------------- the signature


def test_signature_reads_what_changes_an_answer() -> None:
    base = signature("Explain photosynthesis.")
    assert base == Signature()
    assert signature("Explain photosynthesis in one sentence.").length == "short"
    assert signature("Explain photosynthesis in one sentence.").numbers == ("1",)
    assert signature("Explain photosynthesis in detail.").length == "long"
    assert signature("Explain photosynthesis. Answer in French.").languages == {"french"}
    assert signature("Explain photosynthesis. Answer in French.").demands == 2
    assert signature("How do I sort a list in C++?").languages == {"c++"}
    assert signature("Which planets don't have rings?").negated
    assert signature("Which metals are non-magnetic?").negated
    assert signature("Give it as a table.").formats == {"table"}
    assert signature("Summarize it in bullet points as JSON.").formats == {"bullets", "json"}
    assert signature("Explain it to a child.").audience == {"child"}
    assert signature("Write a funny poem.").tone == {"funny"} and signature(
        "Write a funny poem."
    ).formats == {"poem"}
    assert signature("What is the largest planet?").extremes == {"big"}
    assert signature("Why did Rome fall?").asks == {"why"}
    assert signature("How do I make pasta if I have no stove?").clauses == ("if",)
    assert signature("Give me five reasons.").numbers == ("5",)
    assert signature("What is 2+2, or 3.5?").numbers == ("2", "2", "3.5")


def test_signature_ignores_wording_that_changes_nothing() -> None:
    assert signature("Is it safe? Answer yes or no.").negated is False
    assert signature("What does HTTP stand for?") == signature("What is HTTP short for?") == Signature()
    assert signature("Hi! What is the capital of France? Thanks.").demands == 1
    assert signature("How long does it take to boil an egg?") == Signature()  # "e.g." is not "egg"
    assert signature("No matter what, tell me the time.").negated is False
    assert signature("What happens when ice melts?") == signature("What happens if ice melts?")
    assert signature("Explain   Gravity  TO A KID.") == signature("explain gravity to a kid.")


@pytest.mark.parametrize(
    ("a", "b"), [*NEAR_MISSES.values(), *LANGUAGE], ids=[*NEAR_MISSES, "language", "language-code"]
)
def test_near_miss_signatures_differ(a: str, b: str) -> None:
    assert signature(a) != signature(b)


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_paraphrase_signatures_agree(a: str, b: str) -> None:
    assert signature(a) == signature(b)


# --------------------------------------------------------------------------- the semantic match (real MiniLM)


@pytest.mark.parametrize("kind", list(NEAR_MISSES))
def test_each_near_miss_kind_is_refused(minilm: Any, kind: str) -> None:
    stored, asked = NEAR_MISSES[kind]
    va, vb = minilm.embed([stored, asked])
    assert float(va @ vb) >= THRESHOLD  # the similarity alone would serve it
    cr = _crystallizer(minilm, stored)
    assert _lookup(cr, stored) is not None  # the crystal is there (exact)
    assert _lookup(cr, asked) is None


@pytest.mark.parametrize(("stored", "asked"), LANGUAGE)
def test_another_language_is_refused(minilm: Any, stored: str, asked: str) -> None:
    assert _lookup(_crystallizer(minilm, stored), asked) is None


@pytest.mark.parametrize(("stored", "asked"), PARAPHRASES)
def test_paraphrases_are_still_served(minilm: Any, stored: str, asked: str) -> None:
    hit = _lookup(_crystallizer(minilm, stored), asked)
    assert hit is not None and hit.match == "semantic" and hit.similarity >= THRESHOLD
    assert hit.answer == "the stored answer"


# --------------------------------------------------------------------------- what a response carries


def test_a_hit_carries_no_stored_prompt(minilm: Any) -> None:
    stored = "How do I reverse a list in Python? My name is Alice Example."
    cr = _crystallizer(minilm, stored)
    [entry] = cr.index.entries.values()
    hit = _lookup(cr, "How can I reverse a Python list? My name is Alice Example.")
    assert hit is not None and hit.match == "semantic"
    result = RouteResult(
        request_id="req-new",
        created=int(time.time()),
        text=hit.answer,
        finish_reason="stop",
        tier="crystal",
        model=hit.model,
        score=hit.similarity,
        raw_score=hit.similarity,
        scorer="crystal-semantic",
        calibrated=False,
        threshold=THRESHOLD,
        below_threshold=False,
        reason="crystallized",
        path=[],
        crystallized=hit,
        egress=EgressInfo(decision="not-needed"),
        assessment=_assessment(),
    )
    shown = result.sovereign()["crystallized"]
    assert set(shown) == {
        "crystal_id",
        "match",
        "similarity",
        "answer",
        "provider",
        "model",
        "embedder",
        "served_from",
    }
    assert (
        shown["crystal_id"] == entry.id and shown["match"] == "semantic" and shown["similarity"] >= THRESHOLD
    )
    dumped = json.dumps(result.sovereign())
    assert stored not in dumped and "Alice" not in dumped and "req-stored" not in dumped
    assert str(int(entry.created_at)) not in dumped
    assert "prompt" not in Hit.model_fields and "created_at" not in Hit.model_fields


def _assessment() -> Any:
    from sovereign.router.classify import Assessment

    return Assessment.model_validate({"cls": "A", "domain": "general", "method": "rules", "reasons": []})


# --------------------------------------------------------------------------- the labelled set


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("perf_crystals", ROOT / "perf" / "crystals.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_labelled_set_false_hits_at_most_one_percent(minilm: Any) -> None:
    bench = _bench()
    pairs = bench.load_pairs()
    assert len(pairs) >= 200
    assert {p["kind"] for p in pairs if not p["same"]} >= {
        "length",
        "language",
        "negation",
        "format",
        "clause",
        "number",
        "tone",
        "audience",
    }
    sims = bench.similarities(minilm, pairs)
    r = bench.evaluate(pairs, sims, THRESHOLD)
    assert r["false_hit_rate"] <= 0.01, [
        p for k in r["kinds"].values() if not k["same"] for p in k["served_pairs"]
    ]
    # The signature costs few paraphrases: most that the similarity alone serves are still served.
    alone = bench.evaluate(pairs, sims, THRESHOLD, use_signature=False)
    assert r["paraphrase_hits"] >= alone["paraphrase_hits"] - 3 and r["paraphrase_hit_rate"] >= 0.7
    assert alone["false_hit_rate"] > 0.1  # what the threshold alone let through
