"""Per-tier success scores: P(the tier resolves this task), from priors or a learned model.

The bootstrap policy carries priors by profile, so a tier's score is
Σ P(profile | task) · prior(profile, tier). After a retune the policy carries a small
logistic model per tier over ``success_features``; both paths return plain numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tierwise.service.classify import PROFILES
from tierwise.service.classify.model import Scores

# Inputs of the learned per-tier success model; all are logged with every decision.
SUCCESS_FEATURES: tuple[str, ...] = (
    *(f"p_{p}" for p in PROFILES),
    "complexity",
    "log_prompt_tokens",
    "log_files",
    "log_diff_lines",
    "log_modules_touched",
    "n_tools",
)


FloatMatrix = NDArray[np.float64]
# Scores are rounded to this many decimals, so a logged score replays exactly.
SCORE_DECIMALS = 6


def success_features(scores: Scores) -> list[float]:
    f = scores.features
    return [
        *(scores.profile_scores[p] for p in PROFILES),
        scores.complexity,
        f["log_prompt_tokens"],
        f["log_files"],
        f["log_diff_lines"],
        f["log_modules_touched"],
        f["n_tools"],
    ]


@dataclass(frozen=True)
class LinearSuccessModel:
    """One logistic model per tier, with its own standardisation, as plain numbers."""

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: Mapping[str, Sequence[float]]
    intercept: Mapping[str, float]

    def predict_matrix(self, x: FloatMatrix, tiers: Sequence[str]) -> FloatMatrix:
        """P(resolved) for many rows [n, F] and the given tiers: returns [n, len(tiers)]."""
        x = np.asarray(x, dtype=np.float64)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        coef = np.array([self.coef[t] for t in tiers], dtype=np.float64).reshape(len(tiers), x.shape[1])
        logits = z @ coef.T + np.array([self.intercept[t] for t in tiers], dtype=np.float64)
        out: FloatMatrix = 1.0 / (1.0 + np.exp(-np.clip(logits, -40.0, 40.0)))
        return out

    def predict(self, x: Sequence[float], tiers: Sequence[str]) -> dict[str, float]:
        row = self.predict_matrix(np.asarray([x], dtype=np.float64), tiers)[0]
        return {t: float(v) for t, v in zip(tiers, row, strict=True)}


def prior_score_matrix(profile_scores: FloatMatrix, priors: Mapping[Any, Mapping[str, float]],
                       tiers: Sequence[str]) -> FloatMatrix:
    """Σ_p P(p | task) · prior(p, tier) for many rows; profile columns in ``PROFILES`` order."""
    ps = np.asarray(profile_scores, dtype=np.float64)
    out = np.zeros((ps.shape[0], len(tiers)))
    for i, p in enumerate(PROFILES):  # accumulate in profile order, as a scalar sum would
        out = out + ps[:, i:i + 1] * np.array([priors[p][t] for t in tiers], dtype=np.float64)
    return out


def tier_score_matrix(x: FloatMatrix, tiers: Sequence[str], priors: Mapping[Any, Mapping[str, float]],
                      model: LinearSuccessModel | None) -> FloatMatrix:
    """Per-tier success scores for many rows of ``SUCCESS_FEATURES`` [n, F] -> [n, len(tiers)].

    The one implementation behind ``tier_scores`` (the service, one row) and the tuner (all rows):
    the learned model where the policy has one, priors otherwise; rounded so replays are exact.
    """
    x = np.asarray(x, dtype=np.float64)
    raw = prior_score_matrix(x[:, :len(PROFILES)], priors, tiers) if model is None else model.predict_matrix(x, tiers)
    return round_scores(raw)


def round_scores(raw: FloatMatrix) -> FloatMatrix:
    """``round(v, 6)`` elementwise with Python's exact semantics (correctly rounded, half to even on
    the exact binary value). ``np.round`` scales first, so it can disagree right at a half; the
    few values that close to one are rounded by Python itself."""
    out: FloatMatrix = np.round(raw, SCORE_DECIMALS)
    scaled = np.asarray(raw, dtype=np.float64) * 10.0**SCORE_DECIMALS
    near = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    if near.any():
        idx = np.nonzero(near)
        out[idx] = [round(float(v), SCORE_DECIMALS) for v in np.asarray(raw)[idx]]
    return out


def tier_scores(scores: Scores, tiers: Sequence[str], priors: Mapping[Any, Mapping[str, float]],
                model: LinearSuccessModel | None) -> dict[str, float]:
    """One row of ``tier_score_matrix``, as a dict keyed by tier."""
    row = tier_score_matrix(np.asarray([success_features(scores)], dtype=np.float64), tiers, priors, model)[0]
    return {t: float(v) for t, v in zip(tiers, row, strict=True)}
