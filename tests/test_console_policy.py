"""The console's policy pages and overview against a real MLflow registry (sqlite in a tmp home):
the diff against the champion, confirmed promote and rollback moving the ``champion`` alias, and
the last retune run with its drift report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import module_settings
from fastapi.testclient import TestClient

from tierwise.service.keys import KeyStore
from tierwise.service.policy.registry import CHAMPION, PolicyRegistry, make_registry

UI = "http://127.0.0.1:5000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, hashing_classifier_file: Path) -> Iterator[dict[str, Any]]:
    """A served registry with version 1 (bootstrap, champion) and version 2 (one threshold moved),
    and one retune run that flagged drift."""
    from tierwise.service.api.app import create_app
    from tierwise.tuner.retune import EXPERIMENT

    with module_settings(tmp_path_factory.mktemp("console-policy") / "home", hashing_classifier_file) as base:
        settings = base.model_copy(update={"use_registry": True, "mlflow_ui_url": UI})
        key = KeyStore(settings.keys_file).create(("admin",), name="ops")[1]
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False):
            reg = make_registry(settings)
            assert reg.alias(CHAMPION) == "1"
            data = json.loads(reg.load("1").canonical_json())
            data["thresholds"]["ci"]["local"] = 0.777
            run = reg.client.create_run(reg.experiment_id(EXPERIMENT), run_name="retune-test")
            rid = run.info.run_id
            version = reg.publish(json.dumps(data), rid, description="retune <b>two</b>")
            reg.client.set_tag(rid, "status", "challenger")
            reg.client.set_tag(rid, "policy_version", version)
            reg.client.log_metric(rid, "drift_flagged", 1.0)
            reg.client.log_dict(rid, {"flagged": True, "drifted": ["complexity", "success:small"], "notes": []},
                                "drift/drift_report.json")
            reg.client.set_terminated(rid)
            yield {"app": app, "key": key, "reg": reg, "version": version, "run_id": rid}


def signed_in(world: dict[str, Any]) -> TestClient:
    b = TestClient(world["app"], raise_server_exceptions=False, follow_redirects=False)
    page = b.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]*)"', page.text)
    assert token
    assert b.post("/ui/login", data={"key": world["key"], "csrf": token.group(1)}).status_code == 303
    return b


def csrf(b: TestClient, path: str) -> str:
    m = re.search(r'name="csrf" value="([^"]*)"', b.get(path).text)
    assert m
    return m.group(1)


def test_the_policy_page_diffs_against_the_champion(world: dict[str, Any]) -> None:
    b = signed_in(world)
    html = b.get(f"/ui/policy/{world['version']}").text
    row = re.search(r'<tr class="changed"><td><code>thresholds\.ci\.local</code></td><td><code>([^<]+)</code></td>'
                    r"\s*<td><code>0\.777</code></td>", html)
    assert row, html
    assert "<code>version</code>" not in html  # differs by construction: not a change
    assert "Promote 2 to champion" in html
    champion = b.get("/ui/policy/1").text
    assert "This version is the champion." in champion and "Roll back" in champion
    r = b.get("/ui/policy/99")
    assert r.status_code == 404 and "<code>version</code>" in r.text


def test_promote_needs_confirmation_and_csrf_then_moves_the_alias_and_rollback_moves_it_back(
        world: dict[str, Any]) -> None:
    b, reg, v = signed_in(world), world["reg"], world["version"]
    reg_: PolicyRegistry = reg
    token = csrf(b, f"/ui/policy/{v}")
    r = b.post(f"/ui/policy/{v}/promote", data={"csrf": token})
    assert r.status_code == 422 and "<code>confirm</code>" in r.text
    r = b.post(f"/ui/policy/{v}/promote", data={"confirm": "yes"})
    assert r.status_code == 403
    assert reg_.alias(CHAMPION) == "1"
    r = b.post(f"/ui/policy/{v}/promote", data={"confirm": "yes", "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/policy/{v}?done=promoted"
    assert reg_.alias(CHAMPION) == v
    assert f"Version {v} is now the champion" in b.get(r.headers["location"]).text
    r = b.post("/ui/policy/rollback", data={"confirm": "yes"})
    assert r.status_code == 403 and reg_.alias(CHAMPION) == v
    r = b.post("/ui/policy/rollback", data={"confirm": "yes", "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/policy/1?done=rolledback"
    assert reg_.alias(CHAMPION) == "1"


def test_overview_lists_versions_links_runs_and_shows_the_last_retune(world: dict[str, Any]) -> None:
    html = signed_in(world).get("/ui").text
    assert '<a href="/ui/policy/1">1</a>' in html and '<a href="/ui/policy/2">2</a>' in html
    assert 'class="tag champion"' in html
    assert "retune &lt;b&gt;two&lt;/b&gt;" in html  # a description is escaped
    run = world["run_id"]
    assert re.search(rf'href="{re.escape(UI)}/#/experiments/\d+/runs/{run}"', html)
    retune = html[html.index("Last retune"):html.index("Policy versions")]
    assert "challenger" in retune and "flagged" in retune and "complexity, success:small" in retune
