"""Per-tier calibrated success models P(resolved | features, tier), fitted with scikit-learn.

The logs over-represent the tiers the logging policy liked for each kind of task, so every
(decision, tier tried) row is weighted by the inverse of its logged propensity. Each tier gets a
logistic regression on standardised ``SUCCESS_FEATURES``, fitted on two thirds of its rows and
Platt-recalibrated on the other third; because a Platt map is affine in the logit, the calibrated
model is still one logistic model: exported as plain numbers (``SuccessModelSpec``), no pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from tierwise.service.classify.success import SUCCESS_FEATURES
from tierwise.service.policy.model import SuccessModelSpec
from tierwise.tuner.dataset import TrainingRows

MIN_ROWS = 30  # per tier, with both outcomes present; below it the tier gets a constant model
PRIOR_STRENGTH = 20.0  # pseudo-rows of the prior mean used to smooth a constant model


@dataclass(frozen=True)
class TierFit:
    tier: str
    rows: int
    positives: int
    kind: str  # "logistic" or "constant"
    platt_a: float
    platt_b: float


@dataclass(frozen=True)
class SuccessFit:
    spec: SuccessModelSpec
    tiers: list[TierFit]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.spec.model_dump(mode="json"),
                "tiers": [t.__dict__ for t in self.tiers]}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _fit_lr(z: NDArray[np.float64], y: NDArray[np.bool_], w: NDArray[np.float64], c: float) -> LogisticRegression:
    lr = LogisticRegression(C=c, max_iter=300)
    lr.fit(z, y.astype(np.int64), sample_weight=w)
    return lr


def fit_success_models(rows: TrainingRows, tiers: Sequence[str], *, prior_mean: Mapping[str, float] | None = None,
                       seed: int = 0, max_rows: int = 200_000, c: float = 1.0) -> SuccessFit:
    """Fit one calibrated logistic model per tier; ``prior_mean`` smooths tiers with thin data."""
    rng = np.random.default_rng(seed)
    x = rows.x
    n_feat = len(SUCCESS_FEATURES)
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(n_feat)
    std = x.std(axis=0) if x.shape[0] else np.ones(n_feat)
    scale = np.where(std > 1e-9, std, 1.0)
    coef: dict[str, list[float]] = {}
    intercept: dict[str, float] = {}
    report: list[TierFit] = []
    for tier in tiers:
        sel = np.nonzero(rows.tier == tier)[0]
        if sel.shape[0] > max_rows:
            sel = np.sort(rng.choice(sel, size=max_rows, replace=False))
        y = rows.label[sel]
        w = rows.weight[sel]
        w = w / w.mean() if w.shape[0] else w
        pos = int(y.sum())
        if sel.shape[0] < MIN_ROWS or pos < 5 or sel.shape[0] - pos < 5:
            prior = (prior_mean or {}).get(tier, 0.5)
            rate = (float(w @ y) + PRIOR_STRENGTH * prior) / (float(w.sum()) + PRIOR_STRENGTH)
            coef[tier] = [0.0] * n_feat
            intercept[tier] = _logit(rate)
            report.append(TierFit(tier, int(sel.shape[0]), pos, "constant", 1.0, 0.0))
            continue
        z = (x[sel] - mean) / scale
        # Fit on two thirds, Platt-calibrate on the other third (rows the model did not see).
        fit_idx, cal_idx = next(StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
                                .split(z, y.astype(np.int64)))
        model = _fit_lr(z[fit_idx], y[fit_idx], w[fit_idx], c)
        platt = LogisticRegression(C=1e6, max_iter=300)
        platt.fit(model.decision_function(z[cal_idx])[:, None], y[cal_idx].astype(np.int64), sample_weight=w[cal_idx])
        a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        coef[tier] = [float(v) * a for v in model.coef_[0]]
        intercept[tier] = float(model.intercept_[0]) * a + b
        report.append(TierFit(tier, int(sel.shape[0]), pos, "logistic", a, b))
    spec = SuccessModelSpec(feature_names=list(SUCCESS_FEATURES), mean=[float(v) for v in mean],
                            scale=[float(v) for v in scale], coef=coef, intercept=intercept)
    return SuccessFit(spec, report)


def prior_means(priors: Mapping[Any, Mapping[str, float]], tiers: Sequence[str]) -> dict[str, float]:
    """Mean prior success per tier over profiles: the fallback for tiers with almost no data."""
    return {t: float(np.mean([row[t] for row in priors.values()])) for t in tiers}
