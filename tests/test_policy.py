"""Policy validation: the shipped policy loads; a bad one is refused with the field named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA

from tierwise.service.errors import PolicyInvalid
from tierwise.service.policy.model import TEMPERATURE_RANGES, RoutingPolicy, parse_policy

Mutation = Callable[[dict[str, Any]], None]


def test_shipped_policy_validates() -> None:
    policy = parse_policy((DATA / "policy.default.json").read_text())
    assert isinstance(policy, RoutingPolicy)
    assert policy.version == "bootstrap"
    assert policy.ladder == ["small", "medium", "frontier"]
    for profile, t in policy.temperature.items():
        lo, hi = TEMPERATURE_RANGES[profile]
        assert lo <= t <= hi
    assert policy.exploration["local"] == 0.0


def test_canonical_json_round_trips() -> None:
    policy = parse_policy((DATA / "policy.default.json").read_text())
    again = parse_policy(policy.canonical_json())
    assert again == policy


def test_version_override_is_applied() -> None:
    policy = parse_policy((DATA / "policy.default.json").read_text(), version="7")
    assert policy.version == "7"


def _set(path: str, value: Any) -> Mutation:
    def mutate(p: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node = p
        for key in head:
            node = node[key]
        node[last] = value
    return mutate


def _del(path: str) -> Mutation:
    def mutate(p: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node = p
        for key in head:
            node = node[key]
        del node[last]
    return mutate


BAD: list[tuple[str, Mutation, str]] = [
    ("threshold above 1", _set("thresholds.ci.local", 1.5), "thresholds.ci.local"),
    ("threshold below 0", _set("thresholds.prod.agentic", -0.1), "thresholds.prod.agentic"),
    ("tier missing model", _del("tiers.small.model"), "tiers.small.model"),
    ("tier with empty model", _set("tiers.medium.model", ""), "tiers.medium.model"),
    ("temperature above profile range", _set("temperature.mechanical", 0.5), "temperature.mechanical"),
    ("temperature below profile range", _set("temperature.repository", 0.1), "temperature.repository"),
    ("temperature wrong type", _set("temperature.agentic", "hot"), "temperature.agentic"),
    ("ladder missing a tier", _set("ladder", ["small", "medium"]), "ladder"),
    ("ladder repeats a tier", _set("ladder", ["small", "medium", "medium"]), "ladder"),
    ("ladder names an unknown tier", _set("ladder", ["small", "medium", "huge"]), "ladder"),
    ("invalid JSON schema", _set("output_schemas.local.schema", {"type": "nope"}), "output_schemas.local.schema"),
    ("missing output schema", _del("output_schemas.agentic"), "output_schemas"),
    ("exploration above 0.5", _set("exploration.ci", 0.9), "exploration.ci"),
    ("budgets exceed the context window", _set("tiers.small.max_input_tokens", 399_000), "tiers.small"),
    ("unknown capability", _set("tiers.small.capabilities.tools", ["read_file", "hammer"]),
     "tiers.small.capabilities.tools"),
    ("unknown top-level field", _set("bogus", 1), "bogus"),
    ("escalation through an unknown tier", _set("escalation.ladder", ["small", "huge"]), "escalation.ladder"),
    ("more than two escalations", _set("escalation.max_steps", 3), "escalation.max_steps"),
    ("harness missing from thresholds", _del("thresholds.prod"), "thresholds"),
    ("profile missing from a harness", _del("thresholds.ci.agentic"), "thresholds.ci"),
    ("prior missing a tier", _del("success_priors.local.small"), "success_priors.local"),
    ("prior out of range", _set("success_priors.local.small", 1.2), "success_priors.local.small"),
    ("negative price", _set("tiers.frontier.input_usd_per_mtok", -1), "tiers.frontier.input_usd_per_mtok"),
]


@pytest.mark.parametrize(("mutate", "field"), [(m, f) for _, m, f in BAD], ids=[n for n, _, _ in BAD])
def test_bad_policy_is_refused_with_the_field_named(policy_dict: dict[str, Any], mutate: Mutation,
                                                    field: str) -> None:
    mutate(policy_dict)
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(json.dumps(policy_dict))
    assert info.value.field == field
    assert field in info.value.message


@pytest.mark.parametrize("raw", ["{", "", "{\"tiers\": }"])
def test_bad_json_is_refused(raw: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(raw)
    assert info.value.field == "$"
    assert "not valid JSON" in info.value.message


@pytest.mark.parametrize("raw", ["[]", "null", "3"])
def test_non_object_is_refused(raw: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(raw)
    assert info.value.field == "$"


def test_service_refuses_to_start_on_a_bad_policy_file(make_settings: Callable[..., Any],
                                                       policy_dict: dict[str, Any], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tierwise.service.api.app import create_app

    policy_dict["thresholds"]["ci"]["local"] = 2.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(policy_dict))
    app = create_app(make_settings(policy_file=bad))
    with pytest.raises(PolicyInvalid) as info, TestClient(app):
        pass
    assert info.value.field == "thresholds.ci.local"


def test_service_serves_a_custom_policy_file(make_client: Callable[..., Any], policy_dict: dict[str, Any],
                                             write_policy: Callable[[dict[str, Any]], Path]) -> None:
    policy_dict["version"] = "custom-3"
    client = make_client(policy_file=write_policy(policy_dict))
    body = client.get("/v1/policy").json()
    assert body["version"] == "custom-3"
    assert body["policy"]["version"] == "custom-3"
