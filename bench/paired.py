"""Paired comparisons across seeds: each arm against a baseline arm on the same tasks and luck.

Per seed, the difference (arm - baseline) of a post-drift figure; across seeds, its mean and a
95% Student-t interval. The seeds share nothing but the scenario, so the per-seed differences are
independent; pairing removes each seed's task mix and luck, which dwarf the differences between
arms when the arms are compared unpaired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def interval(diffs: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of the per-seed differences with its Student-t interval (NaN bounds for one seed)."""
    a = np.array([d for d in diffs if math.isfinite(d)], dtype=float)
    if not a.size:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "per_seed": list(diffs)}
    mean = float(a.mean())
    if a.size < 2:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": 1, "per_seed": list(diffs)}
    half = float(stats.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(a.size), "per_seed": list(diffs)}


def post_drift(weekly: list[dict[str, float]], start: int, stop: int | None = None) -> dict[str, float]:
    """Pooled figures over weeks [start, stop): cost per resolved = total cost / total resolved
    (weeks have equal task counts, so means of weekly means pool exactly)."""
    rows = weekly[start:stop]
    cost = float(np.mean([r["cost_per_10k"] for r in rows])) / 10_000
    res = float(np.mean([r["resolution_rate"] for r in rows]))
    return {"cost_per_resolved": cost / res if res else math.nan, "resolution_rate": res}


def paired(per_seed: list[dict[str, Any]], arms: Sequence[str], baseline: str) -> dict[str, Any]:
    """For each arm: the relative cost-per-resolved difference (%) and the resolution difference
    (percentage points) to ``baseline``, after the drift and in the drift week alone."""
    out: dict[str, Any] = {}
    for arm in arms:
        if arm == baseline:
            continue
        row: dict[str, Any] = {}
        for window, stop_after in (("after_drift", None), ("drift_week", 1)):
            cost, res = [], []
            for s in per_seed:
                d = s["drift_week"]
                stop = None if stop_after is None else d + stop_after
                a, b = post_drift(s["weekly"][arm], d, stop), post_drift(s["weekly"][baseline], d, stop)
                cost.append(100.0 * (a["cost_per_resolved"] / b["cost_per_resolved"] - 1.0))
                res.append(100.0 * (a["resolution_rate"] - b["resolution_rate"]))
            row[window] = {"cost_per_resolved_pct": interval(cost), "resolution_pp": interval(res)}
        out[arm] = row
    return out
