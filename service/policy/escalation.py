"""The escalation rule, written once: after a failed attempt, where does the task go next?

Pure, so the outcome recorder (``tierwise.service.outcomes``) and the tuner's synthetic telemetry
(``tierwise.tuner.synthetic``) walk the very same state machine."""

from __future__ import annotations

from collections.abc import Sequence

from tierwise.service.classify import NextAction
from tierwise.service.policy.model import RoutingPolicy


def above(policy: RoutingPolicy, chain: Sequence[str], tier: str) -> list[str]:
    """The tiers of ``chain`` ranked above ``tier`` on the policy's ladder, cheapest first."""
    if tier not in policy.ladder:
        return [t for t in chain if t != tier]
    return [t for t in chain if t in policy.ladder and policy.rank(t) > policy.rank(tier)]


def next_step(policy: RoutingPolicy, *, chain: Sequence[str], tier: str, attempt: int, tried: Sequence[str],
              overridden_to: str | None, profile: str) -> tuple[NextAction, str | None]:
    """``("escalate", tier)`` or ``("human" | "script", None)`` after attempt ``attempt`` at ``tier``
    failed. Escalation only climbs: the candidates are the chain's tiers above the failed one (or
    the tier a developer overrode to), never one already tried, and at most ``max_steps`` times."""
    candidates = [overridden_to] if overridden_to else above(policy, chain, tier)
    nxt = next((t for t in candidates if t not in tried), None)
    if attempt < policy.escalation.max_steps and nxt is not None:
        return "escalate", nxt
    return ("script" if profile in policy.escalation.scripts else "human"), None
