"""next_step(): the one escalation rule the recorder and the synthetic telemetry share."""

from __future__ import annotations

from typing import Any

import pytest

from tierwise.service.policy.escalation import above, next_step
from tierwise.service.policy.model import RoutingPolicy, parse_policy

CHAIN = ["medium", "frontier"]


@pytest.fixture
def policy(policy_dict: dict[str, Any]) -> RoutingPolicy:
    return parse_policy(policy_dict)


def test_a_failure_climbs_the_chain_one_rung(policy: RoutingPolicy) -> None:
    assert next_step(policy, chain=CHAIN, tier="small", attempt=0, tried=["small"], overridden_to=None,
                     profile="local") == ("escalate", "medium")
    assert next_step(policy, chain=CHAIN, tier="medium", attempt=1, tried=["small", "medium"], overridden_to=None,
                     profile="local") == ("escalate", "frontier")


def test_after_max_steps_or_at_the_top_the_task_goes_to_a_human(policy: RoutingPolicy) -> None:
    assert next_step(policy, chain=CHAIN, tier="frontier", attempt=2, tried=["small", "medium", "frontier"],
                     overridden_to=None, profile="local") == ("human", None)
    assert next_step(policy, chain=[], tier="frontier", attempt=0, tried=["frontier"], overridden_to=None,
                     profile="local") == ("human", None)


def test_an_override_names_the_next_tier_unless_it_was_tried(policy: RoutingPolicy) -> None:
    assert next_step(policy, chain=CHAIN, tier="small", attempt=0, tried=["small"], overridden_to="frontier",
                     profile="local") == ("escalate", "frontier")
    assert next_step(policy, chain=CHAIN, tier="medium", attempt=1, tried=["small", "medium"],
                     overridden_to="small", profile="local") == ("human", None)


def test_escalation_never_goes_down_and_a_script_can_take_over(policy_dict: dict[str, Any]) -> None:
    policy_dict["escalation"]["scripts"] = {"mechanical": "scripts/codemod.py"}
    policy = parse_policy(policy_dict)
    assert above(policy, ["small", "medium", "frontier"], "medium") == ["frontier"]
    assert next_step(policy, chain=["small"], tier="medium", attempt=0, tried=["medium"], overridden_to=None,
                     profile="mechanical") == ("script", None)
    assert next_step(policy, chain=["small"], tier="medium", attempt=0, tried=["medium"], overridden_to=None,
                     profile="local") == ("human", None)
