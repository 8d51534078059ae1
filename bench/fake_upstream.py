"""A real OpenAI-compatible Chat Completions server on loopback, scripted per model id.

No model server is reachable from here, so the proxy's tests and ``make bench-proxy`` forward to
this one: it answers over real HTTP (uvicorn), streams real SSE, and can be told to fail, stall,
refuse or send broken JSON. It records what it received (the key included, so a test can prove
the key arrived upstream) and whether each stream was cut off by the other side.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``delay_s`` before the answer; for a stream, ``chunk_delay_s``
    between chunks and ``tail`` extra chunks after ``content`` (what an early stop cuts off)."""

    content: str = "ok"
    status: int = 200
    delay_s: float = 0.0
    refusal: str | None = None
    usage: tuple[int, int] | None = (12, 5)
    chunk_delay_s: float = 0.0
    tail: int = 0
    chunk_chars: int = 4
    raw: bytes | None = None  # sent as is instead (a broken body or stream)


@dataclass
class StreamLog:
    model: str
    chunks_sent: int = 0
    finished: bool = False


@dataclass
class FakeUpstream:
    default: Reply = field(default_factory=Reply)
    calls: list[dict[str, Any]] = field(default_factory=list)
    streams: list[StreamLog] = field(default_factory=list)
    cut_off: int = 0
    _script: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))

    def script(self, model: str, *replies: Reply) -> None:
        """The next calls for ``model`` get these replies, in order; then ``default``."""
        self._script[model].extend(replies)

    def _next(self, model: str) -> Reply:
        queue = self._script.get(model)
        return queue.popleft() if queue else self.default

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model"))
        self.calls.append({"model": model, "body": body, "authorization": request.headers.get("authorization")})
        reply = self._next(model)
        if reply.delay_s and await _gone_within(request, reply.delay_s):
            self.cut_off += 1  # the caller hung up while we "thought": it cancelled the call
            return Response(status_code=499)
        if reply.status >= 400:
            return JSONResponse({"error": {"message": f"scripted failure {reply.status}", "type": "server_error"}},
                                status_code=reply.status)
        if reply.raw is not None:
            return Response(reply.raw, media_type="text/event-stream" if body.get("stream") else "application/json")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._chunks(model, reply, include_usage), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": None if reply.refusal else reply.content}
        if reply.refusal:
            message["refusal"] = reply.refusal
        out: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                               "model": model, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        if reply.usage:
            out["usage"] = _usage(reply.usage)
        return JSONResponse(out)

    async def _chunks(self, model: str, reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
        log = StreamLog(model)
        self.streams.append(log)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        text = reply.content + "".join(f" filler{i}" for i in range(reply.tail))
        pieces = [text[i:i + reply.chunk_chars] for i in range(0, len(text), reply.chunk_chars)]
        yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})
        for piece in pieces:
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            log.chunks_sent += 1
            yield _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage and reply.usage:
            yield _sse({**base, "choices": [], "usage": _usage(reply.usage)})
        yield b"data: [DONE]\n\n"
        log.finished = True


async def _gone_within(request: Request, seconds: float) -> bool:
    """Wait ``seconds``, watching the connection: True as soon as the caller disconnects."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.01)
    return False


def _usage(u: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": u[0], "completion_tokens": u[1], "total_tokens": u[0] + u[1]}


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(fake: FakeUpstream) -> Iterator[str]:
    """Run ``fake`` on a free loopback port in a thread; yields its OpenAI base URL (``…/v1``)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("the fake upstream did not start")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    """``python -m tierwise.bench.fake_upstream --port N``: serve the default replies until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(FakeUpstream().app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
