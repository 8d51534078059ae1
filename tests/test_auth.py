"""API keys and scopes (``service/keys.py``, ``service/api/auth.py``), the ``keys`` CLI, the serve
guard against an unauthenticated public bind, and redaction of secrets in task previews.

The app is the real one (``create_app``) on a tmp home with the hashing embedder; keys are created
through the real key store or the real CLI, never patched in.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MECHANICAL, bearer, live_server, to_human

from tierwise.service.cli import main
from tierwise.service.errors import ConfigError
from tierwise.service.keys import SCOPES, KeyStore, Scope, check_exposure, grants
from tierwise.service.redact import preview, redact

SECRET = "sk-proj-" + "Q7x9" * 10  # a planted OpenAI-style key
Call = tuple[str, str, dict[str, Any] | None]
# Every protected endpoint, with the scope it needs (admin implies the others).
PROTECTED: dict[str, tuple[Call, Scope]] = {
    "route": (("post", "/v1/route", {"prompt": "x"}), "route"),
    "outcomes": (("post", "/v1/outcomes", {"decision_id": "0" * 32, "attempt": 0, "tier": "small",
                                           "resolved": True, "cost_usd": 0.0}), "report"),
    "queue": (("get", "/v1/queue", None), "admin"),
    "resolve": (("post", "/v1/queue/1/resolve", {"resolved_by": "ana"}), "admin"),
    "policy": (("get", "/v1/policy", None), "admin"),
}


def call(client: Any, c: Call, headers: dict[str, str] | None = None) -> Any:
    method, path, body = c
    if method == "get":
        return client.get(path, headers=headers)
    return client.post(path, json=body, headers=headers)


@pytest.fixture
def keys(settings: Any) -> dict[str, str]:
    """One live key per scope, named after it, created before the app starts."""
    store = KeyStore(settings.keys_file)
    return {scope: store.create((scope,), name=scope)[1] for scope in SCOPES}


@pytest.fixture
def authed(keys: dict[str, str], make_client: Callable[..., Any]) -> Any:
    return make_client()


@pytest.fixture
def in_home(settings: Any, hashing_classifier_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment, pointing at the same home as ``settings``."""
    for key, value in {"TIERWISE_HOME": str(settings.home), "TIERWISE_USE_REGISTRY": "false",
                       "TIERWISE_EMBEDDER": "hashing", "TIERWISE_CLASSIFIER_FILE": str(hashing_classifier_file)
                       }.items():
        monkeypatch.setenv(key, value)
    home: Path = settings.home
    return home


# --- no key configured: unchanged behaviour -------------------------------------------------------

def test_without_any_key_every_endpoint_is_open(client: Any) -> None:
    item = to_human(client, MECHANICAL)
    assert client.get("/v1/queue").status_code == 200
    assert client.get("/v1/policy").status_code == 200
    assert client.post(f"/v1/queue/{item}/resolve", json={"resolved_by": "ana"}).status_code == 200


# --- 401 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer tw_not-a-key-of-this-server-000000000", "Basic dXNlcjpwYXNz",
                                    "Bearer", "Bearer two words", "tw_missing_scheme"])
def test_missing_wrong_or_malformed_key_is_401(authed: Any, endpoint: str, header: str | None) -> None:
    c, _ = PROTECTED[endpoint]
    r = call(authed, c, {"Authorization": header} if header else None)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    err = r.json()["error"]
    assert (err["code"], err["field"]) == ("unauthorized", "Authorization")
    credential = (header or "").partition(" ")[2]
    if credential:
        assert credential not in err["message"]  # the credential is never echoed


def test_auth_is_checked_before_the_body_is_validated(authed: Any) -> None:
    r = authed.post("/v1/route", json={"prompt": 12})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")


# --- 403 and the scopes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "scope"), [(e, s) for e, (_, need) in PROTECTED.items() for s in SCOPES
                                                 if not grants((s,), need)])
def test_a_key_without_the_scope_is_403_naming_it(authed: Any, keys: dict[str, str], endpoint: str,
                                                  scope: Scope) -> None:
    c, needed = PROTECTED[endpoint]
    r = call(authed, c, bearer(keys[scope]))
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "forbidden"
    assert f"'{needed}' scope" in err["message"]
    assert "www-authenticate" not in r.headers


def test_the_right_scope_walks_the_whole_loop(authed: Any, keys: dict[str, str]) -> None:
    r = authed.post("/v1/route", json={"prompt": MECHANICAL, "harness": "local"}, headers=bearer(keys["route"]))
    assert r.status_code == 200, r.text
    r = authed.post("/v1/outcomes", headers=bearer(keys["report"]), json={
        "decision_id": r.json()["decision_id"], "attempt": 0, "tier": r.json()["tier"], "resolved": False,
        "cost_usd": 0.01, "failure": "timeout"})
    assert r.status_code == 200, r.text
    assert authed.get("/v1/queue", headers=bearer(keys["admin"])).status_code == 200
    assert authed.get("/v1/policy", headers=bearer(keys["admin"])).json()["version"] == "bootstrap"


def test_admin_implies_every_scope(authed: Any, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    item = to_human(authed, MECHANICAL, admin)  # route + outcomes
    assert authed.post(f"/v1/queue/{item}/resolve", json={"resolved_by": "ana"}, headers=admin).status_code == 200
    # A key may hold several scopes.
    both = KeyStore(authed.app.state.settings.keys_file).create(("route", "report"))[1]
    assert to_human(authed, MECHANICAL, bearer(both)) > item
    assert authed.get("/v1/queue", headers=bearer(both)).status_code == 403


def test_health_and_metrics_stay_open_and_metrics_carry_no_task_text(authed: Any, keys: dict[str, str]) -> None:
    marker = "zanzibarquux"
    r = authed.post("/v1/route", json={"prompt": f"rename {marker} {SECRET}"}, headers=bearer(keys["route"]))
    assert r.status_code == 200
    assert authed.get("/healthz").status_code == 200
    m = authed.get("/metrics")
    assert m.status_code == 200
    assert "tierwise" in m.text
    assert marker not in m.text and SECRET not in m.text


def test_openapi_documents_the_bearer_scheme_and_401_403_on_protected_routes_only(authed: Any) -> None:
    doc = authed.get("/openapi.json").json()
    assert any(s.get("scheme") == "bearer" for s in doc["components"]["securitySchemes"].values())
    for (_, path, _), _scope in PROTECTED.values():
        ops = doc["paths"][path.replace("/1/", "/{item_id}/")]
        for op in ops.values():
            assert {"401", "403"} <= set(op["responses"]), path
            assert op["security"], path
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]
    assert not doc["paths"]["/healthz"]["get"].get("security")


# --- the key file on a running server -------------------------------------------------------------

def test_revoke_takes_effect_on_the_running_server(authed: Any, keys: dict[str, str], in_home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert authed.post("/v1/route", json={"prompt": "x"}, headers=bearer(keys["route"])).status_code == 200
    assert main(["keys", "revoke", "route"]) == 0
    assert "revoked key 'route'" in capsys.readouterr().out
    r = authed.post("/v1/route", json={"prompt": "x"}, headers=bearer(keys["route"]))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    # The other keys are untouched; revoking again names the key that is not live.
    assert authed.get("/v1/policy", headers=bearer(keys["admin"])).status_code == 200
    assert main(["keys", "revoke", "route"]) == 2
    assert "'route'" in capsys.readouterr().err


def test_a_key_created_while_running_turns_auth_on_and_deleting_the_file_does_not_turn_it_off(
        client: Any, settings: Any) -> None:
    assert client.post("/v1/route", json={"prompt": "x"}).status_code == 200
    key = KeyStore(settings.keys_file).create(("route",))[1]
    assert client.post("/v1/route", json={"prompt": "x"}).status_code == 401
    assert client.post("/v1/route", json={"prompt": "x"}, headers=bearer(key)).status_code == 200
    settings.keys_file.unlink()
    assert client.post("/v1/route", json={"prompt": "x"}).status_code == 401
    assert client.post("/v1/route", json={"prompt": "x"}, headers=bearer(key)).status_code == 401


def test_a_corrupt_key_file_fails_closed(authed: Any, keys: dict[str, str], settings: Any) -> None:
    settings.keys_file.write_text("{not json")
    r = authed.post("/v1/route", json={"prompt": "x"}, headers=bearer(keys["route"]))
    assert (r.status_code, r.json()["error"]["code"]) == (503, "config_error")


def test_auth_required_without_any_key_refuses_everything(make_client: Callable[..., Any]) -> None:
    client = make_client(auth="required")
    assert client.post("/v1/route", json={"prompt": "x"}).status_code == 401
    assert client.get("/healthz").status_code == 200


# --- the keys CLI ---------------------------------------------------------------------------------

def test_keys_create_prints_the_key_once_and_stores_only_its_hash(in_home: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--scopes", "report,route", "--name", "ci-bot"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("tw_") and len(key) > 40
    assert "will not be shown again" in err
    path = in_home / "keys.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert key not in text
    [rec] = json.loads(text)["keys"]
    assert (rec["name"], rec["scopes"], rec["revoked"]) == ("ci-bot", ["route", "report"], False)
    assert KeyStore(path).lookup(key) is not None
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci-bot" in listing and "route,report" in listing and rec["id"] in listing
    assert key not in listing and rec["sha256"] not in listing
    assert main(["keys", "create", "--scopes", "admin", "--name", "ci-bot"]) == 2  # names are unique
    assert "--name" in capsys.readouterr().err


@pytest.mark.parametrize("scopes", ["route,bogus", "ROUTE", ","])
def test_keys_create_with_a_bad_scope_exits_2_naming_it(in_home: Path, scopes: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--scopes", scopes]) == 2
    err = capsys.readouterr().err
    assert "[scopes]" in err
    bad = [s for s in scopes.split(",") if s and s not in SCOPES]
    assert all(repr(b) in err for b in bad)
    assert not (in_home / "keys.json").exists()


# --- serve: no key means loopback only ------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_without_keys_may_serve_with_a_warning(host: str) -> None:
    warning = check_exposure(host, keys_exist=False, mode="auto")
    assert warning is not None and "UNAUTHENTICATED" in warning and "tierwise keys create" in warning
    assert check_exposure(host, keys_exist=True, mode="auto") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "router.internal", ""])
def test_a_public_bind_without_keys_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="tierwise keys create --scopes admin"):
        check_exposure(host, keys_exist=False, mode="auto")
    assert check_exposure(host, keys_exist=True, mode="auto") is None


def test_auth_required_without_keys_is_refused_even_on_loopback() -> None:
    with pytest.raises(ConfigError, match="TIERWISE_AUTH=required"):
        check_exposure("127.0.0.1", keys_exist=False, mode="required")


def test_serve_on_0000_without_keys_exits_2_before_loading_anything(in_home: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err and "tierwise keys create --scopes admin" in err


def test_serve_on_loopback_without_keys_logs_a_warning(in_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    # A missing classifier makes serve stop right after the guard, before it would bind a port.
    monkeypatch.setenv("TIERWISE_CLASSIFIER_FILE", str(tmp_path / "missing.json"))
    caplog.set_level(logging.WARNING)
    assert main(["serve", "--host", "127.0.0.1"]) == 2
    [warning] = [r for r in caplog.records if "UNAUTHENTICATED" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    caplog.clear()
    KeyStore(in_home / "keys.json").create(("admin",))
    assert main(["serve", "--host", "0.0.0.0"]) == 2  # past the guard: the classifier is what fails
    assert not [r for r in caplog.records if "UNAUTHENTICATED" in r.getMessage()]


# --- secrets never leak ---------------------------------------------------------------------------

def test_keys_never_reach_logs_or_responses(authed: Any, keys: dict[str, str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stranger = "tw_" + "s" * 43
    bodies = [call(authed, c, bearer(key)).text for (c, _) in PROTECTED.values() for key in [*keys.values(), stranger]]
    for key in [*keys.values(), stranger]:
        assert key not in caplog.text
        assert not any(key in body for body in bodies)


def test_queue_previews_redact_a_planted_secret(authed: Any, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    to_human(authed, f"{MECHANICAL}; the CI uses OPENAI_API_KEY={SECRET} and Authorization: Bearer abcdef123456",
             admin)
    [item] = authed.get("/v1/queue", headers=admin).json()["items"]
    shown = item["prompt_preview"]
    assert shown.startswith("rename the helper")
    assert SECRET not in shown and SECRET[8:20] not in shown and "abcdef123456" not in shown
    assert "[REDACTED]" in shown
    # Redacted before it is stored, not only on the way out.
    stored = authed.app.state.parts.store.journal.fetch_all("SELECT prompt_preview FROM decisions")
    assert stored and all(SECRET[8:20] not in (r["prompt_preview"] or "") for r in stored)


# --- the redaction patterns -----------------------------------------------------------------------

@pytest.mark.parametrize("secret", [
    SECRET, "sk-ant-api03-" + "a1B2" * 20, "sk-" + "A" * 48, "ghp_" + "x" * 36, "github_pat_11AB" + "c" * 70,
    "xoxb-1234567890-" + "z" * 24, "AKIAIOSFODNN7EXAMPLE", "AIza" + "Sy" + "b" * 33, "tw_" + "k" * 43,
])
def test_token_shapes_are_redacted(secret: str) -> None:
    out = redact(f"use {secret} here")
    assert secret not in out and out == "use [REDACTED] here"


@pytest.mark.parametrize(("text", "gone"), [
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
    ("api_key=hunter2hunter2", "hunter2"),
    ('{"password": "correct horse"}', "correct"),
    ("DB_PASSWORD = 's3cr3t!'", "s3cr3t"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE", "b3BlbnNzaC1rZXktdjE"),  # cut short
])
def test_credentials_in_context_are_redacted(text: str, gone: str) -> None:
    out = redact(text)
    assert gone not in out and "REDACTED" in out
    assert redact(out) == out


@pytest.mark.parametrize("text", [
    "Rename the helper `fmt_ts` to `format_timestamp` in utils/time.py; no behaviour change",
    "set max_tokens: 4096 and max_output_tokens=16000 for the risk-assessment module",
    "the skeleton key sk-1 is too short to be a secret",
])
def test_ordinary_task_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_secret_that_straddles_the_preview_cut_leaves_no_head() -> None:
    text = "x" * 270 + " " + SECRET
    out = preview(text, 280)
    assert len(out) == 280 and "sk-proj" not in out


# --- the Python client ----------------------------------------------------------------------------

@pytest.fixture
def server_url(keys: dict[str, str], settings: Any) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread."""
    with live_server(settings) as url:
        yield url


def test_the_client_sends_its_api_key(server_url: str, keys: dict[str, str]) -> None:
    from tierwise.service.client import ClientError, TierwiseClient

    with TierwiseClient(server_url, api_key=keys["route"]) as tw:
        assert tw.route(MECHANICAL).tier
        with pytest.raises(ClientError) as info:
            tw.policy()
        assert (info.value.status, info.value.code) == (403, "forbidden")
    with TierwiseClient(server_url) as tw, pytest.raises(ClientError) as info:
        tw.route(MECHANICAL)
    assert (info.value.status, info.value.code, info.value.field) == (401, "unauthorized", "Authorization")
