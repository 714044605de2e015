"""The numpy all-MiniLM-L6-v2 against the reference implementation's golden output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sovereign.service.embed import HashedNgramEmbedder, minilm_model_dir

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "minilm_golden.json").read_text())


def test_wordpiece_matches_the_reference_tokenizer(minilm) -> None:
    for text, ids in zip(GOLDEN["texts"], GOLDEN["token_ids"], strict=True):
        assert minilm.token_ids(text) == ids, text


def test_vectors_match_sentence_transformers(minilm) -> None:
    ours = minilm.embed(GOLDEN["texts"])
    ref = np.array(GOLDEN["embeddings"], dtype=np.float32)
    assert ours.shape == ref.shape == (len(GOLDEN["texts"]), 384)
    # The golden values are rounded to 6 decimals; the forward pass agrees to ~1e-6.
    assert np.abs(ours - ref).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_paraphrase_is_closer_than_a_different_question(minilm) -> None:
    v = minilm.embed(["What is the capital of France?", "Which city is France's capital?",
                      "What is the capital of Germany?"])
    assert float(v[0] @ v[1]) > 0.9 > float(v[0] @ v[2])


def test_model_dir_is_found_in_the_download_cache(minilm_dir: Path) -> None:
    assert minilm_model_dir() == minilm_dir
    assert minilm_model_dir(minilm_dir) == minilm_dir


def test_hashed_fallback_is_lexical_and_unit_norm() -> None:
    e = HashedNgramEmbedder()
    v = e.embed(["What is the capital of France?", "what is the capital of france", "Bake bread at home"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert float(v[0] @ v[1]) > 0.9
    assert float(v[0] @ v[2]) < 0.5
