"""The scorers on real llama-server captures (tests/router/fixtures/SOURCES.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sovereign.router.config import ScoringSettings, TierSettings
from sovereign.router.scoring import ScoreError, logprob_score, p_yes, scorable
from sovereign.router.tiers import Alt, TierAnswer, TierClient, _tokens_from

FIX = Path(__file__).parent / "fixtures"
S = ScoringSettings()


def _chat_answer(name: str) -> TierAnswer:
    client = TierClient(TierSettings(name="t", kind="local", endpoint="http://x"), http=None)  # type: ignore[arg-type]
    return client._from_chat(json.loads((FIX / name).read_text()), 0.0)


def _completion_answer(name: str) -> TierAnswer:
    client = TierClient(TierSettings(name="t", kind="local", endpoint="http://x", api="completion"),
                        http=None)  # type: ignore[arg-type]
    return client._from_completion(json.loads((FIX / name).read_text()), 0.0)


def test_eos_and_whitespace_tokens_are_not_scored() -> None:
    ans = _chat_answer("smollm2_chat_logprobs.json")
    assert ans.text == "The answer is 4."
    tokens = [t.token for t in ans.tokens]
    assert tokens[-1] == ""  # llama-server reports <|im_end|> (id 2) with empty text
    kept = [t.token for t in scorable(ans.tokens)]
    assert kept == ["The", " answer", " is", "4", "."]  # the EOS and the lone " " are excluded


def test_logprob_score_is_the_weighted_geometric_mean_and_min() -> None:
    ans = _chat_answer("smollm2_chat_logprobs.json")
    lps = [t.logprob for t in scorable(ans.tokens)]
    p_geo, p_min = math.exp(sum(lps) / len(lps)), math.exp(min(lps))
    score = logprob_score(ans, S)
    assert score.raw == pytest.approx(p_geo**0.8 * p_min**0.2)
    assert score.features["n_tokens"] == 5 and score.features["n_excluded"] == 2
    assert score.features["min_token"] == "The"
    assert 0 < score.raw < 1


def test_truncated_answers_are_penalised() -> None:
    ans = _chat_answer("smollm2_chat_logprobs.json")
    full = logprob_score(ans, S).raw
    cut = logprob_score(ans.model_copy(update={"finish_reason": "length"}), S)
    assert cut.raw == pytest.approx(full * 0.8)
    assert cut.features["truncated"] is True


def test_length_does_not_shrink_the_score() -> None:
    ans = _chat_answer("smollm2_chat_logprobs.json")
    doubled = ans.model_copy(update={"tokens": ans.tokens[:-1] * 2 + ans.tokens[-1:]})
    assert logprob_score(doubled, S).raw == pytest.approx(logprob_score(ans, S).raw)


def test_completion_api_capture() -> None:
    ans = _completion_answer("gemma_completion_probs.json")
    assert ans.text == "Paris" and ans.finish_reason == "stop"
    score = logprob_score(ans, S)
    assert score.raw == pytest.approx(math.exp(ans.tokens[0].logprob))  # one token: mean = min


def test_no_logprobs_scores_zero_with_a_reason() -> None:
    ans = _chat_answer("smollm2_chat_logprobs.json").model_copy(update={"tokens": []})
    score = logprob_score(ans, S)
    assert score.raw == 0.0 and "no log-probabilities" in score.note


def test_p_yes_normalises_over_yes_and_no_variants() -> None:
    data = json.loads((FIX / "gemma_verify_completion.json").read_text())
    alts = _tokens_from(data["completion_probabilities"])[0].top
    value, feats = p_yes(alts)
    yes = sum(math.exp(a.logprob) for a in alts if a.token.strip().lower() == "yes")
    no = sum(math.exp(a.logprob) for a in alts if a.token.strip().lower() == "no")
    assert value == pytest.approx(yes / (yes + no))
    assert feats["coverage"] == pytest.approx(yes + no, abs=1e-4)
    # " Yes" and " yes" both count.
    assert sum(1 for a in alts if a.token.strip().lower() == "yes") >= 2  # " Yes", " yes", ... all count


def test_p_yes_on_the_chat_capture_reads_no() -> None:
    data = json.loads((FIX / "smollm2_verify_chat.json").read_text())
    alts = _tokens_from(data["choices"][0]["logprobs"]["content"])[0].top
    value, _ = p_yes(alts)
    assert value < 0.2  # SmolLM2 135M answers "No" even to a right answer: why calibration exists


def test_p_yes_without_yes_or_no_fails() -> None:
    with pytest.raises(ScoreError):
        p_yes([Alt(token="Maybe", logprob=-0.1), Alt(token="The", logprob=-2.0)])
