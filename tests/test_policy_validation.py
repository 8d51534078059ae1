"""The stricter policy validator: price-ordered ladder, escalation that only climbs, finite
numbers, and scripts from the configured allow-list. Each refusal names the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierwise.service.errors import PolicyInvalid
from tierwise.service.policy.model import parse_policy
from tierwise.service.settings import DEFAULT_SCRIPTS, load_settings


def _refused(raw: dict[str, Any] | str, **kw: Any) -> PolicyInvalid:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(raw, **kw)
    return info.value


def test_the_shipped_policy_and_every_allowed_script_validate(policy_dict: dict[str, Any]) -> None:
    assert parse_policy(policy_dict).ladder == ["small", "medium", "frontier"]
    for script in DEFAULT_SCRIPTS:
        policy_dict["escalation"]["scripts"] = {"mechanical": script}
        assert parse_policy(policy_dict).escalation.scripts == {"mechanical": script}


def test_a_ladder_not_ordered_by_price_is_refused(policy_dict: dict[str, Any]) -> None:
    policy_dict["ladder"] = ["medium", "small", "frontier"]
    err = _refused(policy_dict)
    assert err.field == "ladder" and "'small'" in err.message and "price" in err.message


def test_price_order_is_the_blended_price_and_ties_are_allowed(policy_dict: dict[str, Any]) -> None:
    # Dearer per input token, far cheaper per output token: cheaper blended (3:1), so below.
    policy_dict["tiers"]["small"].update(input_usd_per_mtok=3.5, output_usd_per_mtok=0.5)
    assert parse_policy(policy_dict).tiers["small"].blended_usd_per_mtok < 3.0 * 0.75 + 15.0 * 0.25
    policy_dict["tiers"]["medium"].update(input_usd_per_mtok=5.0, output_usd_per_mtok=25.0)  # = frontier
    parse_policy(policy_dict)
    policy_dict["tiers"]["medium"]["output_usd_per_mtok"] = 25.01
    assert _refused(policy_dict).field == "ladder"


@pytest.mark.parametrize(("climb", "what"), [
    (["small", "small", "frontier"], "itself"),
    (["medium", "small"], "cheaper"),
    (["small", "frontier", "medium"], "cheaper"),
    (["small", "frontier", "small"], "cheaper"),
])
def test_escalation_that_does_not_climb_is_refused(policy_dict: dict[str, Any], climb: list[str],
                                                   what: str) -> None:
    policy_dict["escalation"]["ladder"] = climb
    err = _refused(policy_dict)
    assert err.field == "escalation.ladder" and what in err.message


def test_an_escalation_ladder_that_skips_a_rung_still_validates(policy_dict: dict[str, Any]) -> None:
    policy_dict["escalation"]["ladder"] = ["small", "frontier"]
    assert parse_policy(policy_dict).escalation.ladder == ["small", "frontier"]


@pytest.mark.parametrize("field", ["input_usd_per_mtok", "output_usd_per_mtok"])
def test_an_infinite_price_in_the_json_is_refused(policy_dict: dict[str, Any], field: str) -> None:
    policy_dict["tiers"]["frontier"][field] = float("inf")
    raw = json.dumps(policy_dict)
    assert "Infinity" in raw  # Python's json writes and reads it
    err = _refused(raw)
    assert err.field == f"tiers.frontier.{field}"


def test_nan_anywhere_is_refused(policy_dict: dict[str, Any]) -> None:
    policy_dict["thresholds"]["ci"]["local"] = float("nan")
    assert _refused(json.dumps(policy_dict)).field == "thresholds.ci.local"


def test_a_script_off_the_allow_list_is_refused(policy_dict: dict[str, Any]) -> None:
    policy_dict["escalation"]["scripts"] = {"mechanical": "/bin/rm -rf /"}
    err = _refused(policy_dict)
    assert err.field == "escalation.scripts.mechanical" and "TIERWISE_SCRIPTS" in err.message
    # the configured allow-list decides, not the default one
    assert parse_policy(policy_dict, scripts=["/bin/rm -rf /"]).escalation.scripts["mechanical"] == "/bin/rm -rf /"
    policy_dict["escalation"]["scripts"] = {"mechanical": DEFAULT_SCRIPTS[0]}
    assert _refused(policy_dict, scripts=["ours.py"]).field == "escalation.scripts.mechanical"


def test_tierwise_scripts_is_a_comma_separated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_SCRIPTS", "fix_imports.py, scripts/codemod.py,")
    assert load_settings().scripts == ("fix_imports.py", "scripts/codemod.py")
    monkeypatch.delenv("TIERWISE_SCRIPTS")
    assert load_settings().scripts == DEFAULT_SCRIPTS


def test_the_service_refuses_a_policy_file_naming_an_unconfigured_script(
        make_settings: Callable[..., Any], policy_dict: dict[str, Any],
        write_policy: Callable[[dict[str, Any]], Path]) -> None:
    from tierwise.service.components import initial_policy

    policy_dict["escalation"]["scripts"] = {"local": "scripts/format.py"}
    path = write_policy(policy_dict)
    assert initial_policy(make_settings(policy_file=path))[0].escalation.scripts == {"local": "scripts/format.py"}
    with pytest.raises(PolicyInvalid) as info:
        initial_policy(make_settings(policy_file=path, scripts=("scripts/codemod.py",)))
    assert info.value.field == "escalation.scripts.local"
