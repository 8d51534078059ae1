"""The per-tier packing budget in the policy: explicit, defaulted by ladder rank, validated."""

from __future__ import annotations

from typing import Any

import pytest

from tierwise.service.errors import PolicyInvalid
from tierwise.service.policy.model import parse_policy


def test_the_bootstrap_policy_gives_each_tier_its_budget(policy_dict: dict[str, Any]) -> None:
    policy = parse_policy(policy_dict)
    assert [policy.context_budget(t) for t in policy.ladder] == [(8000, "focused"), (32000, "map"), (100000, "map")]


def test_a_policy_written_before_the_fields_loads_with_budgets_by_rank(policy_dict: dict[str, Any]) -> None:
    for tier in policy_dict["tiers"].values():
        tier.pop("context_tokens", None)
        tier.pop("context_strategy", None)
    policy_dict["tiers"]["frontier"]["max_input_tokens"] = 50_000
    policy = parse_policy(policy_dict)
    assert [policy.context_budget(t) for t in policy.ladder] == [(8000, "focused"), (32000, "map"), (50000, "map")]


@pytest.mark.parametrize(("key", "value", "field"), [
    ("context_tokens", 10**9, "tiers.small"),
    ("context_tokens", 0, "tiers.small.context_tokens"),
    ("context_strategy", "everything", "tiers.small.context_strategy"),
])
def test_a_bad_budget_is_refused_naming_the_field(policy_dict: dict[str, Any], key: str, value: object,
                                                  field: str) -> None:
    policy_dict["tiers"]["small"][key] = value
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(policy_dict)
    assert err.value.field == field
