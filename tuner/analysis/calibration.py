"""Calibration of the logged tier scores against first-attempt outcomes: are the scores probabilities?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tierwise.tuner.analysis.load import parse_json, version_key


def calibration_table(decisions: pd.DataFrame, episodes: pd.DataFrame, bins: int = 10,
                      by_version: bool = True) -> pd.DataFrame:
    """Predicted success of the routed tier (its logged tier score) vs the first attempt's outcome.

    One row per (policy version, tier, probability bin), bins of equal width on [0, 1]; ``brier`` and
    ``tier_n`` are the Brier score and row count of that version's tier. Versions are kept apart by
    default because each scores with its own priors or learned model; ``by_version=False`` pools them
    (``policy_version`` is then "all").
    """
    cols = ["policy_version", "tier", "bin", "predicted", "observed", "n", "brier", "tier_n"]
    if decisions.empty or episodes.empty:
        return pd.DataFrame(columns=cols)
    ep = episodes[episodes["has_outcome"].astype(bool)][["decision_id", "first_resolved"]]
    d = decisions[["decision_id", "policy_version", "tier", "tier_scores"]].merge(ep, on="decision_id")
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(predicted=[float(parse_json(s, {}).get(t, np.nan)) for s, t in zip(d["tier_scores"], d["tier"],
                                                                                   strict=True)],
                 observed=d["first_resolved"].astype(float),
                 policy_version=d["policy_version"].astype(str) if by_version else "all",
                 ).dropna(subset=["predicted"])
    d["bin"] = np.minimum((d["predicted"] * bins).astype(int), bins - 1)
    d["sq"] = (d["predicted"] - d["observed"]) ** 2
    keys = ["policy_version", "tier"]
    per = d.groupby(keys).agg(brier=("sq", "mean"), tier_n=("sq", "size")).reset_index()
    out = d.groupby([*keys, "bin"], as_index=False).agg(predicted=("predicted", "mean"),
                                                        observed=("observed", "mean"), n=("observed", "size"))
    out = out.merge(per, on=keys)
    out = out.sort_values(["tier", "policy_version", "bin"], key=lambda c: c.map(version_key)
                          if c.name == "policy_version" else c).reset_index(drop=True)
    return out[cols]
