"""Calibration: map each tier's raw score to an observed probability of being correct.

Ground truth comes from the stored attempts that carry a label:
- `cloud`: a local attempt of a request that escalated to the cloud is judged
  against the cloud's answer (`agree`, below);
- `labelled:<file>`: `sovereign router calibrate --examples FILE.jsonl` runs
  every local tier on examples with a reference answer and judges each.

Per (tier, scorer) pair with enough labels (both outcomes present), a
calibrator is fitted:
- `platt` (default): p = sigmoid(a · logit(raw) + b), fitted by Newton's method
  on the log-loss with Platt's smoothed targets; monotone, two parameters,
  sane on a few dozen labels;
- `isotonic`: pool-adjacent-violators on raw → label, applied by linear
  interpolation between block centres; needs more labels, follows any shape.

The report gives the expected calibration error (ECE, 10 equal-width bins,
|accuracy − mean confidence| weighted by bin size) of the raw score and of the
calibrated score, in-sample and by 5-fold cross-validation (the honest figure),
and the Brier score of both. A calibrator is put in force only when its
out-of-fold Brier score beats the raw score's (a proper scoring rule; the binned
ECE of a few dozen labels is too noisy to decide on); otherwise it is reported,
not applied, and the tier goes on comparing its raw score.
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

from sovereign.errors import SovereignError
from sovereign.router.scoring import score_answer
from sovereign.router.store import Attempt
from sovereign.router.tiers import TierError

if TYPE_CHECKING:
    from sovereign.router.service import Router
    from sovereign.router.store import RouterStore

Method = Literal["platt", "isotonic"]
MIN_LABELS = 8

# --------------------------------------------------------------------------- correctness


_ARTICLES = {"a", "an", "the"}


def normalise_answer(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return [w for w in text.split() if w not in _ARTICLES]


def agree(candidate: str, reference: str) -> bool:
    """Whether `candidate` says what `reference` says (a heuristic judge):
    equal after normalisation; or a short reference (≤ 5 words) found as a
    whole-word run inside the candidate; or token F1 ≥ 0.6."""
    c, r = normalise_answer(candidate), normalise_answer(reference)
    if not c or not r:
        return False
    if c == r:
        return True
    if len(r) <= 5:
        n = len(r)
        if any(c[i : i + n] == r for i in range(len(c) - n + 1)):
            return True
    common = sum(min(c.count(w), r.count(w)) for w in set(r))
    if common == 0:
        return False
    precision, recall = common / len(c), common / len(r)
    return 2 * precision * recall / (precision + recall) >= 0.6


# --------------------------------------------------------------------------- metrics


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    labels = np.asarray(labels, dtype=float)
    if probs.size == 0:
        return float("nan")
    idx = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(labels[sel].mean() - probs[sel].mean())
    return float(total / probs.size)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """P(a right answer scores above a wrong one), ties counting half: how well
    the score separates right from wrong. Calibration cannot improve it."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs, float) - np.asarray(labels, float)) ** 2))


# --------------------------------------------------------------------------- calibrators


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def fit_platt(raw: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    x = _logit(np.asarray(raw, float))
    y = np.asarray(labels, float)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(100):
        p = _sigmoid(a * x + b)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * x * x) + 1e-6, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-6]])
        step = np.linalg.solve(h, g)
        big = np.abs(step).max()
        if big > 5.0:  # damped Newton: no wild first steps on tiny or separable samples
            step = step * (5.0 / big)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return {"a": float(a), "b": float(b)}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -35.0, 35.0)))


def apply_platt(params: dict[str, float], raw: np.ndarray | float) -> np.ndarray:
    x = _logit(np.asarray(raw, float))
    return _sigmoid(params["a"] * x + params["b"])


def fit_isotonic(raw: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    order = np.argsort(raw, kind="stable")
    x, y = np.asarray(raw, float)[order], np.asarray(labels, float)[order]
    blocks: list[list[float]] = []  # [sum_y, count, sum_x]
    for xi, yi in zip(x, y, strict=True):
        blocks.append([yi, 1.0, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c, sx = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] += sx
    xs = [b[2] / b[1] for b in blocks]
    # Laplace smoothing keeps a block of 3 right answers from claiming certainty.
    # The running maximum keeps the smoothed steps monotone.
    ys = np.maximum.accumulate([(b[0] + 0.5) / (b[1] + 1.0) for b in blocks]).tolist()
    return {"x": xs, "y": ys}


def apply_isotonic(params: dict[str, list[float]], raw: np.ndarray | float) -> np.ndarray:
    return np.interp(np.asarray(raw, float), params["x"], params["y"])


FITTERS = {"platt": (fit_platt, apply_platt), "isotonic": (fit_isotonic, apply_isotonic)}


class Calibrator(BaseModel):
    tier: str
    scorer: str
    method: Method
    params: dict[str, float | list[float]]
    n: int
    positives: int
    ece_raw: float
    ece_calibrated: float
    ece_calibrated_cv: float | None
    brier_raw: float
    brier_calibrated: float
    brier_calibrated_cv: float | None = None
    kept: bool = True
    verdict: str = ""
    auroc: float | None = None
    fitted_at: float

    def apply(self, raw: float) -> float:
        _, fn = FITTERS[self.method]
        return float(np.clip(fn(self.params, raw), 0.0, 1.0))  # type: ignore[arg-type]


class Skipped(BaseModel):
    tier: str
    scorer: str
    n: int
    positives: int
    reason: str


class CalibrationReport(BaseModel):
    method: Method
    fitted: list[Calibrator]
    skipped: list[Skipped]
    path: str | None = None


def _cv_predictions(raw: np.ndarray, y: np.ndarray, method: Method, folds: int = 5) -> np.ndarray | None:
    """Out-of-fold calibrated values: each fold mapped by a calibrator fitted on the others."""
    if raw.size < 2 * folds:
        return None
    fit, app = FITTERS[method]
    rng = np.random.default_rng(0)
    idx = rng.permutation(raw.size)
    preds = np.empty(raw.size)
    for k in range(folds):
        test = idx[k::folds]
        train = np.setdiff1d(idx, test)
        if len(set(y[train].tolist())) < 2:
            preds[test] = y[train].mean()
            continue
        preds[test] = app(fit(raw[train], y[train]), raw[test])  # type: ignore[arg-type]
    return preds


def fit_one(tier: str, scorer: str, raw: list[float], labels: list[bool],
            method: Method) -> Calibrator | Skipped:
    r = np.asarray(raw, float)
    y = np.asarray(labels, float)
    pos = int(y.sum())
    if r.size < MIN_LABELS:
        return Skipped(tier=tier, scorer=scorer, n=int(r.size), positives=pos,
                       reason=f"{r.size} labelled attempts, need {MIN_LABELS}")
    if pos in (0, r.size):
        return Skipped(tier=tier, scorer=scorer, n=int(r.size), positives=pos,
                       reason="all labels are the same: nothing to fit")
    fit, app = FITTERS[method]
    params = fit(r, y)
    cal = app(params, r)  # type: ignore[arg-type]
    cv = _cv_predictions(r, y, method)
    brier_raw = brier(r, y)
    brier_cv = None if cv is None else brier(cv, y)
    # Applied only if it predicts held-out labels better than the raw score (Brier, a proper
    # scoring rule; the binned ECE of a few dozen labels is too noisy to decide on).
    separation = auroc(r, y)
    if separation is not None and separation <= 0.5:
        kept, verdict = False, ("not applied: the score does not rise with correctness "
                                f"(AUROC {separation:.2f}); use another scorer for this tier")
    elif brier_cv is not None and brier_cv >= brier_raw:
        kept, verdict = False, (f"not applied: held-out Brier {brier_cv:.3f} is no better than "
                                f"raw {brier_raw:.3f}")
    elif brier_cv is None:
        kept, verdict = True, "applied (too few labels to cross-validate)"
    else:
        kept, verdict = True, f"applied: held-out Brier {brier_cv:.3f} < raw {brier_raw:.3f}"
    return Calibrator(tier=tier, scorer=scorer, method=method, params=params, n=int(r.size), positives=pos,
                      ece_raw=ece(r, y), ece_calibrated=ece(cal, y),
                      ece_calibrated_cv=None if cv is None else ece(cv, y),
                      brier_raw=brier_raw, brier_calibrated=brier(cal, y), brier_calibrated_cv=brier_cv,
                      kept=kept, verdict=verdict, auroc=separation, fitted_at=time.time())


def fit_all(rows: list[tuple[str, str, float, bool]], method: Method = "platt") -> CalibrationReport:
    """rows: (tier, scorer, raw score, correct)."""
    groups: dict[tuple[str, str], tuple[list[float], list[bool]]] = {}
    for tier, scorer, raw, ok in rows:
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            continue
        g = groups.setdefault((tier, scorer), ([], []))
        g[0].append(float(raw))
        g[1].append(bool(ok))
    fitted, skipped = [], []
    for (tier, scorer), (raw, labels) in sorted(groups.items()):
        result = fit_one(tier, scorer, raw, labels, method)
        (fitted if isinstance(result, Calibrator) else skipped).append(result)
    return CalibrationReport(method=method, fitted=fitted, skipped=skipped)


class CalibrationSet:
    """The calibrators in force, keyed by (tier, scorer)."""

    def __init__(self, calibrators: list[Calibrator] | None = None) -> None:
        self.by_key = {(c.tier, c.scorer): c for c in calibrators or [] if c.kept}

    @classmethod
    def load(cls, path: Path) -> CalibrationSet:
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls([Calibrator.model_validate(c) for c in data.get("calibrators", [])])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"calibrators": [c.model_dump() for c in self.by_key.values()]}, indent=1))
        tmp.replace(path)

    def apply(self, tier: str, scorer: str, raw: float) -> float | None:
        c = self.by_key.get((tier, scorer))
        return c.apply(raw) if c else None

    def merge(self, report: CalibrationReport) -> None:
        """Put the report's kept calibrators in force; withdraw those that did
        not help (a calibration no better than raw is not left in force)."""
        for c in report.fitted:
            if c.kept:
                self.by_key[(c.tier, c.scorer)] = c
            else:
                self.by_key.pop((c.tier, c.scorer), None)


def calibrate(store: RouterStore, path: Path, method: Method, *, dry_run: bool = False
              ) -> tuple[CalibrationReport, int]:
    """Fit every (tier, scorer) from the store's labelled attempts and, unless
    `dry_run`, merge the result into the calibration file. Returns the report
    and the number of labelled attempts it was fitted from."""
    rows = store.labelled()
    report = fit_all(rows, method)
    if report.fitted and not dry_run:
        existing = CalibrationSet.load(path)
        existing.merge(report)
        existing.save(path)
        report.path = str(path)
    return report, len(rows)


# --------------------------------------------------------------------------- labelled examples


async def probe(router: Router, messages: list[dict[str, str]], reference: str, source: str,
                max_tokens: int | None = None) -> list[Attempt]:
    """Calibration data: every runnable local tier answers, is scored by both
    scorers, and is judged against the reference answer. Returns the labelled
    attempts (the caller stores them); nothing leaves the cluster."""
    rid = f"probe-{uuid.uuid4().hex[:24]}"
    domain = router.ladder.classifier.assess(messages).domain
    out: list[Attempt] = []
    seq = 0
    for tier in (t for t in router.settings.tiers if t.kind == "local"):
        client = router.clients[tier.name]
        if client.problem() is not None:
            continue
        seq += 1
        try:
            answer = await client.complete(messages, max_tokens=max_tokens, want_logprobs=True)
        except TierError as exc:
            out.append(Attempt(request_id=rid, seq=seq, at=time.time(), tier=tier.name, model=client.model,
                               kind="local", decision=exc.kind, reason=exc.message, domain=domain))
            continue
        ok = agree(answer.text, reference)
        # Both scorers on the same answer: the report compares what each one means.
        verifier = router.clients.get(tier.verifier or "") or client
        for kind in ("logprob", "verify"):
            score = await score_answer(kind, messages, answer, verifier, router.settings.scoring)
            out.append(Attempt(
                request_id=rid, seq=seq, at=time.time(), tier=tier.name, model=answer.model, kind="local",
                scorer=score.scorer, raw_score=score.raw, score=score.raw, threshold=tier.threshold,
                latency_ms=answer.latency_ms, prompt_tokens=answer.prompt_tokens,
                completion_tokens=answer.completion_tokens, decision="probe",
                reason=f"labelled example ({'agrees' if ok else 'disagrees'} with the reference)"
                + (f"; {score.note}" if score.note else ""),
                answer=answer.text, domain=domain, label=ok, label_source=source, features=score.features))
            seq += 1
    return out


def read_examples(path: Path) -> list[tuple[list[dict[str, str]], str]]:
    """(messages, reference answer) of each line of a JSONL file of
    `{"prompt" or "messages", "answer"}`; a bad line is named."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise SovereignError(f"{path}: {exc.strerror}") from None
    out = []
    for i, line in enumerate(lines, start=1):
        try:
            ex: Any = json.loads(line)
            messages = ex.get("messages") or [{"role": "user", "content": ex["prompt"]}]
            out.append((messages, str(ex["answer"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SovereignError(f"{path}:{i}: not an example",
                                 hint='each line: {"prompt": "...", "answer": "..."}') from None
    return out


async def probe_examples(router: Router, store: RouterStore, path: Path, max_tokens: int) -> int:
    """Every example of `path` through `probe`, the attempts stored; returns how many."""
    total = 0
    for messages, reference in read_examples(path):
        attempts = await probe(router, messages, reference, f"labelled:{path.name}", max_tokens)
        store.put_attempts(attempts)
        total += len(attempts)
    return total
