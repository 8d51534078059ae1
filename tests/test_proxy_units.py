"""Pure parts of the proxy: the JSON end marker, the upstream body, model ids."""

from __future__ import annotations

from typing import Any

import pytest

from tierwise.service.errors import InvalidInput
from tierwise.service.policy.model import parse_policy
from tierwise.service.proxy.core import upstream_body
from tierwise.service.proxy.jsonend import JsonEnd
from tierwise.service.proxy.models import parse_model
from tierwise.service.proxy.request import ChatRequest
from tierwise.service.proxy.sessions import Step


def _ends(pieces: list[str]) -> list[int | None]:
    end = JsonEnd()
    return [end.feed(p) for p in pieces]


@pytest.mark.parametrize(("pieces", "expected"), [
    (['{"a": 1}'], [8]),
    (["  {", '"a": [1, {"b": "}"}]', "}tail"], [None, None, 1]),
    (['{"q": "say \\"}\\" now"}', "more"], [22, None]),  # an escaped quote does not end the string
    (['[1, [2], {"x": []}]'], [19]),
    (["42", "}"], [None, None]),  # a scalar has no structural end to wait for
    (['{"a": "\\\\"}'], [11]),  # an escaped backslash ends before the quote
])
def test_the_end_of_the_top_level_value_is_found_as_it_streams(pieces: list[str], expected: list[int | None]) -> None:
    assert _ends(pieces) == expected


def test_upstream_body_caps_by_the_plan_and_drops_tierwise_metadata() -> None:
    req = ChatRequest.model_validate({"model": "tierwise", "messages": [{"role": "user", "content": "x"}],
                                      "temperature": 0.9, "max_completion_tokens": 99_999, "top_p": 0.5,
                                      "metadata": {"task_id": "T"}, "seed": 7})
    step = Step(attempt=0, tier="small", model="m-small", temperature=0.2, max_output_tokens=1000)
    body = upstream_body(req, step, stream=True)
    assert body["model"] == "m-small" and body["temperature"] == 0.2 and body["max_completion_tokens"] == 1000
    assert "max_tokens" not in body and "metadata" not in body
    assert (body["top_p"], body["seed"]) == (0.5, 7)  # unknown parameters are forwarded untouched
    assert body["stream_options"] == {"include_usage": True}
    lower = ChatRequest.model_validate({"model": "tierwise", "messages": [{"role": "user", "content": "x"}],
                                        "temperature": 0.1, "max_tokens": 10})
    body = upstream_body(lower, step, stream=False)
    assert (body["temperature"], body["max_tokens"]) == (0.1, 10) and "stream_options" not in body


def test_model_ids(default_policy_dict: dict[str, Any]) -> None:
    import json

    policy = parse_policy(json.dumps(default_policy_dict))
    assert parse_model("tierwise", policy).mode == parse_model("tierwise/auto", policy).mode == "auto"
    assert parse_model("tierwise/medium", policy).tier == "medium"
    assert parse_model("gpt-4o", policy).model == "gpt-4o"
    with pytest.raises(InvalidInput) as info:
        parse_model("tierwise/giant", policy)
    assert info.value.field == "model" and "tierwise/frontier" in info.value.message
