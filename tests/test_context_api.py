"""``POST /v1/context``: the contract, the tier's budget from the policy, and hostile input as a
4xx that names the field (never a 500)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MECHANICAL
from context_sample import FILES, TASK

from tierwise.service.context.tokens import WordPieceCounter

BODY_FILES = [{"path": p, "content": t} for p, t in FILES.items()]


def ask(client: Any, **body: Any) -> Any:
    return client.post("/v1/context", json={"task": TASK, "files": BODY_FILES, **body})


def test_packs_for_a_tier_under_its_policy_budget(client: Any) -> None:
    r = ask(client, tier="small", commits=[{"sha": "abc123", "message": "discount: name the maximum",
                                            "files": ["shop/pricing.py"]}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["budget"], body["tier"], body["strategy"]) == (8000, "small", "focused")
    assert body["counter"] == "minilm-wordpiece" and 0 < body["margin"] < 1
    assert body["included"][0] == {"path": "shop/pricing.py", "mode": "full",
                                   "tokens": body["included"][0]["tokens"]}
    assert body["tokens"] == WordPieceCounter().count(body["context"]) <= body["budget"]
    paths = [i["path"] for i in body["included"]] + [d["path"] for d in body["dropped"]]
    assert sorted(paths) == sorted(FILES)


def test_max_tokens_tightens_the_budget_and_larger_tiers_get_a_map(client: Any) -> None:
    small = ask(client, tier="small", max_tokens=60).json()
    assert small["budget"] == 60 and small["tokens"] <= 60
    frontier = ask(client, tier="frontier").json()
    assert (frontier["budget"], frontier["strategy"]) == (100_000, "map")
    assert len(frontier["included"]) > len(small["included"])


def test_a_decision_id_packs_for_the_tier_that_decision_chose(client: Any) -> None:
    decision = client.post("/v1/route", json={"prompt": MECHANICAL}).json()
    r = ask(client, decision_id=decision["decision_id"])
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == decision["tier"]


def test_packing_is_logged_without_the_content(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="tierwise.context")
    assert ask(client, tier="small").status_code == 200
    line = next(r.getMessage() for r in caplog.records if r.name == "tierwise.context")
    logged = json.loads(line.removeprefix("context "))
    assert logged["included"][0]["path"] == "shop/pricing.py" and logged["tier"] == "small"
    assert "round_cents(price" not in line


def _err(r: Any, status: int, field: str | None) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field, r.json()


@pytest.mark.parametrize(("body", "field"), [
    ({"tier": "small", "files": [{"path": "../etc/passwd", "content": "x"}]}, "files.0.path"),
    ({"tier": "small", "files": [{"path": "a/../../b.py", "content": "x"}]}, "files.0.path"),
    ({"tier": "small", "files": [{"path": "/etc/passwd", "content": "x"}]}, "files.0.path"),
    ({"tier": "small", "files": [{"path": "C:/x.py", "content": "x"}]}, "files.0.path"),
    ({"tier": "small", "files": [{"path": "ok.py", "content": "x"}, {"path": "bin.so", "content": "\x7fELF\x00\x01"}]},
     "files.1.content"),
    ({"tier": "small", "files": [{"path": "a.py", "content": "x"}, {"path": "a.py", "content": "y"}]}, "files.1.path"),
    ({"tier": "small", "files": [{"path": "a.py"}]}, "files.0.content"),
    ({"tier": "small", "files": "a.py"}, "files"),
    ({"tier": "small", "files": [], "task": "   "}, "task"),
    ({"tier": "small", "max_tokens": 0}, "max_tokens"),
    ({"tier": "small", "max_tokens": 1.5}, "max_tokens"),
    ({"tier": "galactic"}, "tier"),
    ({}, "tier"),
    ({"tier": "small", "decision_id": "abc"}, "tier"),
    ({"tier": "small", "commits": [{"sha": "zz; rm", "message": "m"}]}, "commits.0.sha"),
    ({"tier": "small", "commits": [{"sha": "abc", "files": ["../x"]}]}, "commits.0.files.0"),
])
def test_bad_input_is_a_422_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    _err(client.post("/v1/context", json={"task": TASK, "files": BODY_FILES, **body}), 422, field)


def test_an_unknown_decision_is_a_404(client: Any) -> None:
    _err(ask(client, decision_id="f" * 32), 404, "decision_id")


def test_settings_bound_file_count_and_sizes(make_client: Callable[..., Any]) -> None:
    client = make_client(context_max_files=3, context_max_file_bytes=500, context_max_bytes=900)
    _err(ask(client, tier="small"), 422, "files")  # ten files, three allowed
    big = [{"path": "a.py", "content": "x" * 501}]
    _err(client.post("/v1/context", json={"task": TASK, "tier": "small", "files": big}), 422, "files.0.content")
    many = [{"path": f"m{i}.py", "content": "y" * 400} for i in range(3)]
    _err(client.post("/v1/context", json={"task": TASK, "tier": "small", "files": many}), 422, "files")


def test_a_body_past_the_context_limit_is_a_413_before_parsing(make_client: Callable[..., Any]) -> None:
    client = make_client(context_max_files=2, context_max_bytes=1_000)
    r = client.post("/v1/context", json={"task": TASK, "tier": "small",
                                         "files": [{"path": "a.py", "content": "z" * 2_000_000}]})
    assert r.status_code == 413, r.text


def test_more_files_than_the_ceiling_is_one_422(client: Any) -> None:
    files = [{"path": "a.py", "content": ""}] * 20_001
    _err(client.post("/v1/context", json={"task": TASK, "tier": "small", "files": files}), 422, "files")


def test_the_route_is_in_openapi_with_its_response_model(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/context"]["post"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ContextOut")
    assert {"422", "413", "404"} <= set(op["responses"])
