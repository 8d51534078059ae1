"""The OpenAI-compatible proxy, non-streaming, driven by the official ``openai`` client against a
real tierwise server that forwards to a real (fake) upstream on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import AGENTIC, MECHANICAL
from proxy_helpers import KEY, MODELS, Env, start_env

from tierwise.bench.fake_upstream import Reply


@pytest.fixture
def env(tmp_path: Path, write_policy: Callable[[dict[str, Any]], Path],
        policy_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Env]:
    yield from start_env(tmp_path, write_policy, policy_dict, monkeypatch, getattr(request, "param", None))


def ask(env: Env, messages: list[dict[str, Any]], **kw: Any) -> Any:
    return env.client.chat.completions.with_raw_response.create(model=kw.pop("model", "tierwise"),
                                                                 messages=messages, **kw)


def test_routes_forwards_with_the_plan_caps_and_answers_like_openai(env: Env) -> None:
    env.fake.default = Reply(content="renamed", usage=(120, 30))
    tools = [{"type": "function", "function": {"name": "str_replace_editor", "parameters": {"type": "object"}}},
             {"type": "function", "function": {"name": "execute_bash", "parameters": {"type": "object"}}}]
    raw = ask(env, [{"role": "user", "content": MECHANICAL}], temperature=1.5, max_tokens=10**6, tools=tools)
    completion = raw.parse()
    assert completion.choices[0].message.content == "renamed"
    tier, decision_id = raw.headers["x-tierwise-tier"], raw.headers["x-tierwise-decision-id"]
    assert tier == "small" and raw.headers["x-tierwise-attempt"] == "0"
    sent = env.fake.calls[-1]
    assert sent["model"] == MODELS["small"]
    assert sent["body"]["temperature"] <= 0.2  # mechanical: the plan's temperature caps the client's 1.5
    assert sent["body"]["max_tokens"] == 16000  # the small tier's output budget caps the client's
    assert "metadata" not in sent["body"]
    assert sent["body"]["tools"] == tools  # forwarded as sent
    assert sent["authorization"] == f"Bearer {KEY}"
    row = env.journal("SELECT task_id, expected_output, tier, tools FROM decisions WHERE decision_id = ?",
                      (decision_id,))
    assert row == [{"task_id": None, "expected_output": None, "tier": "small",
                    "tools": '["str_replace_editor", "execute_bash"]'}]
    metrics = httpx.get(env.base + "/metrics").text  # a proxied decision is a route like any other
    assert 'tierwise_routes_total{explored="false",harness="ci",profile="mechanical",tier="small"} 1.0' in metrics


def test_calls_of_one_task_share_one_decision_and_their_cost_is_recorded(env: Env) -> None:
    env.fake.default = Reply(content="step", usage=(1000, 200))
    convo: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."},
                                   {"role": "user", "content": AGENTIC}]
    ids = []
    for i in range(3):
        raw = ask(env, convo)
        ids.append(raw.headers["x-tierwise-decision-id"])
        convo += [{"role": "assistant", "content": "step"}, {"role": "user", "content": f"tool output {i}"}]
    # The same conversation is one task: one decision, still on attempt 0.
    assert len(set(ids)) == 1 and raw.headers["x-tierwise-attempt"] == "0"
    tier = raw.headers["x-tierwise-tier"]
    # The last call says the task is resolved: the attempt is closed with all four calls' usage.
    ask(env, convo, metadata={"resolved": "true"})
    [attempt] = env.attempts(ids[0])
    assert attempt["resolved"] == 1 and attempt["failure"] is None and attempt["next_action"] == "done"
    assert (attempt["input_tokens"], attempt["output_tokens"]) == (4000, 800)
    prices = {"small": (0.25, 2.0), "medium": (3.0, 15.0), "frontier": (5.0, 25.0)}[tier]
    assert attempt["cost_usd"] == pytest.approx((4000 * prices[0] + 800 * prices[1]) / 1e6)
    assert len(env.journal("SELECT * FROM decisions")) == 1


def test_a_conversation_without_a_system_prompt_is_one_task_too(env: Env) -> None:
    convo: list[dict[str, Any]] = [{"role": "user", "content": MECHANICAL}]
    first = ask(env, convo)
    convo += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "and the tests"}]
    second = ask(env, convo)
    other = ask(env, [{"role": "user", "content": AGENTIC}])
    assert first.headers["x-tierwise-decision-id"] == second.headers["x-tierwise-decision-id"]
    assert other.headers["x-tierwise-decision-id"] != first.headers["x-tierwise-decision-id"]


def test_a_task_id_header_ties_calls_with_different_openings(env: Env) -> None:
    headers = {"X-Tierwise-Task-Id": "JIRA-42", "X-Tierwise-Harness": "local"}
    a = ask(env, [{"role": "user", "content": MECHANICAL}], extra_headers=headers)
    b = ask(env, [{"role": "user", "content": "now also fix the docstring"}], extra_headers=headers)
    c = ask(env, [{"role": "user", "content": MECHANICAL}], metadata={"task_id": "JIRA-43"})
    assert a.headers["x-tierwise-decision-id"] == b.headers["x-tierwise-decision-id"]
    assert c.headers["x-tierwise-decision-id"] != a.headers["x-tierwise-decision-id"]
    rows = env.journal("SELECT task_id, harness FROM decisions ORDER BY ts")
    assert rows == [{"task_id": "JIRA-42", "harness": "local"}, {"task_id": "JIRA-43", "harness": "ci"}]


def test_upstream_failures_escalate_within_the_call(env: Env) -> None:
    env.fake.script(MODELS["small"], Reply(status=500))
    env.fake.script(MODELS["medium"], Reply(delay_s=3.0))  # longer than the 1 s upstream timeout
    env.fake.script(MODELS["frontier"], Reply(content="done by frontier", usage=(50, 10)))
    raw = ask(env, [{"role": "user", "content": MECHANICAL}])
    assert raw.parse().choices[0].message.content == "done by frontier"
    assert (raw.headers["x-tierwise-tier"], raw.headers["x-tierwise-attempt"]) == ("frontier", "2")
    attempts = env.attempts(raw.headers["x-tierwise-decision-id"])
    assert [(a["tier"], a["failure"], a["next_action"]) for a in attempts] == [
        ("small", "error", "escalate"), ("medium", "timeout", "escalate")]
    escalations = env.journal("SELECT from_tier, to_tier, cause FROM escalations ORDER BY from_attempt")
    assert escalations == [{"from_tier": "small", "to_tier": "medium", "cause": "error"},
                           {"from_tier": "medium", "to_tier": "frontier", "cause": "timeout"}]
    # The next call of the task goes straight to the tier it is on now.
    again = ask(env, [{"role": "user", "content": MECHANICAL}])
    assert again.headers["x-tierwise-tier"] == "frontier"
    assert [c["model"] for c in env.fake.calls] == [MODELS["small"], MODELS["medium"], MODELS["frontier"],
                                                    MODELS["frontier"]]


def test_when_every_tier_fails_the_client_gets_502_and_the_task_is_queued(env: Env) -> None:
    env.fake.default = Reply(status=503)
    with pytest.raises(openai.APIStatusError) as info:
        ask(env, [{"role": "user", "content": MECHANICAL}])
    assert info.value.status_code == 502
    error = info.value.body["error"] if isinstance(info.value.body, dict) and "error" in info.value.body \
        else info.value.body
    assert error["code"] == "upstream_failed" and "human queue" in error["message"]
    assert len(env.fake.calls) == 3  # small, medium, frontier: two escalations, no more
    queue = env.journal("SELECT kind, tiers_tried FROM queue")
    assert queue == [{"kind": "human", "tiers_tried": '["small", "medium", "frontier"]'}]


def test_refusal_fails_the_attempt(env: Env) -> None:
    env.fake.script(MODELS["small"], Reply(refusal="I can't help with that"))
    raw = ask(env, [{"role": "user", "content": MECHANICAL}])
    assert raw.headers["x-tierwise-tier"] == "medium"
    [attempt] = env.attempts(raw.headers["x-tierwise-decision-id"])
    assert attempt["failure"] == "refused"


SCHEMA = {"type": "object", "properties": {"files": {"type": "array", "items": {"type": "string"}}},
          "required": ["files"], "additionalProperties": False}


def test_output_that_breaks_the_json_schema_is_schema_invalid(env: Env) -> None:
    env.fake.script(MODELS["small"], Reply(content='{"files": "utils.py"}', usage=(100, 8)))
    env.fake.script(MODELS["medium"], Reply(content='{"files": ["utils.py"]}', usage=(100, 9)))
    raw = ask(env, [{"role": "user", "content": MECHANICAL}],
              response_format={"type": "json_schema", "json_schema": {"name": "files", "schema": SCHEMA}})
    assert raw.parse().choices[0].message.content == '{"files": ["utils.py"]}'
    assert raw.headers["x-tierwise-tier"] == "medium"
    [attempt] = env.attempts(raw.headers["x-tierwise-decision-id"])
    assert attempt["failure"] == "schema_invalid"
    assert attempt["output_tokens"] == 8 and attempt["cost_usd"] == pytest.approx((100 * 0.25 + 8 * 2.0) / 1e6)
    decision = env.journal("SELECT expected_output FROM decisions")
    assert decision == [{"expected_output": "json"}]


def test_a_forced_tier_is_logged_as_an_override(env: Env) -> None:
    raw = ask(env, [{"role": "user", "content": MECHANICAL}], model="tierwise/frontier")
    assert (raw.headers["x-tierwise-tier"], raw.headers["x-tierwise-attempt"]) == ("frontier", "1")
    [attempt] = env.attempts(raw.headers["x-tierwise-decision-id"])
    assert (attempt["tier"], attempt["overridden_to"], attempt["next_tier"]) == ("small", "frontier", "frontier")
    assert env.fake.calls[-1]["model"] == MODELS["frontier"]
    # The next call of the forced task stays there: no second override.
    again = ask(env, [{"role": "user", "content": MECHANICAL}], model="tierwise/frontier")
    assert again.headers["x-tierwise-attempt"] == "1" and len(env.attempts(raw.headers["x-tierwise-decision-id"])) == 1


def test_other_model_ids_pass_through_without_a_decision(env: Env) -> None:
    raw = ask(env, [{"role": "user", "content": MECHANICAL}], model="my-own-finetune", temperature=1.2)
    assert raw.parse().choices[0].message.content == "ok"
    assert "x-tierwise-decision-id" not in raw.headers
    sent = env.fake.calls[-1]
    assert sent["model"] == "my-own-finetune" and sent["body"]["temperature"] == 1.2
    assert env.journal("SELECT * FROM decisions") == []


def test_models_lists_the_router_the_tiers_and_the_pass_through_ids(env: Env) -> None:
    ids = [m.id for m in env.client.models.list()]
    assert ids[:5] == ["tierwise", "tierwise/auto", "tierwise/small", "tierwise/medium", "tierwise/frontier"]
    assert set(MODELS.values()) <= set(ids)


def test_an_outcome_report_gets_the_proxied_usage(env: Env) -> None:
    env.fake.default = Reply(usage=(2000, 100))
    raw = ask(env, [{"role": "user", "content": MECHANICAL}])
    h = raw.headers
    report = {"decision_id": h["x-tierwise-decision-id"], "attempt": int(h["x-tierwise-attempt"]),
              "tier": h["x-tierwise-tier"], "resolved": True, "cost_usd": 0.0}
    first = httpx.post(env.base + "/v1/outcomes", json=report)
    assert first.status_code == 200 and first.json()["next"]["action"] == "done"
    again = httpx.post(env.base + "/v1/outcomes", json=report)
    assert again.status_code == 200 and again.json().get("duplicate") is True  # still idempotent
    [attempt] = env.attempts(h["x-tierwise-decision-id"])
    assert attempt["cost_usd"] == pytest.approx((2000 * 0.25 + 100 * 2.0) / 1e6)
    # The task is closed: the same conversation now starts a new decision.
    assert ask(env, [{"role": "user", "content": MECHANICAL}]).headers["x-tierwise-decision-id"] != \
        h["x-tierwise-decision-id"]


def test_a_client_that_hangs_up_cancels_the_upstream_call(env: Env) -> None:
    env.fake.default = Reply(delay_s=0.9)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(env.base + "/v1/chat/completions", timeout=0.3,
                   json={"model": "tierwise", "messages": [{"role": "user", "content": MECHANICAL}]})
    deadline = time.monotonic() + 3
    while env.fake.cut_off == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env.fake.cut_off == 1
    assert env.journal("SELECT * FROM attempts") == []  # a hang-up is not the model's failure


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "tierwise"}, "messages"),
    ({"model": "tierwise", "messages": []}, "messages"),
    ({"model": "tierwise", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "tierwise/huge", "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "tierwise", "messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"model": "tierwise", "messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
    ({"model": "tierwise", "messages": [{"role": "user", "content": "x"}], "metadata": {"harness": "mars"}},
     "metadata.harness"),
    ({"model": "tierwise", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}}},
     "response_format.json_schema.schema"),
])
def test_bad_requests_get_a_4xx_that_names_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    r = httpx.post(env.base + "/v1/chat/completions", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert env.fake.calls == []


def test_a_bad_harness_header_is_named(env: Env) -> None:
    r = httpx.post(env.base + "/v1/chat/completions", headers={"X-Tierwise-Harness": "mars"},
                   json={"model": "tierwise", "messages": [{"role": "user", "content": MECHANICAL}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "x-tierwise-harness"


@pytest.mark.parametrize("env", [{"upstream_base_url": None}], indirect=True)
def test_without_an_upstream_the_error_names_the_setting(env: Env) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        ask(env, [{"role": "user", "content": MECHANICAL}])
    assert info.value.status_code == 503
    assert "TIERWISE_UPSTREAM_BASE_URL" in str(info.value.body)


def test_proxied_attempts_show_in_the_kpis_with_their_cost(env: Env) -> None:
    from tierwise.service.telemetry.store import open_warehouse

    env.fake.default = Reply(usage=(1000, 100))
    env.fake.script(MODELS["small"], Reply(status=500), Reply(usage=(1000, 100)))
    # Task A: small fails, medium answers, resolved. Task B: small answers, resolved.
    a = ask(env, [{"role": "user", "content": MECHANICAL}], metadata={"resolved": "true", "task_id": "A"})
    b = ask(env, [{"role": "user", "content": MECHANICAL}], metadata={"resolved": "true", "task_id": "B"})
    assert (a.headers["x-tierwise-tier"], b.headers["x-tierwise-tier"]) == ("medium", "small")
    small, medium = (1000 * 0.25 + 100 * 2.0) / 1e6, (1000 * 3.0 + 100 * 15.0) / 1e6
    deadline = time.monotonic() + 10
    while True:  # the exporter copies committed rows to Parquet every 0.1 s
        wh = open_warehouse(Path(env.settings.home))
        try:
            kpis = wh.kpis()
        finally:
            wh.close()
        if (not kpis.empty and kpis["episodes"].iloc[0] == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    row = kpis.iloc[0]
    assert (row["decisions"], row["episodes"], row["resolution_rate"]) == (2, 2, 1.0)
    assert row["escalation_rate"] == 0.5 and row["failures_error"] == 1
    # Task A's cost: its failed small call had no usage, then medium; task B: small.
    assert row["cost_per_task"] == pytest.approx((medium + small) / 2)


def test_auth_applies_to_the_proxy(env: Env) -> None:
    from tierwise.service.keys import KeyStore

    _, report_key = KeyStore(env.settings.keys_file).create(("report",), name="reporter")
    body = {"model": "tierwise", "messages": [{"role": "user", "content": MECHANICAL}]}
    assert httpx.post(env.base + "/v1/chat/completions", json=body).status_code == 401
    assert httpx.get(env.base + "/v1/models").status_code == 401
    forbidden = httpx.post(env.base + "/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {report_key}"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    _, route_key = KeyStore(env.settings.keys_file).create(("route",), name="agent")
    client = openai.OpenAI(base_url=env.base + "/v1", api_key=route_key, max_retries=0)
    assert client.chat.completions.create(**body).choices[0].message.content == "ok"  # type: ignore[call-overload]
    assert all(c["authorization"] == f"Bearer {KEY}" for c in env.fake.calls)  # tierwise's key stays here


def test_a_tier_with_its_own_upstream_gets_its_own_key(tmp_path: Path, write_policy: Callable[[dict[str, Any]], Path],
                                                      policy_dict: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tierwise.bench.fake_upstream import FakeUpstream, serve
    from tierwise.service.settings import load_settings

    monkeypatch.setenv("TW_TEST_FRONTIER_KEY", "sk-frontier-Hh3kQ9wE2rT7")
    frontier = FakeUpstream(default=Reply(content="from the frontier gateway"))
    with serve(frontier) as url:
        spec = {"frontier": {"base_url": url, "api_key_env": "TW_TEST_FRONTIER_KEY"}}
        monkeypatch.setenv("TIERWISE_UPSTREAMS", json.dumps(spec))
        assert load_settings().upstreams["frontier"].base_url == url  # the variable parses as documented
        monkeypatch.delenv("TIERWISE_UPSTREAMS")
        envs = start_env(tmp_path, write_policy, policy_dict, monkeypatch, {"upstreams": spec})
        env = next(envs)
        try:
            small = ask(env, [{"role": "user", "content": MECHANICAL}])
            forced = ask(env, [{"role": "user", "content": AGENTIC}], model="tierwise/frontier")
            assert small.parse().choices[0].message.content == "ok"  # the default upstream
            assert forced.parse().choices[0].message.content == "from the frontier gateway"
            assert [c["authorization"] for c in frontier.calls] == ["Bearer sk-frontier-Hh3kQ9wE2rT7"]
            assert [c["authorization"] for c in env.fake.calls] == [f"Bearer {KEY}"]
            monkeypatch.delenv("TW_TEST_FRONTIER_KEY")
            with pytest.raises(openai.APIStatusError) as info:  # the variable is named, never a value
                ask(env, [{"role": "user", "content": "plan the migration of the billing service"}],
                    model="tierwise/frontier")
            assert info.value.status_code == 503 and "TW_TEST_FRONTIER_KEY" in str(info.value.body)
        finally:
            envs.close()


@pytest.mark.parametrize("raw", [b'{"choices": ["not an object"]}', b"not json", b'{"choices": [{"message": 7}]}'])
def test_a_malformed_upstream_answer_fails_the_attempt_not_the_server(env: Env, raw: bytes) -> None:
    env.fake.script(MODELS["small"], Reply(raw=raw))
    r = ask(env, [{"role": "user", "content": MECHANICAL}])
    assert r.headers["x-tierwise-tier"] == "medium" and r.parse().choices[0].message.content == "ok"
