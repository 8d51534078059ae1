"""The per-tier success fit: propensity-weighted, ranks tiers correctly, calibrated."""

from __future__ import annotations

import numpy as np

from tierwise.service.classify.success import SUCCESS_FEATURES, tier_score_matrix
from tierwise.tuner.dataset import TrainingRows
from tierwise.tuner.success_fit import fit_success_models

TIERS = ["small", "medium", "frontier"]
OFFSET = np.array([-0.6, 0.6, 1.2])  # bigger tiers succeed more often at equal difficulty


def _features(rng: np.random.Generator, n: int) -> np.ndarray:
    ps = rng.dirichlet([1.0] * 4, n)
    difficulty = rng.random(n)
    rest = rng.normal(0, 1, (n, len(SUCCESS_FEATURES) - 5))
    return np.column_stack([ps, difficulty, rest])


def _p_true(x: np.ndarray, tier: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(OFFSET[tier] + 2.0 - 5.0 * x[:, 4] + 0.5 * x[:, 5])))


def _log(rng: np.random.Generator, n: int) -> TrainingRows:
    """A biased logging policy: hard tasks mostly go to frontier, easy ones to small."""
    x = _features(rng, n)
    hard = x[:, 4] > 0.5
    probs = np.where(hard[:, None], [0.1, 0.2, 0.7], [0.7, 0.2, 0.1])
    tier = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    p = probs[np.arange(n), tier]
    label = rng.random(n) < _p_true(x, tier)
    return TrainingRows(x=x, tier=np.array(TIERS, dtype=object)[tier], label=label, weight=1.0 / p,
                        attempt=np.zeros(n, dtype=np.int64))


def test_fit_ranks_tiers_and_is_calibrated() -> None:
    rng = np.random.default_rng(0)
    fit = fit_success_models(_log(rng, 30_000), TIERS, seed=0)
    assert all(t.kind == "logistic" for t in fit.tiers)
    model = fit.spec.to_model()
    x = _features(np.random.default_rng(1), 20_000)
    pred = tier_score_matrix(x, TIERS, {}, model)
    # Ranking: at equal features the bigger tier scores higher, on (almost) every row.
    assert (pred[:, 2] >= pred[:, 1]).mean() > 0.98 and (pred[:, 1] >= pred[:, 0]).mean() > 0.98
    # Calibration on fresh draws, per tier: binned predictions match observed rates.
    for j in range(3):
        truth = _p_true(x, np.full(len(x), j))
        observed = np.random.default_rng(2 + j).random(len(x)) < truth
        bins = np.digitize(pred[:, j], np.linspace(0, 1, 11)[1:-1])
        for b in np.unique(bins):
            sel = bins == b
            if sel.sum() >= 400:
                assert abs(pred[sel, j].mean() - observed[sel].mean()) < 0.05, (j, b)
        assert abs(pred[:, j].mean() - truth.mean()) < 0.02


def test_thin_tier_gets_a_smoothed_constant_model() -> None:
    rng = np.random.default_rng(0)
    rows = _log(rng, 3_000)
    keep = rows.tier != "frontier"
    keep[np.nonzero(rows.tier == "frontier")[0][:5]] = True  # five frontier rows only
    thin = TrainingRows(rows.x[keep], rows.tier[keep], rows.label[keep], rows.weight[keep], rows.attempt[keep])
    fit = fit_success_models(thin, TIERS, prior_mean={"frontier": 0.8, "small": 0.5, "medium": 0.6})
    kinds = {t.tier: t.kind for t in fit.tiers}
    assert kinds == {"small": "logistic", "medium": "logistic", "frontier": "constant"}
    assert fit.spec.coef["frontier"] == [0.0] * len(SUCCESS_FEATURES)
    p = tier_score_matrix(np.zeros((1, len(SUCCESS_FEATURES))), ["frontier"], {}, fit.spec.to_model())[0, 0]
    assert 0.5 < p < 0.95
