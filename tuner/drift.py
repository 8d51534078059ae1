"""Drift checks between the window the router was tuned on and recent traffic.

Why this exists: tuned thresholds and the OPE numbers behind them only describe
production while the task mix and the tiers' success rates look like the tuning
window. PSI is used rather than a KS/chi-square p-value because it measures the size
of a shift, so it does not cry "significant" at trivial shifts once n is large, and
the usual rule of thumb (0.1 watch, 0.2 act) carries across features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

# Floor on bin proportions: an empty bin would otherwise make PSI infinite, and one
# unseen category should read as "large shift", not as "undefined".
_EPS = 1e-4
_MISSING = "<missing>"


def _psi_counts(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    e = np.maximum(expected / expected.sum(), _EPS)
    a = np.maximum(actual / actual.sum(), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: ArrayLike, actual: ArrayLike, bins: int = 10) -> float:
    """Population stability index of a numeric feature; nan if either side is empty.

    Edges are quantiles of `expected` so each reference bin holds ~1/bins of the
    mass (deduplicated, so heavy ties just mean fewer bins); the outer bins are open
    so values outside the reference range still count. Non-finite values are dropped:
    a change in missingness is not what this number is about.
    """
    if bins < 2:
        raise ValueError("bins must be >= 2")
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if e.size == 0 or a.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    k = edges.size + 1
    return _psi_counts(
        np.bincount(np.searchsorted(edges, e), minlength=k),
        np.bincount(np.searchsorted(edges, a), minlength=k),
    )


def psi_categorical(expected: Sequence[str], actual: Sequence[str]) -> float:
    """PSI over the union of categories; nan if either side is empty."""
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    e, a = Counter(expected), Counter(actual)
    cats = sorted(set(e) | set(a))
    return _psi_counts(np.array([e[c] for c in cats]), np.array([a[c] for c in cats]))


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4f}"


@dataclass(frozen=True)
class DriftReport:
    """PSI per feature plus per-tier success rates, and what crossed a threshold.

    `drifted` holds feature names and "success:<tier>" entries, in that order.
    """

    features: dict[str, float]
    tier_success: dict[str, dict[str, float]]
    threshold: float
    drifted: list[str]
    success_delta_threshold: float = 0.10
    min_rows: int = 30
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.drifted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-shaped dict (nan stays nan) for `mlflow.log_dict`."""
        return {
            "flagged": self.flagged,
            "threshold": self.threshold,
            "success_delta_threshold": self.success_delta_threshold,
            "min_rows": self.min_rows,
            "drifted": list(self.drifted),
            "features": dict(self.features),
            "tier_success": {t: dict(s) for t, s in self.tier_success.items()},
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """Small human-readable summary, meant to be logged as an artifact."""
        status = "FLAGGED: " + ", ".join(self.drifted) if self.flagged else "no drift"
        lines = [
            f"## Drift report: {status}",
            "",
            f"PSI threshold {self.threshold:g}; success delta threshold "
            f"{self.success_delta_threshold:g} (needs >= {self.min_rows} rows per window).",
            *(f"Note: {n}" for n in self.notes),
            "",
            "| feature | PSI | drifted |",
            "|---|---:|:---:|",
        ]
        for name, value in self.features.items():
            lines.append(f"| {name} | {_fmt(value)} | {'yes' if name in self.drifted else ''} |")
        lines += [
            "",
            "| tier | train rate | recent rate | delta | n train | n recent | drifted |",
            "|---|---:|---:|---:|---:|---:|:---:|",
        ]
        for tier, s in self.tier_success.items():
            flag = "yes" if f"success:{tier}" in self.drifted else ""
            lines.append(
                f"| {tier} | {_fmt(s['train_rate'])} | {_fmt(s['recent_rate'])} "
                f"| {_fmt(s['delta'])} | {int(s['n_train'])} | {int(s['n_recent'])} | {flag} |"
            )
        return "\n".join(lines) + "\n"


def _numeric(col: Any) -> np.ndarray[Any, Any]:
    return np.asarray(pd.to_numeric(col, errors="coerce"), dtype=np.float64)


def _labels(col: Any) -> list[str]:
    return [str(v) for v in col.astype("string").fillna(_MISSING)]


def _success(frame: Any, tier_col: str, resolved_col: str) -> dict[str, tuple[float, int]]:
    """Per tier (mean resolved, rows with a known outcome)."""
    if len(frame) == 0:
        return {}
    resolved = pd.to_numeric(frame[resolved_col], errors="coerce").astype("float64")
    grouped = resolved.groupby(frame[tier_col].astype("string").fillna(_MISSING))
    means, counts = grouped.mean(), grouped.count()
    return {str(t): (float(means[t]), int(counts[t])) for t in means.index}


def drift_report(
    train: pd.DataFrame,
    recent: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    tier_col: str = "tier",
    resolved_col: str = "resolved",
    threshold: float = 0.2,
    success_delta_threshold: float = 0.10,
    min_rows: int = 30,
) -> DriftReport:
    """Compare the tuning window `train` with the `recent` window.

    If either frame has no rows, every PSI is nan, nothing is flagged and a note says
    so: "no data" must not read as "no drift" to a human, but must not page anyone
    either. Zero-row frames are not checked for columns (an empty query result often
    has none); a missing column in a non-empty frame raises ValueError naming it.
    A tier's success change is only flagged when both windows have >= `min_rows`
    rows with a known outcome for it, since smaller samples swing by more than 0.10
    by chance.
    """
    required = [*numeric, *categorical, tier_col, resolved_col]
    for label, frame in (("train", train), ("recent", recent)):
        if len(frame) == 0:
            continue
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} frame is missing column(s): {', '.join(map(repr, missing))}")

    empty = len(train) == 0 or len(recent) == 0
    nan = float("nan")
    features: dict[str, float] = {}
    for col in numeric:
        features[col] = nan if empty else psi(_numeric(train[col]), _numeric(recent[col]))
    for col in categorical:
        features[col] = nan if empty else psi_categorical(_labels(train[col]), _labels(recent[col]))
    drifted = [name for name, value in features.items() if value > threshold]

    before = _success(train, tier_col, resolved_col)
    after = _success(recent, tier_col, resolved_col)
    tier_success: dict[str, dict[str, float]] = {}
    for tier in sorted(set(before) | set(after)):
        (r0, n0), (r1, n1) = before.get(tier, (nan, 0)), after.get(tier, (nan, 0))
        delta = r1 - r0
        tier_success[tier] = {
            "train_rate": r0,
            "recent_rate": r1,
            "delta": delta,
            "n_train": float(n0),
            "n_recent": float(n1),
        }
        if min(n0, n1) >= min_rows and abs(delta) > success_delta_threshold:
            drifted.append(f"success:{tier}")

    notes = [f"{label} window is empty" for label, f in (("train", train), ("recent", recent)) if len(f) == 0]
    return DriftReport(
        features=features,
        tier_success=tier_success,
        threshold=threshold,
        drifted=drifted,
        success_delta_threshold=success_delta_threshold,
        min_rows=min_rows,
        notes=notes,
    )
