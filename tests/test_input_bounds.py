"""Issue 13: every request is bounded (size, count, time, range) and its text is cleaned.

The body middleware is tested at the ASGI level with a scripted ``receive`` (chunked, stalled,
disconnected), so no test needs thousands of sockets or a real slow client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MECHANICAL, module_settings, to_human
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from tierwise.service.api.limits import BodyLimit
from tierwise.service.api.schemas import RouteIn
from tierwise.service.errors import ConfigError
from tierwise.service.settings import FILES_CEILING, PROMPT_CHARS_CEILING, load_settings
from tierwise.service.textnorm import clean, is_blank


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, hashing_classifier_file: Path) -> Iterator[Any]:
    """One app for the module: these tests only read bounds, and an app start is seconds here."""
    from fastapi.testclient import TestClient

    from tierwise.service.api.app import create_app

    with (module_settings(tmp_path_factory.mktemp("home"), hashing_classifier_file) as settings,
          TestClient(create_app(settings), raise_server_exceptions=False) as client):
        yield client


def _error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"code", "message", "field"}
    return err


# --- list and string maxima -------------------------------------------------------------------

def test_a_million_files_fail_fast_with_one_error() -> None:
    """pydantic checks a list's length before its items: one error, not one per item."""
    for item in ("a", 1):  # valid items and invalid ones alike
        with pytest.raises(ValidationError) as info:
            RouteIn.model_validate({"prompt": "x", "files": [item] * 1_000_000})
        errors = info.value.errors()
        assert len(errors) == 1
        assert (errors[0]["type"], errors[0]["loc"]) == ("too_long", ("files",))


def test_files_over_the_ceiling_are_one_422_naming_files(api: Any) -> None:
    err = _error(api.post("/v1/route", json={"prompt": "x", "files": ["a"] * (FILES_CEILING + 1)}), 422)
    assert err["field"] == "files"
    assert str(FILES_CEILING) in err["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "x", "files": ["p" * 4097]}, "files.0"),
    ({"prompt": "x", "repo": {"languages": ["l" * 65]}}, "repo.languages.0"),
    ({"prompt": "x", "repo": {"languages": ["python"] * 101}}, "repo.languages"),
    ({"prompt": "x", "task_id": "t" * 201}, "task_id"),
    ({"prompt": "x" * (PROMPT_CHARS_CEILING + 1)}, "prompt"),
], ids=["path", "language", "languages", "task_id", "prompt"])
def test_every_item_is_bounded(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RouteIn.model_validate(body)
    assert [".".join(map(str, e["loc"])) for e in info.value.errors()] == [field]


def test_bounds_at_the_limit_are_accepted() -> None:
    RouteIn.model_validate({"prompt": "x", "files": ["p" * 4096], "task_id": "t" * 200,
                            "repo": {"languages": ["l" * 64] * 100}})


def test_huge_languages_are_refused_over_http(api: Any) -> None:
    err = _error(api.post("/v1/route", json={"prompt": "x", "repo": {"languages": ["x" * 68_000] * 3}}), 422)
    assert err["field"] == "repo.languages.0"


@pytest.mark.parametrize(("body", "field"), [
    ({"input_tokens": 2**63}, "input_tokens"),
    ({"output_tokens": 10**13}, "output_tokens"),
    ({"latency_ms": 1e300}, "latency_ms"),
])
def test_outcome_numbers_are_bounded(api: Any, body: dict[str, Any], field: str) -> None:
    full = {"decision_id": "d" * 32, "attempt": 0, "tier": "small", "resolved": True, "cost_usd": 0.1, **body}
    assert _error(api.post("/v1/outcomes", json=full), 422)["field"] == field


@pytest.mark.parametrize(("setting", "value"), [("max_files", FILES_CEILING + 1),
                                                ("max_prompt_chars", PROMPT_CHARS_CEILING + 1)])
def test_settings_cannot_raise_a_bound_past_the_models_ceiling(setting: str, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**{setting: value})
    assert info.value.field == f"TIERWISE_{setting.upper()}"


# --- path parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("item_id", [2**63, 10**30, 0, -1])
def test_queue_item_id_out_of_range_is_422_naming_it(api: Any, item_id: int) -> None:
    err = _error(api.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "ana"}), 422)
    assert err["field"] == "item_id"


def test_largest_queue_item_id_is_a_404_not_a_500(api: Any) -> None:
    err = _error(api.post(f"/v1/queue/{2**63 - 1}/resolve", json={"resolved_by": "ana"}), 404)
    assert err["code"] == "queue_item_not_found"


# --- text normalisation -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\ufeff \u2060\u200c\u200d", "\x00\x00",
                                  "\x1b[31m\x1b[0m", " \t\n\u3164\u2800 "])
def test_invisible_prompts_are_blank(api: Any, text: str) -> None:
    assert is_blank(clean(text))
    err = _error(api.post("/v1/route", json={"prompt": text}), 422)
    assert (err["field"], err["message"]) == ("prompt", "prompt is blank")


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("fix\x00 the bug", "fix the bug"),
    ("\x1b[31mred\x1b[0m text", "red text"),
    ("title\x1b]0;pwned\x07 here", "title here"),
    ("tabs\tand\nlines\r\n stay", "tabs\tand\nlines\r\n stay"),
    ("c1\x9b2Jcontrol\x85s", "c1controls"),
    ("emoji 👩\u200d💻 keeps its joiner", "emoji 👩\u200d💻 keeps its joiner"),
])
def test_clean_strips_controls_and_escapes_only(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned
    assert not is_blank(cleaned)


def test_request_text_is_cleaned_before_it_is_used() -> None:
    body = RouteIn.model_validate({"prompt": "\x1b[1mrename\x00 x\x1b[0m", "task_id": "T\x00-1\x1b[2J",
                                   "files": ["a\x00.py"], "repo": {"languages": ["py\x1bcthon"]}})
    assert (body.prompt, body.task_id, body.files, body.repo.languages) == ("rename x", "T-1", ["a.py"], ["python"])


def _queue_item(api: Any) -> int:
    """Fail along the whole escalation chain, so the task lands in the human queue."""
    return to_human(api, "\x1b[31m" + MECHANICAL + "\x00")


def test_stored_text_is_echoed_clean(api: Any) -> None:
    item_id = _queue_item(api)
    [item] = [i for i in api.get("/v1/queue").json()["items"] if i["item_id"] == item_id]
    assert item["prompt_preview"] and MECHANICAL.startswith(item["prompt_preview"])  # no escape, no NUL
    assert _error(api.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "\u200b\x00"}), 422)["field"] \
        == "resolved_by"
    r = api.post(f"/v1/queue/{item_id}/resolve", json={"resolved_by": "an\x00a\x1b[2J", "note": "done\x07"})
    assert r.status_code == 200, r.text
    assert (r.json()["resolved_by"], r.json()["note"]) == ("ana", "done")


# --- bodies: JSON depth, size and time ---------------------------------------------------------

def test_deeply_nested_json_is_400_invalid_json(api: Any) -> None:
    raw = b'{"prompt": "x", "files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    err = _error(api.post("/v1/route", content=raw, headers={"content-type": "application/json"}), 400)
    assert err["code"] == "invalid_json"


def test_chunked_body_over_the_limit_is_413(api: Any) -> None:
    """No Content-Length (the client streams chunks): counted as it arrives all the same."""
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(200):
            yield b"x" * 65_536
        yield b'"}'

    err = _error(api.post("/v1/route", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert err["code"] == "payload_too_large"


def test_chunked_body_under_the_limit_is_routed(api: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        yield MECHANICAL.encode()
        yield b'"}'

    r = api.post("/v1/route", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


class _Recorder:
    """An inner ASGI app that records the body it was handed."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        assert not message.get("more_body")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _drive(limit: BodyLimit, messages: list[Message | None], headers: list[tuple[bytes, bytes]] | None = None,
           ) -> tuple[list[Message], int]:
    """Run one request through ``limit``; a ``None`` message stalls ``receive`` for good.
    Returns what was sent and how many times ``receive`` was called."""
    sent: list[Message] = []
    calls = 0

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        message = messages.pop(0) if messages else None
        if message is None:
            await asyncio.Event().wait()  # a client that never sends the rest
        assert message is not None
        return message

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/route", "headers": headers or []}
    asyncio.run(limit(scope, receive, send))
    return sent, calls


def _status(sent: list[Message]) -> int:
    status: int = sent[0]["status"]
    return status


def _chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_middleware_refuses_a_chunked_body_once_it_crosses_the_limit() -> None:
    inner = _Recorder()
    messages: list[Message | None] = [_chunk(b"x" * 600) for _ in range(1_000)]
    sent, calls = _drive(BodyLimit(inner, max_body=1_000), messages)
    assert _status(sent) == 413
    assert b"payload_too_large" in sent[1]["body"]
    assert calls == 2  # stopped reading at the chunk that crossed the limit, not at the end
    assert inner.bodies == []


def test_middleware_refuses_a_declared_length_over_the_limit_without_reading() -> None:
    sent, calls = _drive(BodyLimit(_Recorder(), max_body=1_000), [_chunk(b"x", more=False)],
                         headers=[(b"content-length", b"1001")])
    assert (_status(sent), calls) == (413, 0)


def test_middleware_hands_the_app_the_whole_body_at_once() -> None:
    inner = _Recorder()
    sent, _ = _drive(BodyLimit(inner, max_body=1_000), [_chunk(b"ab"), _chunk(b""), _chunk(b"cd", more=False)])
    assert _status(sent) == 200
    assert inner.bodies == [b"abcd"]


def test_middleware_times_out_a_stalled_body_with_408() -> None:
    inner = _Recorder()
    sent, calls = _drive(BodyLimit(inner, max_body=1_000, timeout_s=0.2), [_chunk(b"{"), None])
    assert _status(sent) == 408
    assert b"request_timeout" in sent[1]["body"]
    assert (calls, inner.bodies) == (2, [])


def test_middleware_deadline_is_for_the_whole_body_not_each_chunk() -> None:
    """A trickle that keeps each chunk under the timeout still runs out of total time."""
    inner = _Recorder()

    async def trickle_run() -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            await asyncio.sleep(0.05)
            return _chunk(b"x")

        async def send(message: Message) -> None:
            sent.append(message)

        await BodyLimit(inner, max_body=10**6, timeout_s=0.3)({"type": "http", "headers": []}, receive, send)
        return sent

    sent = asyncio.run(trickle_run())
    assert _status(sent) == 408
    assert inner.bodies == []


def test_middleware_sends_nothing_when_the_client_leaves() -> None:
    inner = _Recorder()
    sent, _ = _drive(BodyLimit(inner, max_body=1_000), [_chunk(b"x"), {"type": "http.disconnect"}])
    assert (sent, inner.bodies) == ([], [])


def test_body_timeout_is_a_setting() -> None:
    assert load_settings().body_timeout_s == 10.0
    with pytest.raises(ConfigError):
        load_settings(body_timeout_s=0)
