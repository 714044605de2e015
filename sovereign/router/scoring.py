"""Scorers: how confident is a tier in its own answer?

Neither score is a probability of being correct until it is calibrated
(`sovereign router calibrate`); the threshold compares the calibrated value
when a calibration exists for the (tier, scorer) pair, the raw value
otherwise, and every response says which (`calibrated: true/false`).

**logprob** — from the answer's own token log-probabilities:
- tokens: the generated content tokens as returned by the endpoint
  (`choices[0].logprobs.content[]` or `completion_probabilities[]`), excluding
  special tokens (`<|im_end|>`, `<eos>`, `<end_of_turn>`, `</s>`, and the
  empty-text item llama-server reports for the EOS token) and tokens that are
  only whitespace (near-certain formatting that inflates the mean of long
  answers); the prompt is never scored;
- aggregate: p_geo = exp(mean log p) (the geometric mean of the token
  probabilities, so the score is per token and does not shrink with length the
  way a sum does) and p_min = exp(min log p) (the least likely token: one
  confabulated name in a long, fluent answer drags it down where the mean would
  wash it out); raw = p_geo^(1-α) · p_min^α with α = `scoring.min_weight` (0.2);
- length: an answer cut at `max_tokens` (finish_reason "length") is multiplied
  by `scoring.truncation_penalty` (0.8); an answer with no scorable token
  scores 0.

**verify** — self-verification: a verifier tier (the same or another) is asked
`Question / Proposed answer / Is this answer correct? Answer yes or no.` for
one token, and P(yes) is read from that token's top-N alternatives: the
probability mass of the yes variants (`yes`, ` Yes`, `YES`, ...: stripped,
case-folded, trailing punctuation removed) divided by the mass of the yes and
no variants together. If neither appears among the alternatives the scorer
fails (recorded) and the attempt scores 0.

**logprob+verify** — the arithmetic mean of the two raw scores.

**accept** — no measurement: the answer is taken (cloud tiers, threshold 0).

**echo** — before any scorer: an answer that only repeats the prompt scores 0
with `reason` "echo", whatever the scorer and the calibration (a calibrated
value is never above 0 for it), so that it cannot outrank a real answer. The
answer is compared word by word, case-folded, punctuation and whitespace
ignored, after a cut at any template marker (markers.py), with each user and
system message of two words or more: it is an echo when nothing is left once the message's
occurrences and role labels (`Question:`, `User:`, ...) are taken out, or when
it is the message's beginning cut short (at least 3 words and half of it).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel

from sovereign.router.config import ScoringSettings
from sovereign.router.markers import cut_any
from sovereign.router.tiers import Alt, TierAnswer, TierClient, TierError

SPECIAL = re.compile(r"^(<\|[^|]*\|>|<(eos|bos|s|/s|pad|unk|end_of_turn|start_of_turn|eot_id|end)>)$")
_WORDS = re.compile(r"\w+")
ECHO_LABELS = {"question", "answer", "user", "assistant", "system", "model", "q", "a", "prompt", "input",
               "output", "response"}
YES = {"yes", "y"}
NO = {"no", "n"}


class ScoreError(Exception):
    pass


class Score(BaseModel):
    scorer: str
    raw: float
    calibrated: float | None = None
    features: dict[str, Any] = {}
    note: str = ""
    reason: str = ""  # "echo": the answer only repeats the prompt (its value is 0)

    @property
    def value(self) -> float:
        if self.reason == "echo":
            return 0.0
        return self.calibrated if self.calibrated is not None else self.raw


def scorable(tokens: list[Any]) -> list[Any]:
    return [t for t in tokens if t.token and t.token.strip() and not SPECIAL.match(t.token.strip())]


def logprob_score(answer: TierAnswer, settings: ScoringSettings) -> Score:
    toks = scorable(answer.tokens)
    if not toks:
        why = "no log-probabilities returned" if not answer.tokens else "no scorable tokens"
        return Score(scorer="logprob", raw=0.0, features={"n_tokens": 0}, note=why)
    lps = [t.logprob for t in toks]
    mean_lp = sum(lps) / len(lps)
    min_lp = min(lps)
    p_geo, p_min = math.exp(mean_lp), math.exp(min_lp)
    a = settings.min_weight
    raw = (p_geo ** (1 - a)) * (p_min**a)
    truncated = answer.finish_reason == "length"
    if truncated:
        raw *= settings.truncation_penalty
    return Score(scorer="logprob", raw=raw, features={
        "n_tokens": len(toks), "n_excluded": len(answer.tokens) - len(toks), "mean_logprob": round(mean_lp,
                                                                                                   5),
        "p_geo": round(p_geo, 5), "p_min": round(p_min, 5), "min_token": toks[lps.index(min_lp)].token,
        "truncated": truncated,
    })


def _variant(token: str) -> str:
    return token.strip().lower().rstrip(".!,:;")


def p_yes(alternatives: list[Alt]) -> tuple[float, dict[str, float]]:
    """P(yes) normalised over the yes/no variants among one token's alternatives."""
    yes = sum(math.exp(a.logprob) for a in alternatives if _variant(a.token) in YES)
    no = sum(math.exp(a.logprob) for a in alternatives if _variant(a.token) in NO)
    if yes + no <= 0:
        raise ScoreError("neither yes nor no among the verifier's top alternatives")
    return yes / (yes + no), {"p_yes_mass": round(yes, 5), "p_no_mass": round(no, 5),
                              "coverage": round(yes + no, 5)}


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORDS.findall(text)]


def _without(words: list[str], part: list[str]) -> tuple[list[str], int]:
    """`words` with every occurrence of the sequence `part` taken out, and how many there were."""
    out: list[str] = []
    i = found = 0
    while i < len(words):
        if words[i:i + len(part)] == part:
            i += len(part)
            found += 1
        else:
            out.append(words[i])
            i += 1
    return out, found


def echo_of(messages: list[dict[str, Any]], text: str) -> str | None:
    """The role of the message the answer only repeats, or None."""
    words = _words(cut_any(text))
    if not words:
        return None
    for m in messages:
        content = m.get("content")
        if m.get("role") not in ("user", "system") or not isinstance(content, str):
            continue
        prompt = _words(content)
        if len(prompt) < 2:  # "Hello" answered "Hello!" is a reply, not an echo
            continue
        rest, found = _without(words, prompt)
        rest = [w for w in rest if w not in ECHO_LABELS]
        if found and not rest:
            return str(m["role"])
        # the prompt's beginning, cut short (max_tokens, a stop string)
        if rest and len(rest) < len(prompt) and rest == prompt[:len(rest)] and (
                found or len(rest) >= max(3, len(prompt) / 2)):
            return str(m["role"])
    return None


def question_of(messages: list[dict[str, str]]) -> str:
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


async def verify_score(question: str, answer: str, verifier: TierClient, settings: ScoringSettings) -> Score:
    prompt = settings.verify_prompt.format(question=question, answer=answer)
    try:
        alts = await verifier.next_token_alternatives([{"role": "user", "content": prompt}],
                                                      settings.verify_top_logprobs)
        value, feats = p_yes(alts)
    except (TierError, ScoreError) as exc:
        return Score(scorer="verify", raw=0.0, features={"verifier": verifier.name},
                     note=f"verifier failed: {exc}")
    return Score(scorer="verify", raw=value, features={"verifier": verifier.name, **feats})


async def score_answer(kind: str, messages: list[dict[str, str]], answer: TierAnswer,
                       verifier: TierClient | None, settings: ScoringSettings) -> Score:
    if (role := echo_of(messages, answer.text)) is not None:
        return Score(scorer=kind, raw=0.0, reason="echo", features={"echo": role},
                     note=f"echo: the answer only repeats the {role} message")
    if kind == "accept":
        return Score(scorer="accept", raw=1.0, note="accepted by policy (no measurement)")
    if kind == "logprob":
        return logprob_score(answer, settings)
    if verifier is None:
        return Score(scorer=kind, raw=0.0, note="no verifier tier available")
    ver = await verify_score(question_of(messages), answer.text, verifier, settings)
    if kind == "verify":
        return ver
    lp = logprob_score(answer, settings)
    return Score(scorer="logprob+verify", raw=(lp.raw + ver.raw) / 2,
                 features={"logprob": lp.raw, "verify": ver.raw, **lp.features, **ver.features},
                 note="; ".join(n for n in (lp.note, ver.note) if n))
