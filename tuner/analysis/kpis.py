"""KPIs bucketed over time, so a promotion's effect shows as a step in the series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tierwise.tuner.analysis.load import to_utc

KPI_COLUMNS: tuple[str, ...] = ("cost_per_resolved", "resolution_rate", "escalation_rate", "override_rate")

_FREQS: tuple[tuple[str, float], ...] = (
    ("1s", 1), ("5s", 5), ("10s", 10), ("30s", 30), ("1min", 60), ("5min", 300), ("15min", 900),
    ("1h", 3600), ("6h", 21600), ("1D", 86400), ("7D", 604800),
)


def pick_freq(ts: pd.Series, max_buckets: int = 30) -> str:
    """The finest pandas frequency that cuts the span of ``ts`` (epoch seconds) into <= max_buckets."""
    if ts.empty:
        return "1D"
    span = float(ts.max() - ts.min())
    for freq, seconds in _FREQS:
        if span / seconds <= max_buckets:
            return freq
    return _FREQS[-1][0]


def kpis_over_time(episodes: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Per time bucket and policy version: episodes, resolution, cost per resolved, escalation, override.

    Same definitions as the ``kpi_by_*`` views: rates over episodes with an outcome, cost per
    resolved = total cost / resolved episodes. ``at`` is the mean time of the version's episodes in
    the bucket (where its point is drawn, so a bucket that straddles a promotion plots each version
    on its own side of the promotion line).
    """
    cols = ["bucket", "at", "policy_version", "episodes", *KPI_COLUMNS]
    e = episodes[episodes["has_outcome"].astype(bool)] if not episodes.empty else episodes
    if e.empty:
        return pd.DataFrame(columns=cols)
    freq = freq or pick_freq(e["ts"])
    frame = pd.DataFrame({
        "bucket": to_utc(e["ts"]).dt.floor(freq),
        "ts": e["ts"].astype(float),
        "policy_version": e["policy_version"].astype(str),
        "resolved": e["resolved"].astype(float),
        "cost": e["cost_usd"].astype(float),
        "escalated": e["escalated"].astype(float),
        "overridden": e["overridden"].astype(float),
    })
    g = frame.groupby(["bucket", "policy_version"], sort=True)
    out = pd.DataFrame({
        "at": to_utc(g["ts"].mean()),
        "episodes": g.size(),
        "cost_per_resolved": g["cost"].sum() / g["resolved"].sum().replace(0.0, np.nan),
        "resolution_rate": g["resolved"].mean(),
        "escalation_rate": g["escalated"].mean(),
        "override_rate": g["overridden"].mean(),
    }).reset_index()
    return out[cols]
