"""Per-tier success scores: P(the tier resolves this task), from priors or a learned model.

The bootstrap policy carries priors by profile, so a tier's score is
Σ P(profile | task) · prior(profile, tier). After a retune the policy carries a small
logistic model per tier over ``success_features``; both paths return plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.classify import PROFILES
from service.classify.model import Scores

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

    def predict(self, x: Sequence[float], tiers: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for tier in tiers:
            z = self.intercept[tier] + sum(
                c * (v - m) / s for c, v, m, s in zip(self.coef[tier], x, self.mean, self.scale, strict=True)
            )
            out[tier] = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
        return out


def prior_scores(profile_scores: Mapping[str, float], priors: Mapping[str, Mapping[str, float]],
                 tiers: Sequence[str]) -> dict[str, float]:
    return {t: sum(profile_scores[p] * priors[p][t] for p in PROFILES) for t in tiers}


def tier_scores(scores: Scores, tiers: Sequence[str], priors: Mapping[str, Mapping[str, float]],
                model: LinearSuccessModel | None) -> dict[str, float]:
    """Learned model where the policy has one, priors otherwise; rounded so replays are exact."""
    if model is None:
        raw = prior_scores(scores.profile_scores, priors, tiers)
    else:
        raw = model.predict(success_features(scores), tiers)
    return {t: round(v, 6) for t, v in raw.items()}
