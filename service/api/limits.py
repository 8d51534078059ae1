"""Bound every request body in size and in time before the app sees it.

A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
wraps every request in extra tasks and streams, which on a small box is CPU that ``/v1/route``
would rather have when outcomes arrive by the hundred per second.

``Content-Length`` alone is not enough: a chunked body declares no length, and a client that
sends a byte a minute holds a connection (and a worker's memory) for as long as it likes. So the
body is read here, counted as it arrives, against a total deadline, and handed to the app whole:
413 as soon as the limit is crossed, 408 when the deadline passes, and nothing of either reaches
the JSON parser.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierwise.service.api.errors import error_body


async def _refuse(send: Send, scope: Scope, receive: Receive, status: int, body: dict[str, Any]) -> None:
    # ``connection: close``: the rest of the body is never read, so the connection cannot be reused.
    response = JSONResponse(body, status_code=status, headers={"connection": "close"})
    await response(scope, receive, send)


class BodyLimit:
    """At most ``max_body`` bytes per request body, all of them within ``timeout_s`` seconds.

    ``per_path`` gives a path its own limit (``/v1/context`` carries file contents)."""

    def __init__(self, app: ASGIApp, max_body: int, timeout_s: float = 10.0,
                 per_path: dict[str, int] | None = None) -> None:
        self.app, self.max_body, self.timeout_s = app, max_body, timeout_s
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._bounded(scope, receive, send, self.per_path.get(scope.get("path", ""), self.max_body))

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, max_body: int) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > max_body:
                    await _refuse(send, scope, receive, 413, error_body(
                        "payload_too_large", f"request body of {value.decode()} bytes exceeds {max_body}", None))
                    return
                break
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                await _refuse(send, scope, receive, 408, error_body(
                    "request_timeout", f"request body not received within {self.timeout_s:g} s", None))
                return
            if message["type"] != "http.request":
                return  # the client went away: nobody is left to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await _refuse(send, scope, receive, 413, error_body(
                    "payload_too_large", f"request body exceeds {max_body} bytes", None))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The whole body as one message, then the server's own ``receive`` (for disconnects)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def body_limit(max_prompt_chars: int, max_files: int) -> int:
    """The largest body a valid request can need, and not much more.

    A prompt at its limit (4 bytes per character, UTF-8's worst), every file at a generous 256
    bytes a path (each path may be longer, not all of them), and 256 KiB for the rest (tools,
    repo, a model's ``output`` on an outcome). Tighter than "whatever fits in memory" on purpose:
    parsing JSON costs tens of bytes per value, so a few MB of ``[{},{},…]`` is already ~100 MB.
    """
    return max_prompt_chars * 4 + max_files * 256 + 256 * 1024


def context_body_limit(max_bytes: int, max_files: int) -> int:
    """``POST /v1/context``: the contents at their limit, JSON-escaped (newlines and quotes take
    two bytes: code is full of them, so twice the raw size), 512 bytes a file for its path and
    keys, and 1 MiB for the task and the commits."""
    return 2 * max_bytes + 512 * max_files + 1024 * 1024
