"""Replay logged decisions under any policy through the service's own scoring and decision code.

This is the seam that keeps the tuner honest (semantic-router's ``fit()`` idea): a candidate is
judged by what ``tierwise.service.policy.decide`` would do, not by a re-implementation of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tierwise.service.classify import HARNESSES, PROFILES
from tierwise.service.classify.success import tier_score_matrix
from tierwise.service.errors import NoEligibleTier
from tierwise.service.policy.decide import (
    BoolMatrix,
    IntArray,
    context_tokens,
    decide,
    eligible_matrix,
    escalation_chains,
    greedy_indices,
    routed_profiles,
    routed_success_features,
)
from tierwise.service.policy.model import RoutingPolicy
from tierwise.service.routing import scores_from_row
from tierwise.tuner.dataset import LoggedData

FloatMatrix = NDArray[np.float64]


def replay_tier(policy: RoutingPolicy, row: dict[str, Any]) -> str | None:
    """The tier ``policy`` picks for a logged decision, exploration off; None if none is eligible."""
    scores = scores_from_row(row)
    try:
        d = decide(policy, scores, tools=json.loads(row["tools"] or "[]"), n_files=int(row["n_files"] or 0),
                   harness=str(row["harness"]), rng=None)
    except NoEligibleTier:
        return None
    return d.greedy_tier


def replay_chain(policy: RoutingPolicy, row: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """First tier and escalation chain under ``policy``."""
    scores = scores_from_row(row)
    try:
        d = decide(policy, scores, tools=json.loads(row["tools"] or "[]"), n_files=int(row["n_files"] or 0),
                   harness=str(row["harness"]), rng=None)
    except NoEligibleTier:
        return None, ()
    return d.greedy_tier, d.escalation_chain


@dataclass(frozen=True)
class ReplayBase:
    """What does not change between threshold candidates: eligibility and tier scores."""

    ladder: tuple[str, ...]
    eligible: BoolMatrix  # [n, T]
    scores: FloatMatrix  # [n, T]


def replay_base(policy: RoutingPolicy, data: LoggedData) -> ReplayBase:
    needed = context_tokens(policy, data.prompt_tokens, data.n_files)
    eligible = eligible_matrix(policy, data.needs, needed)
    model = policy.success_model.to_model() if policy.success_model else None
    scores = tier_score_matrix(routed_success_features(data.x, policy), policy.ladder, policy.success_priors, model)
    return ReplayBase(tuple(policy.ladder), eligible, scores)


def threshold_table(policy: RoutingPolicy) -> FloatMatrix:
    """[len(HARNESSES), len(PROFILES)] thresholds."""
    return np.array([[policy.thresholds[h][p] for p in PROFILES] for h in HARNESSES], dtype=np.float64)


def row_thresholds(policy: RoutingPolicy, data: LoggedData) -> FloatMatrix:
    """Each row's threshold under ``policy``: its harness, and the profile the policy routes it by
    (``routed_profiles``, so a candidate's ``unsure`` rule is replayed too)."""
    _, routed, _ = routed_profiles(data.x[:, :len(PROFILES)], policy)
    out: FloatMatrix = threshold_table(policy)[data.harness_idx, routed]
    return out


def replay_greedy(policy: RoutingPolicy, data: LoggedData, base: ReplayBase | None = None) -> tuple[IntArray, IntArray]:
    """(greedy tier column per row, -1 if none eligible; escalation chain [n, max_steps], -1 padded),
    columns indexing ``policy.ladder``; exploration off, exactly as ``decide(rng=None)``."""
    b = base if base is not None else replay_base(policy, data)
    idx = greedy_indices(b.scores, b.eligible, row_thresholds(policy, data))
    return idx, escalation_chains(policy, idx, b.eligible)


def tier_codes(names: NDArray[np.object_], ladder: Sequence[str]) -> IntArray:
    """Column index of each tier name in ``ladder``; -1 for an empty or unknown name."""
    index = {t: i for i, t in enumerate(ladder)}
    return np.fromiter((index.get(str(t), -1) if t is not None else -1 for t in names), dtype=np.int64,
                       count=len(names))


def action_codes(tier_idx: IntArray, chain_idx: IntArray) -> IntArray:
    """One integer per (first tier, escalation chain): what OPE matches logged against target on.
    The chain matters because it decides what the episode costs and whether it resolves."""
    code = tier_idx.astype(np.int64) + 1
    for s in range(chain_idx.shape[1]):
        code = code * 64 + (chain_idx[:, s].astype(np.int64) + 1)
    out: IntArray = np.where(tier_idx >= 0, code, -1)
    return out
