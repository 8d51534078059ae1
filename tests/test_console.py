"""The operator console (``service/ui/``): sign-in, sessions, CSRF, the human queue page and its
forms, the overview. One real app per module (``create_app``) on a tmp home with the hashing
embedder; keys come from the real key store; queue items are made through the real API.

Policy pages against a real MLflow registry are in ``test_console_policy.py``.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENTIC, MECHANICAL, bearer, module_settings, to_human
from fastapi.testclient import TestClient

from tierwise.service.keys import KeyStore
from tierwise.service.ui.session import COOKIE, LIFETIME_S, Signer
from tierwise.service.ui.svg import line_chart

SECRET = "sk-proj-" + "Z3k8" * 10  # a planted OpenAI-style key


@pytest.fixture(scope="module")
def app_keys(tmp_path_factory: pytest.TempPathFactory,
             hashing_classifier_file: Path) -> Iterator[tuple[Any, dict[str, str], Any]]:
    """The app, its keys by name (admin, route, doomed: an admin key a test revokes), its settings."""
    from tierwise.service.api.app import create_app

    with module_settings(tmp_path_factory.mktemp("console") / "home", hashing_classifier_file) as settings:
        store = KeyStore(settings.keys_file)
        keys = {name: store.create((scope,), name=name)[1]
                for name, scope in (("admin", "admin"), ("route", "route"), ("doomed", "admin"))}
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False):  # runs the lifespan
            yield app, keys, settings


@pytest.fixture
def app(app_keys: tuple[Any, dict[str, str], Any]) -> Any:
    return app_keys[0]


@pytest.fixture
def keys(app_keys: tuple[Any, dict[str, str], Any]) -> dict[str, str]:
    return app_keys[1]


def browser(app: Any) -> TestClient:
    """A fresh cookie jar on the running app; redirects are checked, not followed."""
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]*)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def sign_in(app: Any, key: str, next_path: str = "/ui/queue") -> TestClient:
    b = browser(app)
    page = b.get(f"/ui/login?next={next_path}")
    assert page.status_code == 200
    r = b.post("/ui/login", data={"key": key, "csrf": csrf_of(page.text), "next": next_path})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == next_path
    return b


def open_ids(app: Any, key: str) -> set[int]:
    r = browser(app).get("/v1/queue", headers=bearer(key))
    assert r.status_code == 200
    return {i["item_id"] for i in r.json()["items"]}


# --- who may see the console ----------------------------------------------------------------------

def test_without_a_session_a_browser_goes_to_login_and_a_script_gets_401(app: Any) -> None:
    b = browser(app)
    r = b.get("/ui/queue?profile=local")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=/ui/queue%3Fprofile%3Dlocal"
    assert b.get("/ui/queue", headers={"Accept": "application/json"}).status_code == 401
    r = b.get("/ui/queue", headers=bearer("tw_not-a-key-of-this-server-000000000"))
    assert r.status_code == 401
    assert r.json()["error"]["field"] == "Authorization"


def test_sign_in_keeps_the_key_out_of_urls_and_cookies(app: Any, keys: dict[str, str]) -> None:
    b = browser(app)
    page = b.get("/ui/login?next=/ui/queue")
    r = b.post("/ui/login", data={"key": keys["admin"], "csrf": csrf_of(page.text), "next": "/ui/queue"})
    assert r.status_code == 303
    assert keys["admin"] not in r.headers["location"]
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert keys["admin"] not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    q = b.get("/ui/queue")
    assert q.status_code == 200
    assert "Human queue" in q.text and "admin" in q.text  # the key's name, never the key
    assert keys["admin"] not in q.text


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/ui", "/v1/queue"])
def test_sign_in_never_redirects_off_the_console(app: Any, keys: dict[str, str], next_path: str) -> None:
    b = browser(app)
    page = b.get("/ui/login")
    r = b.post("/ui/login", data={"key": keys["admin"], "csrf": csrf_of(page.text), "next": next_path})
    assert r.status_code == 303 and r.headers["location"] == "/ui"


def test_sign_in_is_refused_without_its_csrf_token_or_with_a_bad_key(app: Any, keys: dict[str, str]) -> None:
    b = browser(app)
    b.get("/ui/login")
    r = b.post("/ui/login", data={"key": keys["admin"], "csrf": "forged"})
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    page = b.get("/ui/login")
    r = b.post("/ui/login", data={"key": "tw_wrong-key-000000000000000000000", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "Unknown or revoked API key" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_a_key_without_admin_scope_gets_403(app: Any, keys: dict[str, str]) -> None:
    b = browser(app)
    page = b.get("/ui/login")
    r = b.post("/ui/login", data={"key": keys["route"], "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and "lacks the admin scope" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    r = b.get("/ui/queue", headers=bearer(keys["route"]))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


def test_a_forged_or_expired_session_cookie_is_not_a_session(app: Any, keys: dict[str, str]) -> None:
    b = sign_in(app, keys["admin"])
    real = b.cookies.get(COOKIE)
    assert real
    key_id, expires, nonce, mac = real.split(".")
    for forged in (f"{key_id}.{int(expires) + 10**6}.{nonce}.{mac}", f"{key_id}.{expires}.{nonce}.{'0' * 64}", "x"):
        other = browser(app)
        other.cookies.set(COOKIE, forged, path="/ui")
        assert other.get("/ui/queue").status_code == 303
    signer = Signer(b"k" * 32)
    cookie = signer.issue("abc", now=1000.0)
    assert signer.read(cookie, now=1000.0 + LIFETIME_S - 1) is not None
    assert signer.read(cookie, now=1000.0 + LIFETIME_S + 1) is None


def test_revoking_the_key_ends_its_sessions(app: Any, keys: dict[str, str],
                                            app_keys: tuple[Any, dict[str, str], Any]) -> None:
    b = sign_in(app, keys["doomed"])
    assert b.get("/ui/queue").status_code == 200
    KeyStore(app_keys[2].keys_file).revoke("doomed")
    r = b.get("/ui/queue")
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_console_pages_are_not_in_the_openapi_document(app: Any) -> None:
    paths = browser(app).get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


# --- the queue ------------------------------------------------------------------------------------

def test_the_queue_shows_items_redacted_and_escaped(app: Any, keys: dict[str, str]) -> None:
    api = browser(app)
    item = to_human(api, f"{MECHANICAL} <script>alert(1)</script> with OPENAI_API_KEY={SECRET}", bearer(keys["admin"]))
    html = sign_in(app, keys["admin"]).get("/ui/queue").text
    block = html[html.index(f'id="item-{item}"'):]
    block = block[:block.index("</article>")]
    assert SECRET not in html and "[REDACTED]" in block
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in block
    assert "tests_failed" in block and "small → medium → frontier" in block
    assert "$0.0300" in block  # three failed attempts at $0.01 each


def test_resolving_needs_the_csrf_token_then_takes_the_item_off_the_queue(app: Any, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    item = to_human(browser(app), MECHANICAL, admin)
    b = sign_in(app, keys["admin"])
    token = csrf_of(b.get("/ui/queue").text)
    for bad in ({}, {"csrf": "0" * 40}):
        r = b.post(f"/ui/queue/{item}/resolve", data={"resolved_by": "ana", "note": "n", **bad})
        assert r.status_code == 403 and "CSRF" in r.text
        assert item in open_ids(app, keys["admin"])
    r = b.post(f"/ui/queue/{item}/resolve", data={"resolved_by": "ana", "note": "fixed the import", "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/queue?done=resolved&item={item}"
    assert item not in open_ids(app, keys["admin"])
    page = b.get(r.headers["location"]).text
    assert f"Item {item} resolved." in page and f'id="item-{item}"' not in page
    again = b.post(f"/ui/queue/{item}/resolve", data={"resolved_by": "ana", "csrf": token})
    assert again.status_code == 409 and "already resolved by ana" in again.text


def test_a_blank_resolver_or_unknown_item_gets_a_clear_4xx(app: Any, keys: dict[str, str]) -> None:
    b = sign_in(app, keys["admin"])
    token = csrf_of(b.get("/ui/queue").text)
    r = b.post("/ui/queue/999999/resolve", data={"resolved_by": "ana", "csrf": token})
    assert r.status_code == 404 and "no queue item 999999" in r.text
    r = b.post("/ui/queue/999999/resolve", data={"action": "delete", "csrf": token})
    assert r.status_code == 422 and "<code>action</code>" in r.text
    r = b.post("/ui/queue/1/resolve", content=b'{"resolved_by": "x"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "<code>Content-Type</code>" in r.text
    r = b.post("/ui/queue/abc/resolve", data={"resolved_by": "ana", "csrf": token})
    assert r.status_code == 422 and "<code>item_id</code>" in r.text  # a page, not the API's JSON
    r = b.get("/ui/policy/no!such")
    assert r.status_code == 422 and "<code>version</code>" in r.text


def test_a_script_may_post_the_form_with_bearer_and_no_csrf(app: Any, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    item = to_human(browser(app), MECHANICAL, admin)
    r = browser(app).post(f"/ui/queue/{item}/resolve", data={"resolved_by": "bot"}, headers=admin)
    assert r.status_code == 303
    assert item not in open_ids(app, keys["admin"])


def test_handing_to_a_script_closes_the_item_with_the_script_named(app: Any, keys: dict[str, str],
                                                                   app_keys: tuple[Any, dict[str, str], Any]) -> None:
    settings = app_keys[2]
    item = to_human(browser(app), MECHANICAL, bearer(keys["admin"]))
    b = sign_in(app, keys["admin"])
    token = csrf_of(b.get("/ui/queue").text)
    r = b.post(f"/ui/queue/{item}/resolve", data={"action": "script", "script": "/bin/rm", "csrf": token})
    assert r.status_code == 422 and "<code>script</code>" in r.text
    assert item in open_ids(app, keys["admin"])
    script = settings.scripts[0]
    r = b.post(f"/ui/queue/{item}/resolve", data={"action": "script", "script": script, "note": "rename",
                                                 "csrf": token})
    assert r.status_code == 303
    assert item not in open_ids(app, keys["admin"])
    with sqlite3.connect(settings.telemetry_dir / "journal.sqlite") as conn:
        by, note = conn.execute("SELECT resolved_by, note FROM queue_resolutions WHERE item_id = ?",
                                (item,)).fetchone()
    assert (by, note) == ("admin", f"handed to script {script}: rename")


def test_filters_and_grouping_by_signature(app: Any, keys: dict[str, str]) -> None:
    api, admin = browser(app), bearer(keys["admin"])
    timeouts = [to_human(api, f"{MECHANICAL} #{n}", admin, harness="ci", failure="timeout") for n in range(2)]
    refused = to_human(api, AGENTIC, admin, harness="prod", failure="refused")
    b = sign_in(app, keys["admin"])

    def shown(query: str) -> set[int]:
        r = b.get(f"/ui/queue?{query}")
        assert r.status_code == 200, r.text
        return {int(i) for i in re.findall(r'id="item-(\d+)"', r.text)}

    assert set(timeouts) <= shown("harness=ci") and refused not in shown("harness=ci")
    assert shown("failure=refused") == {refused}
    assert shown("harness=prod&failure=timeout") == set()
    # Grouped, one row per signature with its count: as the API's items say it should be.
    items = browser(app).get("/v1/queue", headers=admin).json()["items"]
    expected = Counter((i["profile"], " → ".join(i["tiers_tried"]), ", ".join(i["failure_kinds"]))
                       for i in items if "timeout" in i["failure_kinds"])
    html = b.get("/ui/queue?failure=timeout&group=signature").text
    rows = re.findall(r"<tr>\s*<td class=\"num\"><strong>(\d+)</strong></td>\s*<td>(\w+)</td>\s*<td>([^<]*)</td>"
                      r"\s*<td>([^<]*)</td>", html)
    assert Counter({(p, t, f): int(n) for n, p, t, f in rows}) == expected
    assert sum(expected.values()) >= 2
    for bad, field in (("profile=nope", "profile"), ("harness=ci&failure=exploded", "failure"), ("group=x", "group")):
        r = b.get(f"/ui/queue?{bad}")
        assert r.status_code == 422 and f"<code>{field}</code>" in r.text


# --- overview -------------------------------------------------------------------------------------

def test_overview_shows_what_serves_kpis_and_plots(app: Any, keys: dict[str, str]) -> None:
    to_human(browser(app), MECHANICAL, bearer(keys["admin"]))
    html = sign_in(app, keys["admin"], "/ui").get("/ui").text
    assert "policy <a href=\"/ui/policy/bootstrap\">bootstrap</a>" in html
    assert "TIERWISE_USE_REGISTRY=false" in html  # no registry: said, not a crash
    assert "<svg" in html and "Rates by day" in html
    kpis = html[html.index("By policy version"):]
    assert re.search(r"<td><a href=\"/ui/policy/bootstrap\">bootstrap</a></td>\s*<td class=\"num\">\d+</td>", kpis)


def test_the_policy_page_without_a_registry_shows_the_served_file(app: Any, keys: dict[str, str]) -> None:
    b = sign_in(app, keys["admin"], "/ui")
    r = b.get("/ui/policy")
    assert r.status_code == 303 and r.headers["location"] == "/ui/policy/bootstrap"
    html = b.get("/ui/policy/bootstrap").text
    assert "Thresholds" in html and "Ladder" in html and "TIERWISE_USE_REGISTRY=false" in html
    assert "Promote" not in html  # nothing to promote without a registry
    r = b.get("/ui/policy/7")
    assert r.status_code == 503 and "TIERWISE_USE_REGISTRY=false" in r.text


def test_svg_labels_are_escaped() -> None:
    svg = str(line_chart("<b>t</b>", ["<x>"], {"<s>": [1.0]}))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "&lt;x&gt;" in svg and "&lt;s&gt;" in svg
    assert "no data yet" in str(line_chart("empty", [], {}))


def test_an_unreachable_registry_is_a_message_not_an_empty_registry(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tierwise.service.settings import load_settings
    from tierwise.service.ui import overview
    from tierwise.service.ui.console import Console

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    console = Console(load_settings(home=tmp_path, registry_uri="http://127.0.0.1:9/"))  # nothing listens
    view = overview.guarded(lambda: overview.registry_view(console.registry(), None),
                            lambda m: overview.RegistryView(error=m), "policy registry")
    assert view.rows == [] and view.error and view.error.startswith("policy registry unavailable")
