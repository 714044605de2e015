from __future__ import annotations

import itertools

import numpy as np
import pytest

from sovereign.router.calibrate import (
    CalibrationSet,
    agree,
    apply_platt,
    ece,
    fit_all,
    fit_isotonic,
    fit_one,
    fit_platt,
)


@pytest.mark.parametrize(("candidate", "reference", "expected"), [
    ("Paris.", "Paris", True),
    ("The capital of France is Paris.", "Paris", True),
    ("the answer is 4", "4", True),
    ("Berlin", "Paris", False),
    ("", "Paris", False),
    ("It is Lyon, not Paris's suburb", "Marseille", False),
    ("A spider has eight legs.", "Eight legs", True),
    ("The speed of light in a vacuum is about 300000 km/s", "light in a vacuum moves at about 300000 km/s",
     True),
    # A lexical judge: no stemming, no number words. Its limits are in docs/router.md.
    ("Spiders have 8 legs", "eight legs", False),
])
def test_agree(candidate: str, reference: str, expected: bool) -> None:
    assert agree(candidate, reference) is expected


def test_ece_by_hand() -> None:
    # Two bins: [0.9, 0.9] with 1 of 2 right (|0.5-0.9| = 0.4), [0.1] right (|1-0.1| = 0.9).
    assert ece(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 1])) == pytest.approx((2 * 0.4 + 0.9) / 3)
    assert ece(np.array([1.0, 0.0]), np.array([1, 0])) == 0.0


def _overconfident(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores that claim ~0.9 where the truth is 0.3..0.7."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.2, 0.8, n)
    raw = np.clip(0.6 + 0.4 * true_p + rng.normal(0, 0.02, n), 0.01, 0.99)
    return raw, (rng.uniform(size=n) < true_p).astype(float)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_reduces_ece_out_of_sample(method: str) -> None:
    raw, y = _overconfident()
    c = fit_one("system-1", "logprob", raw.tolist(), y.astype(bool).tolist(),
                method)  # type: ignore[arg-type]
    assert c.ece_raw > 0.25
    assert c.ece_calibrated < 0.04
    assert c.ece_calibrated_cv is not None and c.ece_calibrated_cv < 0.05
    assert c.brier_calibrated < c.brier_raw
    # Monotone: a higher raw score never maps to a lower probability.
    grid = np.linspace(0.01, 0.99, 50)
    mapped = [c.apply(g) for g in grid]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(mapped))


def test_platt_recovers_a_known_logistic() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.02, 0.98, 5000)
    z = np.log(raw / (1 - raw))
    y = (rng.uniform(size=raw.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(float)
    p = fit_platt(raw, y)
    assert p["a"] == pytest.approx(0.5, abs=0.1) and p["b"] == pytest.approx(-1.0, abs=0.15)
    assert float(apply_platt(p, 0.5)) == pytest.approx(1 / (1 + np.exp(1.0)), abs=0.05)


def test_auroc() -> None:
    from sovereign.router.calibrate import auroc

    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    assert auroc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    assert auroc(np.array([0.3]), np.array([1])) is None


def test_isotonic_is_smoothed() -> None:
    params = fit_isotonic(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert max(params["y"]) < 1.0 and min(params["y"]) > 0.0


def test_fit_all_skips_what_it_cannot_fit(tmp_path) -> None:
    raw, y = _overconfident(60)
    rows = [("system-1", "logprob", float(r), bool(v)) for r, v in zip(raw, y, strict=True)]
    rows += [("system-2", "verify", 0.5, True)] * 3
    rows += [("system-3", "logprob", 0.9, True)] * 20
    report = fit_all(rows)
    assert [c.tier for c in report.fitted] == ["system-1"]
    reasons = {s.tier: s.reason for s in report.skipped}
    assert "need 8" in reasons["system-2"] and "all labels are the same" in reasons["system-3"]
    cal = CalibrationSet(report.fitted)
    cal.save(tmp_path / "c.json")
    loaded = CalibrationSet.load(tmp_path / "c.json")
    assert loaded.apply("system-1", "logprob", 0.9) == pytest.approx(cal.apply("system-1", "logprob", 0.9))
    assert loaded.apply("system-1", "verify", 0.9) is None
    assert CalibrationSet.load(tmp_path / "missing.json").by_key == {}


def test_a_score_that_does_not_track_correctness_is_not_applied() -> None:
    raw, y = _overconfident(400)
    inverted = fit_one("system-1", "verify", (1 - raw).tolist(), y.astype(bool).tolist(), "platt")
    assert inverted.kept is False and "does not rise with correctness" in inverted.verdict
    assert CalibrationSet([inverted]).apply("system-1", "verify", 0.5) is None
    noise = np.random.default_rng(5).uniform(size=400)
    flat = fit_one("system-1", "logprob", noise.tolist(), y.astype(bool).tolist(), "platt")
    if flat.kept:  # chance may give it a sliver of AUROC; then it must at least beat the raw Brier
        assert flat.brier_calibrated_cv is not None and flat.brier_calibrated_cv < flat.brier_raw
    else:
        assert "not applied" in flat.verdict
