"""The online layer over ``decide``: corrected tier scores, drift-raised exploration, a floor.

``decide`` gives the policy's own greedy tier (what the tuner replays; it stays the logged
``greedy_tier``, so parity holds). This layer then draws the served tier from an explicit
distribution over the eligible tiers and logs that tier's exact probability, so off-policy
evaluation stays valid however the distribution was shaped:

- the **online greedy** tier: ``greedy_indices`` again, on the tier scores plus the journal's
  correction for (profile, tier) (``OnlineView.correction``), gets ``1 - rate - floor``;
- ``rate`` = the policy's exploration for the harness, raised to ``boost_rate`` while a tier of
  the profile is inside its drift budget; spread over the online greedy's explore set
  (``explore_matrix``: its ladder neighbours by default);
- ``floor`` is spread over every other eligible tier, so no tier goes unobserved.

``explored`` means the served tier is not the policy's greedy tier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from tierwise.service.online.stats import OnlineView
from tierwise.service.policy.decide import (
    Decision,
    escalation_chains,
    explore_matrix,
    greedy_indices,
    plan_for,
)
from tierwise.service.policy.model import RoutingPolicy


@dataclass(frozen=True)
class AdaptRates:
    boost_rate: float = 0.3
    floor: float = 0.02


def tier_distribution(policy: RoutingPolicy, base: Decision, view: OnlineView,
                      rates: AdaptRates) -> tuple[NDArray[np.float64], int, list[str]]:
    """Probabilities over ``policy.ladder`` (zero on ineligible tiers), the online greedy column,
    and the reasons that shaped them."""
    ladder, profile = policy.ladder, base.profile
    mask = np.array([[t in base.eligible for t in ladder]], dtype=bool)
    adjusted = np.array([[min(1.0, max(0.0, base.tier_scores.get(t, 0.0) + view.correction(profile, t)))
                          for t in ladder]], dtype=np.float64)
    threshold = policy.thresholds[base.harness][profile]  # type: ignore[index]
    g = int(greedy_indices(adjusted, mask, np.array([threshold]))[0])
    reasons = [f"online: {t} corrected {base.tier_scores[t]:.2f} -> {adjusted[0, j]:.2f} "
               f"(observed {st.observed:.2f} vs predicted {st.predicted:.2f}, n={st.n:.0f})"
               for j, t in enumerate(ladder)
               if t in base.eligible and (st := view.tiers.get((profile, t))) is not None
               and abs(st.correction) >= 0.01]
    rate = policy.exploration[base.harness]  # type: ignore[index]
    drifting = view.drifting_tiers(profile)
    if drifting:
        rate = max(rate, rates.boost_rate)
        reasons.append(f"drift flagged on {profile}/{','.join(drifting)}: exploration raised to {rate:.2f}")
    explore = explore_matrix(policy, mask, np.array([g], dtype=np.int64))[0]
    rest = mask[0] & ~explore
    rest[g] = False
    p = np.zeros(len(ladder))
    if explore.any():
        p[explore] = rate / explore.sum()
    if rest.any():
        p[rest] = rates.floor / rest.sum()
    p[g] = 1.0 - p.sum()
    return p, g, reasons


def adapt(policy: RoutingPolicy, base: Decision, view: OnlineView, rates: AdaptRates,
          rng: random.Random | None) -> Decision:
    """The served decision: a draw from ``tier_distribution`` (the online greedy when ``rng`` is None)."""
    p, g, reasons = tier_distribution(policy, base, view, rates)
    j = g
    if rng is not None:
        u, acc = rng.random(), 0.0
        for j in range(len(p)):
            acc += p[j]
            if u < acc and p[j] > 0:
                break
        else:
            j = g
    tier = policy.ladder[j]
    mask = np.array([[t in base.eligible for t in policy.ladder]], dtype=bool)
    steps = escalation_chains(policy, np.array([j], dtype=np.int64), mask)[0]
    explored = tier != base.greedy_tier
    if explored:
        reasons.append(f"served {tier} instead of the policy's {base.greedy_tier} (p={p[j]:.3f})")
    kept = tuple(r for r in base.reasons if not r.startswith("explored:"))
    return replace(base, tier=tier, explored=explored, propensity=round(float(p[j]), 6),
                   escalation_chain=tuple(policy.ladder[int(s)] for s in steps if s >= 0),
                   plan=plan_for(policy, tier, base.profile), reasons=kept + tuple(reasons))
