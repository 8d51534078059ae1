"""Replay logged decisions under any policy through the service's own scoring and decision code.

This is the seam that keeps the tuner honest (semantic-router's ``fit()`` idea): a candidate is
judged by what ``service.policy.decide`` would do, not by a re-implementation of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from service.errors import NoEligibleTier
from service.policy.decide import decide
from service.policy.model import RoutingPolicy
from service.routing import scores_from_row


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


def replay_tiers(policy: RoutingPolicy, rows: Iterable[dict[str, Any]]) -> list[str | None]:
    return [replay_tier(policy, r) for r in rows]
