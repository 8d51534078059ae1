"""Outcomes: next step (done / escalate / human / script), the human queue, idempotency, conflicts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MECHANICAL, live_server

from tierwise.service.telemetry.store import open_warehouse


@pytest.fixture
def client(make_client: Callable[..., Any], restricted_policy_dict: dict[str, Any],
           write_policy: Callable[[dict[str, Any]], Path]) -> Any:
    """Only frontier drives a browser here, so ``tools=["browser"]`` starts a task at the top tier."""
    return make_client(policy_file=write_policy(restricted_policy_dict))

LADDER = ["small", "medium", "frontier"]
VALID_OUTPUT = {"summary": "renamed get_usr", "patch": "--- a/utils.py\n+++ b/utils.py\n"}


def route(client: Any, **extra: Any) -> dict[str, Any]:
    body = {"prompt": MECHANICAL, "harness": "local", **extra}
    r = client.post("/v1/route", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def report(client: Any, decision_id: str, attempt: int, tier: str, *, status: int = 200,
           **extra: Any) -> dict[str, Any]:
    body = {"decision_id": decision_id, "attempt": attempt, "tier": tier, "resolved": False,
            "cost_usd": 0.01, "latency_ms": 100.0, **extra}
    r = client.post("/v1/outcomes", json=body)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    out: dict[str, Any] = r.json()
    return out


def attempts_rows(client: Any, decision_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.app.state.parts.store.journal.attempts(decision_id)
    return rows


def test_resolved_is_done(client: Any) -> None:
    d = route(client)
    assert d["tier"] == "small"
    out = report(client, d["decision_id"], 0, "small", resolved=True, cost_usd=0.002)
    assert out["next"] == {"action": "done"}
    assert out["resolved"] is True and out["failure"] is None
    [row] = attempts_rows(client, d["decision_id"])
    assert (row["resolved"], row["cost_usd"], row["next_action"]) == (1, 0.002, "done")
    # the decision is closed now: a further attempt is out of sequence
    err = report(client, d["decision_id"], 1, "medium", status=409)["error"]
    assert err["field"] == "attempt"


def test_failure_escalates_with_the_next_tiers_full_plan(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", failure="tests_failed")
    nxt = out["next"]
    assert nxt["action"] == "escalate"
    assert (nxt["attempt"], nxt["tier"], nxt["model"]) == (1, "medium", "claude-sonnet-4-5-20250929")
    assert nxt["temperature"] == d["temperature"]  # same profile, same temperature
    assert (nxt["max_input_tokens"], nxt["max_output_tokens"]) == (160000, 32000)
    assert nxt["output_schema"] == d["output_schema"]
    assert nxt["escalation_chain"] == ["frontier"]
    assert out["failure"] == "tests_failed"


def test_escalation_climbs_at_most_twice_never_retries_then_human(client: Any) -> None:
    d = route(client, task_id="JIRA-9")
    tier, attempt, tried, kinds = d["tier"], 0, [], ["tests_failed", "timeout", "refused"]
    while True:
        tried.append(tier)
        out = report(client, d["decision_id"], attempt, tier, failure=kinds[attempt])
        nxt = out["next"]
        if nxt["action"] != "escalate":
            break
        assert nxt["tier"] not in tried
        assert LADDER.index(nxt["tier"]) > LADDER.index(tier)
        tier, attempt = nxt["tier"], nxt["attempt"]
    assert tried == LADDER  # two escalations, three tiers, none twice
    assert nxt["action"] == "human"
    sig = nxt["signature"]
    assert sig == {"profile": "mechanical", "tiers_tried": LADDER, "failure_kinds": kinds,
                   "policy_version": "bootstrap"}
    queue = client.get("/v1/queue").json()
    assert queue["count"] == 1
    [item] = queue["items"]
    assert item["item_id"] == nxt["queue_item_id"]
    assert item["decision_id"] == d["decision_id"]
    assert (item["profile"], item["tiers_tried"], item["failure_kinds"], item["policy_version"]) == (
        "mechanical", LADDER, kinds, "bootstrap")
    assert item["task_id"] == "JIRA-9"
    assert item["prompt_preview"].startswith("rename the helper")


def test_top_tier_failure_goes_straight_to_human(client: Any) -> None:
    d = route(client, tools=["browser"])
    assert (d["tier"], d["escalation_chain"]) == ("frontier", [])
    out = report(client, d["decision_id"], 0, "frontier", failure="timeout")
    assert out["next"]["action"] == "human"
    assert out["next"]["signature"]["tiers_tried"] == ["frontier"]


def test_unresolved_without_a_kind_is_recorded_as_error(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small")
    assert out["failure"] == "error"
    assert attempts_rows(client, d["decision_id"])[0]["failure"] == "error"


def test_resolve_queue_item(client: Any) -> None:
    d = route(client, tools=["browser"])
    item_id = report(client, d["decision_id"], 0, "frontier", failure="refused")["next"]["queue_item_id"]
    r = client.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "ana", "note": "fixed by hand"})
    assert r.status_code == 200, r.text
    assert r.json() == {"item_id": item_id, "resolved_by": "ana", "note": "fixed by hand", "status": "resolved"}
    assert client.get("/v1/queue").json() == {"items": [], "count": 0}
    again = client.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "bob"})
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "item_id"
    assert "ana" in again.json()["error"]["message"]
    unknown = client.post("/v1/queue/424242/resolve", json={"resolved_by": "bob"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "queue_item_not_found"
    bad = client.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": ""})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "resolved_by"
    path = client.post("/v1/queue/abc/resolve", json={"resolved_by": "bob"})
    assert path.status_code == 422 and path.json()["error"]["field"] == "item_id"


def test_a_profile_script_takes_over_from_the_human_queue(make_client: Callable[..., Any],
                                                           restricted_policy_dict: dict[str, Any],
                                                           write_policy: Callable[[dict[str, Any]], Path]) -> None:
    policy_dict = restricted_policy_dict
    policy_dict["escalation"]["scripts"] = {"mechanical": "scripts/codemod_rename.py"}
    client = make_client(policy_file=write_policy(policy_dict))
    d = route(client, tools=["browser"])  # frontier, so the first failure exhausts the chain
    out = report(client, d["decision_id"], 0, "frontier", failure="tests_failed")
    assert out["next"]["action"] == "script"
    assert out["next"]["script"] == "scripts/codemod_rename.py"
    assert out["next"]["signature"]["failure_kinds"] == ["tests_failed"]
    # a script item is not work for a human
    assert client.get("/v1/queue").json()["count"] == 0
    # other profiles still go to the human queue
    d2 = route(client, prompt="x", tools=["browser"])
    if d2["profile"] != "mechanical":
        assert report(client, d2["decision_id"], 0, "frontier")["next"]["action"] == "human"


def test_max_steps_zero_means_no_escalation(make_client: Callable[..., Any], policy_dict: dict[str, Any],
                                            write_policy: Callable[[dict[str, Any]], Path]) -> None:
    policy_dict["escalation"]["max_steps"] = 0
    client = make_client(policy_file=write_policy(policy_dict))
    d = route(client)
    assert d["escalation_chain"] == []
    assert report(client, d["decision_id"], 0, "small")["next"]["action"] == "human"


def test_escalation_ladder_can_skip_a_rung(make_client: Callable[..., Any], policy_dict: dict[str, Any],
                                           write_policy: Callable[[dict[str, Any]], Path]) -> None:
    policy_dict["escalation"]["ladder"] = ["small", "frontier"]
    client = make_client(policy_file=write_policy(policy_dict))
    d = route(client)
    assert d["escalation_chain"] == ["frontier"]
    nxt = report(client, d["decision_id"], 0, "small")["next"]
    assert (nxt["action"], nxt["tier"]) == ("escalate", "frontier")
    assert report(client, d["decision_id"], 1, "frontier")["next"]["action"] == "human"


# --- idempotency and conflicts --------------------------------------------------------------------

def test_same_report_twice_is_stored_once_with_the_same_response(client: Any, settings: Any) -> None:
    d = route(client)
    first = report(client, d["decision_id"], 0, "small", failure="timeout", input_tokens=10, output_tokens=5)
    second = report(client, d["decision_id"], 0, "small", failure="timeout", input_tokens=10, output_tokens=5)
    assert second.pop("duplicate") is True
    assert "duplicate" not in first
    assert second == first
    assert len(attempts_rows(client, d["decision_id"])) == 1
    journal = client.app.state.parts.store.journal
    assert journal.fetch_one("SELECT count(*) AS n FROM escalations WHERE decision_id = ?",
                             (d["decision_id"],)) == {"n": 1}
    # the metric counts one outcome, not two
    text = client.get("/metrics").text
    assert 'tierwise_outcomes_total{next="escalate"} 1.0' in text
    # and the warehouse sees one attempt
    wh = open_warehouse(settings.home)
    try:
        assert wh.df("SELECT count(*) AS n FROM attempts")["n"][0] == 1
    finally:
        wh.close()


def test_conflicting_second_report_is_409(client: Any) -> None:
    d = route(client)
    report(client, d["decision_id"], 0, "small", failure="timeout")
    err = report(client, d["decision_id"], 0, "small", resolved=True, status=409)["error"]
    assert err["code"] == "conflict" and err["field"] == "attempt"
    err = report(client, d["decision_id"], 0, "small", failure="timeout", cost_usd=0.02, status=409)["error"]
    assert err["code"] == "conflict"
    [row] = attempts_rows(client, d["decision_id"])
    assert row["failure"] == "timeout" and row["cost_usd"] == 0.01


def test_unknown_decision_is_404(client: Any) -> None:
    err = report(client, "f" * 32, 0, "small", status=404)["error"]
    assert err["code"] == "decision_not_found" and err["field"] == "decision_id"


def test_out_of_sequence_attempt_is_409(client: Any) -> None:
    d = route(client)
    err = report(client, d["decision_id"], 1, "medium", status=409)["error"]
    assert err["field"] == "attempt" and "sequence" in err["message"]
    report(client, d["decision_id"], 0, "small")
    err = report(client, d["decision_id"], 2, "frontier", status=409)["error"]
    assert err["field"] == "attempt"
    assert attempts_rows(client, d["decision_id"])[-1]["attempt"] == 0


def test_wrong_tier_for_the_attempt_is_409(client: Any) -> None:
    d = route(client)
    err = report(client, d["decision_id"], 0, "medium", status=409)["error"]
    assert err["field"] == "tier" and "small" in err["message"]
    report(client, d["decision_id"], 0, "small")  # escalates to medium
    err = report(client, d["decision_id"], 1, "frontier", status=409)["error"]
    assert err["field"] == "tier" and "medium" in err["message"]
    assert len(attempts_rows(client, d["decision_id"])) == 1


BAD_OUTCOME: list[tuple[str, dict[str, Any], str]] = [
    ("attempt above 2", {"attempt": 3}, "attempt"),
    ("attempt a bool", {"attempt": True}, "attempt"),
    ("attempt a fraction", {"attempt": 0.5}, "attempt"),
    ("resolved a string", {"resolved": "yes"}, "resolved"),
    ("negative cost", {"cost_usd": -1}, "cost_usd"),
    ("cost a string", {"cost_usd": "0.1"}, "cost_usd"),
    ("unknown failure kind", {"failure": "crashed"}, "failure"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("negative tokens", {"input_tokens": -5}, "input_tokens"),
]


@pytest.mark.parametrize(("patch", "field"), [(p, f) for _, p, f in BAD_OUTCOME], ids=[n for n, _, _ in BAD_OUTCOME])
def test_bad_outcome_input_is_422(client: Any, patch: dict[str, Any], field: str) -> None:
    d = route(client)
    body = {"decision_id": d["decision_id"], "attempt": 0, "tier": "small", "resolved": False, "cost_usd": 0.01,
            **patch}
    r = client.post("/v1/outcomes", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == field
    assert attempts_rows(client, d["decision_id"]) == []


def test_missing_required_outcome_fields_are_422(client: Any) -> None:
    r = client.post("/v1/outcomes", json={"decision_id": "x", "attempt": 0, "tier": "small"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] in {"resolved", "cost_usd"}


def test_infinite_latency_is_refused(client: Any) -> None:
    d = route(client)
    raw = (f'{{"decision_id": "{d["decision_id"]}", "attempt": 0, "tier": "small", "resolved": true, '
           f'"cost_usd": 0.1, "latency_ms": Infinity}}')
    r = client.post("/v1/outcomes", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert attempts_rows(client, d["decision_id"]) == []


def test_resolved_with_a_failure_kind_is_contradictory(client: Any) -> None:
    d = route(client)
    err = report(client, d["decision_id"], 0, "small", resolved=True, failure="tests_failed", status=422)["error"]
    assert err["field"] == "failure"


# --- output schemas -------------------------------------------------------------------------------

def test_schema_invalid_output_fails_and_escalates_even_if_claimed_resolved(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", resolved=True, output={"summary": ""})
    assert out["resolved"] is False
    assert out["failure"] == "schema_invalid"
    assert out["schema_valid"] is False
    assert out["schema_errors"] and any("patch" in e for e in out["schema_errors"])
    assert out["next"]["action"] == "escalate" and out["next"]["tier"] == "medium"
    [row] = attempts_rows(client, d["decision_id"])
    assert (row["resolved"], row["claimed_resolved"], row["schema_valid"], row["failure"]) == (
        0, 1, 0, "schema_invalid")


def test_non_object_output_is_schema_invalid(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", resolved=True, output="just text")
    assert out["failure"] == "schema_invalid"


def test_valid_output_is_recorded_valid(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", resolved=True, output=VALID_OUTPUT)
    assert (out["resolved"], out["schema_valid"], out["schema_errors"]) == (True, True, [])
    assert out["next"] == {"action": "done"}
    assert attempts_rows(client, d["decision_id"])[0]["schema_valid"] == 1


def test_no_output_is_not_validated(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", resolved=True)
    assert out["schema_valid"] is None
    assert attempts_rows(client, d["decision_id"])[0]["schema_valid"] is None


# --- overrides ------------------------------------------------------------------------------------

def test_override_is_recorded_and_the_next_step_follows_it(client: Any, settings: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", overridden_to="frontier")
    assert out["overridden_to"] == "frontier"
    assert out["resolved"] is False
    nxt = out["next"]
    assert (nxt["action"], nxt["tier"], nxt["attempt"]) == ("escalate", "frontier", 1)
    assert nxt["model"] == "claude-opus-4-5-20251101"
    assert nxt["escalation_chain"] == []  # nothing above frontier
    [row] = attempts_rows(client, d["decision_id"])
    assert row["overridden_to"] == "frontier"
    journal = client.app.state.parts.store.journal
    esc = journal.fetch_all("SELECT * FROM escalations WHERE decision_id = ?", (d["decision_id"],))
    assert [(e["from_tier"], e["to_tier"], e["cause"]) for e in esc] == [("small", "frontier", "override to frontier")]
    # the next attempt must be on the override's tier
    assert report(client, d["decision_id"], 1, "medium", status=409)["error"]["field"] == "tier"
    # a failure at frontier never falls back down to medium
    final = report(client, d["decision_id"], 1, "frontier", failure="tests_failed")["next"]
    assert final["action"] == "human"
    assert final["signature"]["tiers_tried"] == ["small", "frontier"]
    wh = open_warehouse(settings.home)
    try:
        ep = wh.df("SELECT overridden, first_overridden, n_attempts FROM episodes")
        assert (bool(ep["overridden"][0]), bool(ep["first_overridden"][0]), int(ep["n_attempts"][0])) == (
            True, True, 2)
    finally:
        wh.close()


def test_override_claimed_resolved_still_counts_as_a_misroute(client: Any) -> None:
    d = route(client)
    out = report(client, d["decision_id"], 0, "small", resolved=True, overridden_to="medium")
    assert out["resolved"] is False
    assert out["next"]["tier"] == "medium"


def test_override_to_an_unknown_tier_is_422(client: Any) -> None:
    d = route(client)
    err = report(client, d["decision_id"], 0, "small", overridden_to="gigantic", status=422)["error"]
    assert err["field"] == "overridden_to"
    err = report(client, d["decision_id"], 0, "small", overridden_to="small", status=422)["error"]
    assert err["field"] == "overridden_to"
    assert attempts_rows(client, d["decision_id"]) == []


def test_override_on_the_last_allowed_attempt_goes_to_human(client: Any) -> None:
    d = route(client)
    report(client, d["decision_id"], 0, "small")
    report(client, d["decision_id"], 1, "medium")
    out = report(client, d["decision_id"], 2, "frontier", overridden_to="medium")
    assert out["next"]["action"] == "human"


# --- the typed client, over the same app ----------------------------------------------------------

@pytest.fixture
def server_url(settings: Any) -> Any:
    """A real uvicorn server on a free port, in a thread, for the typed client."""
    with live_server(settings) as url:
        yield url


def test_typed_client_walks_the_loop(server_url: str) -> None:
    from tierwise.service.client import ClientError, TierwiseClient

    with TierwiseClient(server_url) as tw:
        assert tw.health().status == "ok"
        d = tw.route(MECHANICAL, harness="local", task_id="C-1")
        assert (d.tier, d.escalation_chain) == ("small", ["medium", "frontier"])
        step = tw.report(d.decision_id, 0, d.tier, resolved=False, cost_usd=0.01, failure="tests_failed")
        assert (step.action, step.attempt, step.tier) == ("escalate", 1, "medium")
        step = tw.report(d.decision_id, 1, "medium", resolved=True, cost_usd=0.1, output=VALID_OUTPUT)
        assert (step.action, step.resolved) == ("done", True)
        with pytest.raises(ClientError) as info:
            tw.report(d.decision_id, 1, "medium", resolved=False, cost_usd=0.1)
        assert (info.value.status, info.value.code, info.value.field) == (409, "conflict", "attempt")
        with pytest.raises(ClientError) as info:
            tw.route("   ")
        assert (info.value.status, info.value.field) == (422, "prompt")
        assert tw.queue() == []
        assert tw.policy().version == "bootstrap"


def test_typed_client_turns_a_non_json_error_into_a_client_error() -> None:
    import httpx

    from tierwise.service.client import ClientError, TierwiseClient

    transport = httpx.MockTransport(lambda req: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with TierwiseClient("http://proxy", transport=transport) as tw, pytest.raises(ClientError) as info:
        tw.health()
    assert info.value.status == 502
    assert info.value.code == "bad_response"


def test_concurrent_identical_reports_are_stored_once(client: Any) -> None:
    import threading

    d = route(client)
    body = {"decision_id": d["decision_id"], "attempt": 0, "tier": "small", "resolved": False, "cost_usd": 0.1,
            "failure": "timeout"}
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(client.post("/v1/outcomes", json=body)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 8
    assert sorted(bool(r.json().get("duplicate")) for r in results) == [False] + [True] * 7
    assert len(attempts_rows(client, d["decision_id"])) == 1
    assert len({r.json()["next"]["tier"] for r in results}) == 1


def test_outcome_after_a_restart_under_a_policy_without_the_chains_tier(
        make_client: Callable[..., Any], policy_dict: dict[str, Any],
        write_policy: Callable[[dict[str, Any]], Path]) -> None:
    """A decision made under one policy, reported after a restart under a policy that dropped a tier of
    its chain: the escalation skips the missing tier instead of failing."""
    first = make_client()
    d = route(first)
    assert d["escalation_chain"] == ["medium", "frontier"]
    first.__exit__(None, None, None)
    policy_dict["version"] = "renamed"
    policy_dict["tiers"]["mid"] = policy_dict["tiers"].pop("medium")
    policy_dict["ladder"] = ["small", "mid", "frontier"]
    for priors in policy_dict["success_priors"].values():
        priors["mid"] = priors.pop("medium")
    second = make_client(policy_file=write_policy(policy_dict))
    nxt = report(second, d["decision_id"], 0, "small", failure="tests_failed")["next"]
    assert (nxt["action"], nxt["tier"]) == ("escalate", "frontier")


def _raced_recorder(client: Any, settings: Any, rival: Any) -> tuple[Any, list[Any]]:
    """A recorder whose first plan is overtaken: between its unlocked read and its write, a second
    worker (its own connection to the same journal) records ``rival``. Returns it and that
    worker's response (once recorded)."""
    from tierwise.service.outcomes import OutcomeRecorder
    from tierwise.service.telemetry.journal import Journal, connect
    from tierwise.service.telemetry.store import TelemetryPaths

    holder = client.app.state.parts.holder
    other = OutcomeRecorder(Journal(connect(TelemetryPaths(settings.telemetry_dir).journal)), holder)
    seen: list[Any] = []

    class Raced(OutcomeRecorder):
        def _plan(self, *args: Any) -> Any:
            if not seen:
                seen.append(other.record(rival))
            return super()._plan(*args)

    return Raced(client.app.state.parts.store.journal, holder), seen


def test_a_report_overtaken_between_read_and_write_is_read_again(client: Any, settings: Any) -> None:
    """The write lock is not held while the rules run, so the write re-checks the attempts: the
    same report recorded by another worker in between makes this one a duplicate, stored once."""
    from tierwise.service.outcomes import Report

    d = route(client)
    rep = Report(decision_id=d["decision_id"], attempt=0, tier="small", resolved=False, cost_usd=0.1,
                 failure="timeout")
    raced, seen = _raced_recorder(client, settings, rep)
    out = raced.record(rep)
    assert out.pop("duplicate") is True and out == seen[0]
    assert len(attempts_rows(client, d["decision_id"])) == 1
    journal = client.app.state.parts.store.journal
    assert journal.fetch_one("SELECT count(*) AS n FROM escalations WHERE decision_id = ?",
                             (d["decision_id"],)) == {"n": 1}


def test_a_different_report_overtaking_is_a_conflict_not_a_second_row(client: Any, settings: Any) -> None:
    from tierwise.service.errors import OutcomeConflict
    from tierwise.service.outcomes import Report

    d = route(client)
    mine = Report(decision_id=d["decision_id"], attempt=0, tier="small", resolved=True, cost_usd=0.1)
    theirs = Report(decision_id=d["decision_id"], attempt=0, tier="small", resolved=False, cost_usd=0.1,
                    failure="tests_failed")
    raced, _ = _raced_recorder(client, settings, theirs)
    with pytest.raises(OutcomeConflict):
        raced.record(mine)
    [row] = attempts_rows(client, d["decision_id"])
    assert (row["resolved"], row["failure"]) == (0, "tests_failed")
