"""The HTTP contract of /v1/route, /v1/policy, /healthz and /metrics; bad input is a 4xx, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MECHANICAL
from prometheus_client.parser import text_string_to_metric_families

from tierwise.service.telemetry.store import open_warehouse

ROUTE_FIELDS = {
    "decision_id", "policy_version", "profile", "profile_scores", "tier", "model", "temperature",
    "max_input_tokens", "max_output_tokens", "output_schema", "escalation_chain", "explored", "propensity",
    "reasons", "latency_ms",
}


def test_route_happy_path_has_every_contract_field(client: Any) -> None:
    r = client.post("/v1/route", json={
        "prompt": MECHANICAL, "files": ["utils.py"], "repo": {"files": 120, "modules_touched": 1,
                                                            "languages": ["python"]},
        "diff_lines": 12, "expected_output": "patch", "tools": ["edit_file"], "harness": "local",
        "task_id": "T-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= ROUTE_FIELDS
    assert len(body["decision_id"]) == 32
    assert body["policy_version"] == "bootstrap"
    assert set(body["profile_scores"]) == {"mechanical", "local", "repository", "agentic"}
    assert sum(body["profile_scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["profile"] == "mechanical"
    assert body["tier"] == "small"
    assert body["model"] == "gpt-5-mini-2025-08-07"
    assert 0.0 <= body["temperature"] <= 0.2
    assert (body["max_input_tokens"], body["max_output_tokens"]) == (128000, 16000)
    assert body["output_schema"]["name"] == "mechanical_patch_v1"
    assert body["output_schema"]["schema"]["type"] == "object"
    assert body["escalation_chain"] == ["medium", "frontier"]
    assert (body["explored"], body["propensity"]) == (False, 1.0)
    assert body["reasons"] and all(isinstance(x, str) and x for x in body["reasons"])
    assert body["latency_ms"] >= 0


def test_minimal_route_request(client: Any) -> None:
    r = client.post("/v1/route", json={"prompt": "x"})
    assert r.status_code == 200, r.text
    assert len(r.json()["escalation_chain"]) <= 2


@pytest.fixture
def restricted_client(make_client: Callable[..., Any], restricted_policy_dict: dict[str, Any],
                      write_policy: Callable[[dict[str, Any]], Any]) -> Any:
    """A client whose policy lets only frontier drive a browser (the default lets every tier)."""
    return make_client(policy_file=write_policy(restricted_policy_dict))


def test_tool_only_frontier_has_routes_to_frontier(restricted_client: Any) -> None:
    body = restricted_client.post("/v1/route", json={"prompt": MECHANICAL, "tools": ["browser"]}).json()
    assert body["tier"] == "frontier"
    assert body["escalation_chain"] == []
    assert body["propensity"] == 1.0


@pytest.mark.parametrize("tools", [
    ["bash"], ["Bash", "Read", "Edit", "Glob", "Grep", "WebFetch", "TodoWrite", "Task"],
    ["execute_bash", "str_replace_editor", "browser", "think", "finish"], ["str_replace_editor", "submit"],
    ["shell", "apply_patch", "update_plan"], ["git", "edit"], ["mcp__github__create_issue", "my-own-tool"],
])
def test_any_harness_tool_names_get_a_decision(client: Any, tools: list[str]) -> None:
    r = client.post("/v1/route", json={"prompt": MECHANICAL, "tools": tools, "harness": "local"})
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == "small"  # the default policy lets every tier drive every capability


def test_unknown_tool_names_are_reported_in_reasons(client: Any) -> None:
    body = client.post("/v1/route", json={"prompt": MECHANICAL, "tools": ["Bash", "frobnicate"]}).json()
    assert "unknown tools (no capability assumed): frobnicate" in body["reasons"]


def test_many_files_make_small_ineligible(client: Any) -> None:
    files = [f"pkg{i % 7}/mod{i}.py" for i in range(450)]  # 450 × 300 tokens > small's 128k budget
    body = client.post("/v1/route", json={"prompt": MECHANICAL, "files": files, "harness": "local"}).json()
    assert body["tier"] == "medium"
    assert any(r.startswith("small excluded") for r in body["reasons"])


def _error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert "Traceback" not in r.text
    err: dict[str, Any] = body["error"]
    return err


def test_no_eligible_tier_is_422_naming_tools(restricted_client: Any) -> None:
    files = [f"f{i}.py" for i in range(600)]  # too much context for frontier, browser for the others
    err = _error(restricted_client.post("/v1/route", json={"prompt": "x", "tools": ["browser"], "files": files}), 422)
    assert err["code"] == "no_eligible_tier"
    assert err["field"] == "tools"


def test_no_eligible_tier_by_context_is_422(client: Any) -> None:
    files = [f"f{i}.py" for i in range(600)]  # 600 × 300 tokens: over every tier's budget
    err = _error(client.post("/v1/route", json={"prompt": "x", "files": files}), 422)
    assert err["code"] == "no_eligible_tier"
    assert err["field"] == "files"
    assert "input tokens" in err["message"]


BAD_ROUTE: list[tuple[str, Any, str | None]] = [
    ("missing prompt", {}, "prompt"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("whitespace prompt", {"prompt": "  \n\t "}, "prompt"),
    ("prompt not a string", {"prompt": 5}, "prompt"),
    ("prompt null", {"prompt": None}, "prompt"),
    ("prompt a list", {"prompt": ["a"]}, "prompt"),
    ("unknown field", {"prompt": "x", "bogus": 1}, "bogus"),
    ("files not a list", {"prompt": "x", "files": "a.py"}, "files"),
    ("file not a string", {"prompt": "x", "files": [1]}, "files.0"),
    ("diff_lines a bool", {"prompt": "x", "diff_lines": True}, "diff_lines"),
    ("diff_lines a string", {"prompt": "x", "diff_lines": "12"}, "diff_lines"),
    ("diff_lines negative", {"prompt": "x", "diff_lines": -1}, "diff_lines"),
    ("diff_lines a float", {"prompt": "x", "diff_lines": 1.5}, "diff_lines"),
    ("repo not an object", {"prompt": "x", "repo": 3}, "repo"),
    ("repo unknown field", {"prompt": "x", "repo": {"lines": 3}}, "repo.lines"),
    ("repo files negative", {"prompt": "x", "repo": {"files": -1}}, "repo.files"),
    ("bad harness", {"prompt": "x", "harness": "dev"}, "harness"),
    ("empty tool name", {"prompt": "x", "tools": ["Bash", ""]}, "tools.1"),
    ("tool name with a control character", {"prompt": "x", "tools": ["ba\nsh"]}, "tools.0"),
    ("tool name too long", {"prompt": "x", "tools": ["t" * 129]}, "tools.0"),
    ("too many tools", {"prompt": "x", "tools": [f"t{i}" for i in range(257)]}, "tools"),
    ("tools not a list", {"prompt": "x", "tools": "shell"}, "tools"),
    ("bad expected_output", {"prompt": "x", "expected_output": "diff"}, "expected_output"),
    ("task_id too long", {"prompt": "x", "task_id": "t" * 201}, "task_id"),
    ("body a list", [1, 2], None),
    ("body a string", "prompt", None),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in BAD_ROUTE], ids=[n for n, _, _ in BAD_ROUTE])
def test_bad_route_input_is_422_naming_the_field(client: Any, body: Any, field: str | None) -> None:
    err = _error(client.post("/v1/route", json=body), 422)
    assert err["code"] == "invalid_input"
    assert err["field"] == field
    if field is not None:
        assert field in err["message"]


@pytest.mark.parametrize("raw", [b"{bad", b"{\"prompt\": \"x\",}", b"\xff\xfe"])
def test_invalid_json_is_400(client: Any, raw: bytes) -> None:
    err = _error(client.post("/v1/route", content=raw, headers={"content-type": "application/json"}), 400)
    assert err["code"] == "invalid_json"


def test_lone_surrogate_is_refused_not_a_500(client: Any) -> None:
    raw = b'{"prompt": "fix \\ud800 this"}'
    err = _error(client.post("/v1/route", content=raw, headers={"content-type": "application/json"}), 422)
    assert err["field"] == "prompt"


def test_oversize_prompt_and_too_many_files(make_client: Callable[..., Any]) -> None:
    client = make_client(max_prompt_chars=100, max_files=3)
    err = _error(client.post("/v1/route", json={"prompt": "x" * 101}), 422)
    assert err["field"] == "prompt"
    assert "100" in err["message"]
    assert client.post("/v1/route", json={"prompt": "x" * 100}).status_code == 200
    err = _error(client.post("/v1/route", json={"prompt": "x", "files": ["a", "b", "c", "d"]}), 422)
    assert err["field"] == "files"
    assert client.post("/v1/route", json={"prompt": "x", "files": ["a", "b", "c"]}).status_code == 200
    # A body far beyond every bound is refused before it is parsed.
    err = _error(client.post("/v1/route", json={"prompt": "x" * 2_000_000}), 413)
    assert err["code"] == "payload_too_large"


def test_unknown_path_and_method_are_json_errors(client: Any) -> None:
    assert _error(client.get("/v1/nope"), 404)["code"] == "http_error"
    assert _error(client.get("/v1/route"), 405)["code"] == "http_error"


def test_policy_endpoint(client: Any) -> None:
    body = client.get("/v1/policy").json()
    assert body["version"] == "bootstrap"
    assert body["source"].startswith("file:")
    assert time.strptime(body["loaded_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert body["policy"]["ladder"] == ["small", "medium", "frontier"]
    # the JSON schema is served under its wire name, so the document re-validates as a policy
    assert "schema" in body["policy"]["output_schemas"]["local"]
    from tierwise.service.policy.model import parse_policy

    assert parse_policy(body["policy"]).version == "bootstrap"


def test_healthz_and_openapi(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "causes": [], "policy_version": "bootstrap",
                                             "dependencies": {"journal": "ok", "segments": "ok", "registry": "off"}}
    doc = client.get("/openapi.json").json()
    assert {"/v1/route", "/v1/outcomes", "/v1/queue", "/v1/policy"} <= set(doc["paths"])


def test_openapi_documents_every_response(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ok = op["responses"]["200"]["content"]
            if path == "/metrics":
                continue
            ref = ok["application/json"]["schema"].get("$ref", "")
            assert ref.startswith("#/components/schemas/") and ref.endswith("Out"), (method, path, ok)
            # which statuses each route documents: tests/test_contract.py
            for status in set(op["responses"]) - {"200"}:
                err = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert err == "#/components/schemas/ErrorOut", (method, path, status)
    route = doc["components"]["schemas"]["RouteOut"]
    assert {"decision_id", "profile", "unsure", "tier", "escalation_chain", "reasons"} <= set(route["required"])


def test_the_client_validates_into_the_servers_models(client: Any) -> None:
    from tierwise.service.api.responses import RouteOut

    body = client.post("/v1/route", json={"prompt": MECHANICAL}).json()
    d = RouteOut.model_validate(body)
    assert d.output_schema.json_schema == body["output_schema"]["schema"]
    assert d.model_dump(by_alias=True, exclude_unset=True) == body


def _samples(text: str, name: str) -> list[Any]:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def test_metrics_count_routes_and_histogram_latency_by_tier_and_profile(restricted_client: Any) -> None:
    client = restricted_client
    for _ in range(3):
        assert client.post("/v1/route", json={"prompt": MECHANICAL, "harness": "local"}).status_code == 200
    assert client.post("/v1/route", json={"prompt": MECHANICAL, "harness": "local",
                                          "tools": ["browser"]}).status_code == 200
    assert client.post("/v1/route", json={"prompt": ""}).status_code == 422  # not counted
    text = client.get("/metrics").text
    routes = {(s.labels["tier"], s.labels["profile"], s.labels["harness"]): s.value
              for s in _samples(text, "tierwise_routes_total")}
    assert routes == {("small", "mechanical", "local"): 3.0, ("frontier", "mechanical", "local"): 1.0}
    counts = {(s.labels["tier"], s.labels["profile"]): s.value
              for s in _samples(text, "tierwise_route_latency_seconds_count")}
    assert counts == {("small", "mechanical"): 3.0, ("frontier", "mechanical"): 1.0}
    buckets = [s for s in _samples(text, "tierwise_route_latency_seconds_bucket")
               if s.labels["tier"] == "small"]
    assert len(buckets) > 5
    assert max(b.value for b in buckets if b.labels["le"] == "+Inf") == 3.0
    active = _samples(text, "tierwise_policy_active")
    assert [(s.labels["version"], s.value) for s in active] == [("bootstrap", 1.0)]


DECISION_COLUMNS = {
    "decision_id", "ts", "policy_version", "harness", "task_id", "prompt_preview", "prompt_tokens", "n_files",
    "tools", "features", "profile", "profile_scores", "complexity", "tier_scores", "eligible", "tier",
    "tier_rank", "ladder_size", "greedy_tier", "model", "temperature", "explored", "propensity",
    "escalation_chain", "reasons", "latency_ms",
}


def test_decisions_are_readable_in_duckdb_while_the_app_runs(client: Any, settings: Any) -> None:
    ids = []
    for i in range(5):
        r = client.post("/v1/route", json={"prompt": f"{MECHANICAL} #{i}", "task_id": f"T{i}",
                                           "tools": ["edit_file"], "harness": "local"})
        ids.append(r.json()["decision_id"])
    wh = open_warehouse(settings.home)
    try:
        df = wh.df("SELECT * FROM decisions WHERE decision_id IS NOT NULL ORDER BY task_id")
        assert set(df.columns) >= DECISION_COLUMNS
        assert sorted(df["decision_id"]) == sorted(ids)
        assert list(df["task_id"]) == [f"T{i}" for i in range(5)]
        assert set(df["tier"]) == {"small"}
        assert set(df["policy_version"]) == {"bootstrap"}
        assert list(df["tier_rank"]) == [0] * 5 and list(df["ladder_size"]) == [3] * 5
        assert json.loads(df["tools"][0]) == ["edit_file"]
        assert json.loads(df["eligible"][0]) == ["small", "medium", "frontier"]
        ep = wh.df("SELECT count(*) AS n, sum(CAST(has_outcome AS INT)) AS o FROM episodes")
        assert (int(ep["n"][0]), int(ep["o"][0])) == (5, 0)
    finally:
        wh.close()
    # the service is still serving after a reader opened the warehouse
    assert client.post("/v1/route", json={"prompt": "x"}).status_code == 200


def test_background_export_writes_segments(client: Any, settings: Any) -> None:
    client.post("/v1/route", json={"prompt": MECHANICAL})
    seg = settings.home / "telemetry" / "segments" / "decisions"
    deadline = time.time() + 5
    while time.time() < deadline and not [p for p in seg.glob("*.parquet") if not p.name.startswith("0000000000"
                                                                                                       "00-")]:
        time.sleep(0.05)
    assert [p for p in seg.glob("*.parquet") if not p.name.startswith("000000000000-")]


def test_registry_mode_serves_the_bootstrap_champion(make_client: Callable[..., Any], settings: Any) -> None:
    """The default production path: an empty MLflow registry under the home gets the bootstrap policy
    as version 1 and champion, and every decision records that version."""
    client = make_client(use_registry=True, poll_seconds=30)
    body = client.get("/v1/policy").json()
    assert body["version"] == "1"
    assert body["source"] == "registry:tierwise-policy@champion"
    assert (settings.home / "mlflow" / "mlflow.db").exists()
    assert (settings.home / "policy" / "last_good.json").exists()
    d = client.post("/v1/route", json={"prompt": MECHANICAL, "harness": "local"}).json()
    assert d["policy_version"] == "1"
    out = client.post("/v1/outcomes", json={"decision_id": d["decision_id"], "attempt": 0, "tier": d["tier"],
                                            "resolved": True, "cost_usd": 0.001}).json()
    assert out["next"] == {"action": "done"}


@pytest.mark.parametrize(("error", "status"), [
    ("RegistryUnavailable", 503), ("ConfigError", 503), ("ArtifactMissing", 503), ("RetuneFailed", 500),
    ("InvalidInput", 422),
])
def test_domain_errors_map_to_their_status_once_at_the_edge(client: Any, monkeypatch: pytest.MonkeyPatch,
                                                             error: str, status: int) -> None:
    from tierwise.service import errors

    def fail(*_: Any, **__: Any) -> None:
        raise getattr(errors, error)("the thing is down", field="registry")

    monkeypatch.setattr(client.app.state.parts.router, "prepare", fail)
    err = _error(client.post("/v1/route", json={"prompt": "x"}), status)
    assert err["message"] == "the thing is down"


def test_an_unexpected_fault_is_a_500_without_a_traceback(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.parts.router, "prepare", fail)
    err = _error(client.post("/v1/route", json={"prompt": "x"}), 500)
    assert err["code"] == "internal" and "secret" not in err["message"]
