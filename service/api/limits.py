"""Reject oversized bodies before anything reads them.

A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
wraps every request in extra tasks and streams, which on a small box is CPU that ``/v1/route``
would rather have when outcomes arrive by the hundred per second.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tierwise.service.api.errors import error_body


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.max_body:
                        response = JSONResponse(error_body(
                            "payload_too_large", f"request body of {value.decode()} bytes exceeds {self.max_body}",
                            None), status_code=413)
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
