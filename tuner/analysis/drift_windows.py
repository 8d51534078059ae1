"""Drift between the window a policy was trained on and the recent one, split at a promotion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from tierwise.tuner.analysis.load import to_utc
from tierwise.tuner.drift import DriftReport, drift_report

DRIFT_NUMERIC: tuple[str, ...] = (
    "complexity", "prompt_tokens", "n_files", "diff_lines", "modules_touched", "repo_files",
)

DRIFT_CATEGORICAL: tuple[str, ...] = ("profile", "expected_output", "harness")


@dataclass(frozen=True)
class Windows:
    train: pd.DataFrame
    recent: pd.DataFrame
    split_at: pd.Timestamp | None
    how: str


def drift_frame(decisions: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """Decisions with the first attempt's outcome (NaN while pending), ready for ``drift_report``."""
    if decisions.empty:
        return decisions.assign(first_resolved=pd.Series(dtype=float))
    if episodes.empty:
        return decisions.assign(first_resolved=np.nan)
    ep = episodes[["decision_id", "has_outcome", "first_resolved"]]
    out = decisions.merge(ep, on="decision_id", how="left")
    out["first_resolved"] = out["first_resolved"].astype(float).where(out["has_outcome"].astype(bool))
    return out.drop(columns=["has_outcome"])


def split_windows(frame: pd.DataFrame, promos: pd.DataFrame, split_at: str | datetime | None = None) -> Windows:
    """Training window vs recent window.

    ``split_at`` if given; else the latest promotion inside the data (the champion was tuned on what
    came before it and serves what came after); else the median decision time.
    """
    if frame.empty:
        return Windows(frame, frame, None, "no data")
    ts = to_utc(frame["ts"])
    if split_at is not None:
        at = pd.Timestamp(split_at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        how = f"given split {at:%Y-%m-%d %H:%M:%S} UTC"
    else:
        inside = promos[(promos["promoted_at"] > ts.min()) & (promos["promoted_at"] <= ts.max())] \
            if not promos.empty else promos
        if not inside.empty:
            last = inside.iloc[-1]
            at = last["promoted_at"]
            how = f"before vs after v{last['version']} became champion ({at:%Y-%m-%d %H:%M:%S} UTC)"
        else:
            at = ts.quantile(0.5)
            how = f"first vs second half of the window (split {at:%Y-%m-%d %H:%M:%S} UTC, no promotion inside)"
    mask = (ts < at).to_numpy()
    return Windows(frame[mask], frame[~mask], at, how)


def drift(windows: Windows, *, threshold: float = 0.2, min_rows: int = 30) -> DriftReport:
    """``tierwise.tuner.drift.drift_report`` on the notebook's features, with per-tier first-attempt success."""
    return drift_report(windows.train, windows.recent, numeric=list(DRIFT_NUMERIC),
                        categorical=list(DRIFT_CATEGORICAL), tier_col="tier", resolved_col="first_resolved",
                        threshold=threshold, min_rows=min_rows)
