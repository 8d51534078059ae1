"""Outcome statistics with forgetting and a change detector, per (profile, tier) and per model.

Pure: rows in, a frozen ``OnlineView`` out. Every worker computes the view from the same journal
rows, so the workers agree without sharing process memory.

Why these pieces:

- **Residuals, not raw success.** A tier's observed success depends on which tasks it was sent;
  the logged prediction (the tier score at decision time) already accounts for that, so the
  residual ``resolved - predicted`` is what says the world moved.
- **Forgetting by count, not by clock.** A row's weight halves every ``half_life`` later outcomes
  of the same (profile, tier); traffic volume, not wall time, sets how fast old evidence fades.
- **Page-Hinkley change detection** on the residuals, both directions: a constant miscalibration
  (bootstrap priors that are a bit off) does not alarm, a change of level does. After an alarm
  the statistics restart from the change point (as change-point bandits do), so the correction
  reflects the new world only.
- **Corrections are changes, not calibration.** The policy's thresholds were tuned against its
  own scores, miscalibration included; re-calibrating them online would move every decision the
  tuner chose. So a correction is the level change a detected change point shows: the shrunk mean
  residual since the last alarm minus the mean residual before the first one. No alarm, no
  correction: between changes the retuned policy decides as tuned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class OutcomeRow:
    """One first attempt: who was asked, what was predicted, what happened (oldest first)."""

    profile: str
    tier: str
    model: str
    predicted: float
    resolved: bool


@dataclass(frozen=True)
class TierStat:
    n: float  # effective (forgetting-weighted) outcomes since the last change point
    observed: float  # weighted success rate
    predicted: float  # weighted mean prediction
    correction: float  # shrunk residual change since the change point: added to the tier's score
    alarms: int  # change points detected in the window
    since_alarm: int | None  # outcomes of this profile since the last alarm (None: no alarm)


@dataclass(frozen=True)
class AdaptConfig:
    half_life: float = 150.0
    prior: float = 10.0  # pseudo-outcomes at zero residual: shrinks corrections from thin evidence
    ph_delta: float = 0.05  # Page-Hinkley tolerance per outcome
    ph_lambda: float = 4.0  # Page-Hinkley alarm threshold
    boost_outcomes: int = 150  # drift raises exploration for this many outcomes of the profile
    min_after_alarm: int = 3  # outcomes since the change point before a correction applies


@dataclass(frozen=True)
class OnlineView:
    """What the router reads per decision; empty means "no evidence yet"."""

    tiers: dict[tuple[str, str], TierStat] = field(default_factory=dict)
    models: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> (n, success)
    drifting: frozenset[tuple[str, str]] = frozenset()  # (profile, tier) inside their boost budget

    def correction(self, profile: str, tier: str) -> float:
        s = self.tiers.get((profile, tier))
        return 0.0 if s is None else s.correction

    def drifting_tiers(self, profile: str) -> list[str]:
        return sorted(t for p, t in self.drifting if p == profile)


def page_hinkley(residuals: Sequence[float], delta: float, lam: float) -> list[tuple[int, int]]:
    """Two-sided Page-Hinkley: (alarm index, estimated change point) per alarm, oldest first.

    The change point (the last row of the old level) is the split of the rows since the previous
    alarm that best separates two means (the CUSUM maximum-likelihood split); the test restarts
    after each alarm."""
    alarms: list[tuple[int, int]] = []
    mean = up = down = up_min = down_max = 0.0
    k = start = 0
    for i, r in enumerate(residuals):
        k += 1
        mean += (r - mean) / k
        up += r - mean - delta
        down += r - mean + delta
        up_min, down_max = min(up_min, up), max(down_max, down)
        if up - up_min > lam or down_max - down > lam:
            alarms.append((i, start + best_split(residuals[start:i + 1])))
            mean = up = down = up_min = down_max = 0.0
            k, start = 0, i + 1
    return alarms


def best_split(xs: Sequence[float]) -> int:
    """The index j maximising |mean(xs[:j+1]) - mean(xs[j+1:])| · sqrt(n1·n2/n)."""
    a = np.asarray(xs, dtype=np.float64)
    n = a.size
    if n < 2:
        return 0
    left = np.cumsum(a)[:-1]
    n1 = np.arange(1, n, dtype=np.float64)
    n2 = n - n1
    stat = np.abs(left / n1 - (a.sum() - left) / n2) * np.sqrt(n1 * n2 / n)
    return int(np.argmax(stat))


def _weighted(rows: Sequence[OutcomeRow], half_life: float) -> tuple[float, float, float]:
    n = s = p = 0.0
    last = len(rows) - 1
    for i, r in enumerate(rows):
        w = 0.5 ** ((last - i) / half_life)
        n, s, p = n + w, s + w * r.resolved, p + w * r.predicted
    return n, s, p


def tier_stat(rows: Sequence[OutcomeRow], cfg: AdaptConfig, profile_after: Sequence[int]) -> TierStat:
    """Statistics of one (profile, tier) from its rows, oldest first.

    ``profile_after[i]`` = outcomes of the whole profile after row i: the boost budget is counted
    in the profile's traffic, which keeps flowing when the drifting tier stops being served."""
    alarms = page_hinkley([r.resolved - r.predicted for r in rows], cfg.ph_delta, cfg.ph_lambda)
    start = alarms[-1][1] + 1 if alarms else 0
    recent = rows[start:]
    n, s, p = _weighted(recent, cfg.half_life)
    correction = 0.0
    if alarms and len(recent) >= cfg.min_after_alarm:
        before = rows[:alarms[0][1] + 1]
        level = sum(r.resolved - r.predicted for r in before) / len(before)
        correction = (s - p - n * level) / (n + cfg.prior)
    since = profile_after[alarms[-1][0]] if alarms else None
    return TierStat(n=n, observed=s / n if n else math.nan, predicted=p / n if n else math.nan,
                    correction=correction, alarms=len(alarms), since_alarm=since)


def build_view(rows: Sequence[OutcomeRow], cfg: AdaptConfig) -> OnlineView:
    """The view from first-attempt rows, oldest first."""
    by_profile: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_profile.setdefault(r.profile, []).append(i)
    tiers: dict[tuple[str, str], TierStat] = {}
    for profile, idx in by_profile.items():
        groups: dict[str, list[int]] = {}
        for j, i in enumerate(idx):
            groups.setdefault(rows[i].tier, []).append(j)
        for tier, js in groups.items():
            after = [len(idx) - 1 - j for j in js]
            tiers[(profile, tier)] = tier_stat([rows[idx[j]] for j in js], cfg, after)
    models: dict[str, tuple[float, float]] = {}
    for model in {r.model for r in rows}:
        n, s, _ = _weighted([r for r in rows if r.model == model], cfg.half_life)
        models[model] = (n, s / n if n else math.nan)
    drifting = frozenset(k for k, st in tiers.items()
                         if st.since_alarm is not None and st.since_alarm < cfg.boost_outcomes)
    return OnlineView(tiers, models, drifting)
