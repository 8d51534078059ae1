"""Turn scores into a decision under a policy. Pure, so the tuner replays it exactly.

Rule: among eligible tiers (the model has every tool the task needs and its input budget holds
the task), take the cheapest whose success score clears the harness/profile threshold; if none
clears it, the eligible tier with the best score. With probability ``exploration[harness]``,
pick uniformly among the other eligible tiers instead, and log the propensity either way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.classify.model import Scores
from service.classify.success import tier_scores
from service.errors import NoEligibleTier
from service.policy.model import RoutingPolicy


@dataclass(frozen=True)
class TierPlan:
    """The executable part of a decision for one tier: what the harness needs to call a model."""

    tier: str
    model: str
    temperature: float
    max_input_tokens: int
    max_output_tokens: int
    output_schema: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    policy_version: str
    harness: str
    profile: str
    tier: str
    greedy_tier: str
    explored: bool
    propensity: float
    tier_scores: dict[str, float]
    eligible: tuple[str, ...]
    escalation_chain: tuple[str, ...]
    plan: TierPlan
    reasons: tuple[str, ...] = field(default_factory=tuple)


def context_tokens(policy: RoutingPolicy, scores: Scores, n_files: int) -> int:
    return scores.prompt_tokens + policy.tokens_per_file * n_files


def eligibility(policy: RoutingPolicy, tools: Sequence[str], needed_tokens: int) -> tuple[list[str], list[str]]:
    """Eligible tiers in ladder order, and one reason per excluded tier."""
    eligible: list[str] = []
    excluded: list[str] = []
    for name in policy.ladder:
        tier = policy.tiers[name]
        missing = sorted(set(tools) - set(tier.capabilities.tools))
        if missing:
            excluded.append(f"{name} excluded: {tier.model} lacks tool(s) {', '.join(missing)}")
        elif needed_tokens > tier.max_input_tokens:
            excluded.append(f"{name} excluded: task needs ~{needed_tokens} input tokens, "
                            f"budget is {tier.max_input_tokens}")
        else:
            eligible.append(name)
    return eligible, excluded


def greedy_choice(policy: RoutingPolicy, harness: str, profile: str, scores: dict[str, float],
                  eligible: Sequence[str]) -> tuple[str, str]:
    threshold = policy.thresholds[harness][profile]  # type: ignore[index]
    for name in eligible:
        if scores[name] >= threshold:
            return name, f"{name}: success {scores[name]:.2f} ≥ threshold {threshold:.2f} ({harness}/{profile})"
    best = max(eligible, key=lambda t: (scores[t], policy.rank(t)))
    return best, f"no tier clears threshold {threshold:.2f} ({harness}/{profile}); {best} scores best"


def plan_for(policy: RoutingPolicy, tier: str, profile: str) -> TierPlan:
    t = policy.tiers[tier]
    schema = policy.output_schemas[profile]  # type: ignore[index]
    return TierPlan(tier=tier, model=t.model, temperature=policy.temperature[profile],  # type: ignore[index]
                    max_input_tokens=t.max_input_tokens, max_output_tokens=t.max_output_tokens,
                    output_schema={"name": schema.name, "schema": schema.json_schema})


def decide(policy: RoutingPolicy, scores: Scores, *, tools: Sequence[str], n_files: int, harness: str,
           rng: random.Random | None) -> Decision:
    """The one decision function; ``rng=None`` disables exploration (replay, evaluation)."""
    profile = scores.profile
    eligible, excluded = eligibility(policy, tools, context_tokens(policy, scores, n_files))
    if not eligible:
        field_name = "tools" if any("lacks tool" in e for e in excluded) else "prompt"
        raise NoEligibleTier("no tier can take this task: " + "; ".join(excluded), field=field_name)
    ts = tier_scores(scores, eligible, policy.success_priors,
                     policy.success_model.to_model() if policy.success_model else None)
    greedy, why = greedy_choice(policy, harness, profile, ts, eligible)
    rate = policy.exploration[harness]  # type: ignore[index]
    others = [t for t in eligible if t != greedy]
    tier, explored, propensity = greedy, False, 1.0
    if others and rate > 0:
        propensity = 1.0 - rate
        if rng is not None and rng.random() < rate:
            tier, explored, propensity = rng.choice(others), True, rate / len(others)
    climb = policy.escalation.ladder if policy.escalation.ladder is not None else policy.ladder
    chain = tuple(t for t in eligible if policy.rank(t) > policy.rank(tier) and t in climb)
    chain = chain[: policy.escalation.max_steps]
    reasons = [f"profile {profile} (p={scores.profile_scores[profile]:.2f}), complexity {scores.complexity:.2f}"]
    reasons += [f"{p} cues: {', '.join(words[:4])}" for p, words in scores.keywords.items()]
    reasons.append(why)
    reasons += excluded
    if explored:
        reasons.append(f"explored: picked {tier} instead of {greedy} (p={propensity:.3f})")
    return Decision(
        policy_version=policy.version, harness=harness, profile=profile, tier=tier, greedy_tier=greedy,
        explored=explored, propensity=round(propensity, 6), tier_scores=ts, eligible=tuple(eligible),
        escalation_chain=chain, plan=plan_for(policy, tier, profile), reasons=tuple(reasons),
    )
