"""What-if: each logged decision replayed under other policies and estimated off-policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tierwise.service.policy.model import RoutingPolicy
from tierwise.tuner.counterfactual import replay_tier
from tierwise.tuner.ope import estimate_policy


def replay_targets(decisions: pd.DataFrame, episodes: pd.DataFrame,
                   policies: Mapping[str, RoutingPolicy]) -> pd.DataFrame:
    """For each decision with an outcome: the logged tier, propensity, episode outcome, and the tier
    each policy would pick (``tierwise.tuner.counterfactual.replay_tier``: the service's own decision
    code, no exploration)."""
    base = ["decision_id", "profile", "logged", "propensity", "resolved", "cost_usd"]
    if decisions.empty or episodes.empty:
        return pd.DataFrame(columns=[*base, *policies])
    ep = episodes[episodes["has_outcome"].astype(bool)][["decision_id", "resolved", "cost_usd"]]
    d = decisions.merge(ep, on="decision_id")
    out = pd.DataFrame({"decision_id": d["decision_id"], "profile": d["profile"], "logged": d["tier"],
                        "propensity": d["propensity"].astype(float), "resolved": d["resolved"].astype(float),
                        "cost_usd": d["cost_usd"].astype(float)})
    rows = d.to_dict("records")
    for name, policy in policies.items():
        out[name] = [replay_tier(policy, r) for r in rows]
    return out


def what_if(targets: pd.DataFrame, labels: Mapping[str, str], *, n_boot: int = 200,
            seed: int = 0) -> pd.DataFrame:
    """Off-policy estimates (``tierwise.tuner.ope.estimate_policy``) of each policy column of ``targets``,
    next to what the logs actually show. Outcomes are per episode (escalations included)."""
    cols = ["policy", "resolution_rate", "resolution_low", "resolution_high", "cost_per_task",
            "cost_per_resolved", "cpr_low", "cpr_high", "resolution_snips", "cost_per_resolved_snips",
            "match_rate", "ess", "n", "dropped"]
    if targets.empty:
        return pd.DataFrame(columns=cols)
    rows: list[dict[str, Any]] = []
    keep = targets.dropna(subset=list(labels))
    dropped = len(targets) - len(keep)
    if keep.empty:
        return pd.DataFrame(columns=cols)
    r, c = keep["resolved"].to_numpy(dtype=float), keep["cost_usd"].to_numpy(dtype=float)
    rows.append({"policy": "logged (what happened)", "resolution_rate": float(r.mean()),
                 "cost_per_task": float(c.mean()), "cost_per_resolved": float(c.sum() / max(r.sum(), 1e-12)),
                 "match_rate": 1.0, "ess": float(len(keep)), "n": len(keep), "dropped": dropped})
    for col, label in labels.items():
        est = estimate_policy(keep["logged"].to_numpy(dtype=object), keep["propensity"].to_numpy(dtype=float),
                              keep[col].to_numpy(dtype=object), r, c, n_boot=n_boot, seed=seed)
        rows.append({"policy": label, "resolution_rate": est.resolution_dr.value,
                     "resolution_low": est.resolution_dr.low, "resolution_high": est.resolution_dr.high,
                     "cost_per_task": est.cost_dr.value, "cost_per_resolved": est.cost_per_resolved_dr.value,
                     "cpr_low": est.cost_per_resolved_dr.low, "cpr_high": est.cost_per_resolved_dr.high,
                     "resolution_snips": est.resolution_snips.value,
                     "cost_per_resolved_snips": est.cost_per_resolved_snips.value,
                     "match_rate": est.match_rate, "ess": est.ess, "n": est.n, "dropped": dropped})
    return pd.DataFrame(rows, columns=cols)


def disagreements(targets: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Where two policies pick different tiers: counts per profile and (a tier → b tier)."""
    if targets.empty:
        return pd.DataFrame(columns=["profile", a, b, "n"])
    diff = targets[targets[a] != targets[b]]
    return (diff.groupby(["profile", a, b], dropna=False).size().rename("n").reset_index()
            .sort_values("n", ascending=False).reset_index(drop=True))
