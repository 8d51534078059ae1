"""The proxy's streaming path (SSE) with the official ``openai`` client, early stops, hang-ups,
and the upstream key kept out of every log and every byte of telemetry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AGENTIC, MECHANICAL
from proxy_helpers import KEY, MODELS, Env, start_env

from tierwise.bench.fake_upstream import Reply


@pytest.fixture
def env(tmp_path: Path, write_policy: Callable[[dict[str, Any]], Path],
        policy_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Env]:
    yield from start_env(tmp_path, write_policy, policy_dict, monkeypatch, getattr(request, "param", None))


def stream(env: Env, messages: list[dict[str, Any]], **kw: Any) -> tuple[str, list[Any], dict[str, str]]:
    """Content, chunks and response headers of one streamed call through the openai client."""
    raw = env.client.chat.completions.with_raw_response.create(model=kw.pop("model", "tierwise"),
                                                                messages=messages, stream=True, **kw)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks, dict(raw.headers)


def test_a_stock_openai_client_streams_through_tierwise(env: Env) -> None:
    env.fake.default = Reply(content="def get_user(): ...", usage=(300, 40))
    text, chunks, headers = stream(env, [{"role": "user", "content": MECHANICAL}])
    assert text == "def get_user(): ..."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices for c in chunks)  # the client asked for no usage chunk: none is forwarded
    assert headers["x-tierwise-tier"] == "small" and headers["x-tierwise-attempt"] == "0"
    assert env.fake.calls[-1]["body"]["stream_options"] == {"include_usage": True}
    # The last call of the task says it is resolved: the attempt carries the stream's usage.
    text2, chunks2, headers2 = stream(env, [{"role": "user", "content": MECHANICAL}], metadata={"resolved": "true"},
                                      stream_options={"include_usage": True})
    assert text2 == "def get_user(): ..." and chunks2[-1].usage.prompt_tokens == 300  # asked for: forwarded
    assert headers2["x-tierwise-decision-id"] == headers["x-tierwise-decision-id"]
    [attempt] = env.attempts(headers["x-tierwise-decision-id"])
    assert attempt["resolved"] == 1 and (attempt["input_tokens"], attempt["output_tokens"]) == (600, 80)
    assert attempt["cost_usd"] == pytest.approx((600 * 0.25 + 80 * 2.0) / 1e6)


def test_a_stream_that_fails_before_its_first_chunk_escalates(env: Env) -> None:
    env.fake.script(MODELS["small"], Reply(status=502))
    text, _, headers = stream(env, [{"role": "user", "content": MECHANICAL}])
    assert text == "ok" and (headers["x-tierwise-tier"], headers["x-tierwise-attempt"]) == ("medium", "1")
    [attempt] = env.attempts(headers["x-tierwise-decision-id"])
    assert attempt["failure"] == "error" and attempt["next_tier"] == "medium"


def test_a_json_stream_stops_at_the_end_of_the_top_level_object(env: Env) -> None:
    answer = '{"files": ["a.py", "b}.py"], "n": {"k": 2}}'
    env.fake.default = Reply(content=answer, tail=400, chunk_delay_s=0.005, chunk_chars=5)
    text, chunks, headers = stream(env, [{"role": "user", "content": MECHANICAL}],
                                   response_format={"type": "json_object"})
    assert text == answer  # the brace inside the string did not end it; the filler after it is cut
    assert chunks[-1].choices[0].finish_reason == "stop"
    log = env.fake.streams[-1]
    total = len(answer + "".join(f" filler{i}" for i in range(400))) // 5
    assert not log.finished and log.chunks_sent < total / 2  # the upstream generation was cancelled
    [] = env.attempts(headers["x-tierwise-decision-id"])  # valid JSON: the attempt stays open


def _tiny_budget(policy: dict[str, Any]) -> None:
    policy["tiers"]["small"]["max_output_tokens"] = 10


@pytest.mark.parametrize("env", [{"policy": _tiny_budget}], indirect=True)
def test_a_stream_stops_when_the_output_budget_is_spent(env: Env) -> None:
    env.fake.default = Reply(content="x" * 400, usage=None)
    text, chunks, headers = stream(env, [{"role": "user", "content": MECHANICAL}])
    assert len(text) == 40  # 10 tokens at 4 characters a token: the upstream ignored max_tokens
    assert chunks[-1].choices[0].finish_reason == "length"
    assert env.fake.calls[-1]["body"]["max_tokens"] == 10
    assert headers["x-tierwise-tier"] == "small"


def test_invalid_json_at_the_end_of_a_stream_fails_the_attempt_for_the_next_call(env: Env) -> None:
    env.fake.script(MODELS["small"], Reply(content='{"files": [1, 2'))
    schema = {"type": "object", "required": ["files"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "f", "schema": schema}}
    text, _, headers = stream(env, [{"role": "user", "content": MECHANICAL}], response_format=fmt)
    assert text == '{"files": [1, 2'  # already sent: the client has it, the attempt is failed
    [attempt] = env.attempts(headers["x-tierwise-decision-id"])
    assert attempt["failure"] == "schema_invalid" and attempt["next_tier"] == "medium"
    _, _, again = stream(env, [{"role": "user", "content": MECHANICAL}], response_format=fmt)
    assert (again["x-tierwise-tier"], again["x-tierwise-attempt"]) == ("medium", "1")


def test_a_client_that_hangs_up_mid_stream_cancels_the_upstream(env: Env) -> None:
    env.fake.default = Reply(content="word " * 400, chunk_delay_s=0.01, usage=None)
    with httpx.stream("POST", env.base + "/v1/chat/completions",
                      json={"model": "tierwise", "stream": True,
                            "messages": [{"role": "user", "content": AGENTIC}]}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if '"content":"word' in line.replace(" ", ""):
                break
    deadline = time.monotonic() + 5
    log = env.fake.streams[-1]
    while time.monotonic() < deadline and log.chunks_sent < 500:
        seen = log.chunks_sent
        time.sleep(0.3)
        if log.chunks_sent == seen:
            break  # the upstream stopped sending: its stream was closed
    assert not log.finished and log.chunks_sent < 500
    assert env.journal("SELECT * FROM attempts") == []  # a hang-up is not the model's failure


def test_the_upstream_key_never_reaches_logs_telemetry_or_clients(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env.fake.script(MODELS["small"], Reply(status=401))  # upstreams echo keys on 401s; this one does not
    env.fake.default = Reply(content="fine", usage=(10, 2))
    bodies = []
    raw = env.client.chat.completions.with_raw_response.create(
        model="tierwise", messages=[{"role": "user", "content": MECHANICAL}], metadata={"resolved": "true"})
    bodies.append(raw.text if hasattr(raw, "text") else raw.http_response.text)
    bodies.append(stream(env, [{"role": "user", "content": AGENTIC}])[0])
    bodies.append(httpx.get(env.base + "/metrics").text)
    bodies.append(httpx.get(env.base + "/healthz").text)
    assert all(c["authorization"] == f"Bearer {KEY}" for c in env.fake.calls)  # it was used...
    time.sleep(0.5)  # let the exporter write its Parquet segments
    home = Path(env.settings.home)
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in stored)
    for p in stored:
        assert KEY.encode() not in p.read_bytes(), p  # ...and is nowhere in the journal, WAL or segments
    assert KEY not in caplog.text and "Zq8vN3pL0x" not in caplog.text
    assert all(KEY not in b for b in bodies)


@pytest.mark.parametrize("raw", [b'data: {"choices": ["x"]}\n\n', b"data: {broken\n\n", b"data: [DONE]\n\n"])
def test_a_malformed_stream_before_its_first_chunk_escalates(env: Env, raw: bytes) -> None:
    env.fake.script(MODELS["small"], Reply(raw=raw))
    text, _, headers = stream(env, [{"role": "user", "content": MECHANICAL}])
    assert text == "ok" and headers["x-tierwise-tier"] == "medium"


def test_a_stock_openai_client_works_against_tierwise_serve(tmp_path: Path) -> None:
    """The real ``tierwise serve`` process (not an app in a thread), streaming included."""
    import openai

    from tierwise.bench._server import Server
    from tierwise.bench.fake_upstream import FakeUpstream, serve

    fake = FakeUpstream(default=Reply(content="served", usage=(20, 3)))
    with serve(fake) as url:
        server = Server(tmp_path / "home", env={
            "TIERWISE_USE_REGISTRY": "false", "TIERWISE_EMBEDDER": "static", "TIERWISE_UPSTREAM_BASE_URL": url,
            "TIERWISE_UPSTREAM_API_KEY_ENV": "TW_TEST_UPSTREAM_KEY", "TW_TEST_UPSTREAM_KEY": KEY}).start()
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused-locally", max_retries=0)
            messages: Any = [{"role": "user", "content": MECHANICAL}]
            assert client.chat.completions.create(model="tierwise", messages=messages).choices[0].message.content \
                == "served"
            chunks = list(client.chat.completions.create(model="tierwise", messages=messages, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "served"
            assert [c["authorization"] for c in fake.calls] == [f"Bearer {KEY}"] * 2
        finally:
            server.stop()
        assert KEY not in server.log_path.read_text()
