"""Counts every HTTP response by route template and status class (``tierwise_http_responses_total``),
so a 5xx rate can be alerted on. Pure ASGI, outermost: it also sees the 500 of an exception that
escapes every handler (Starlette answers those outside the app's middleware)."""

from __future__ import annotations

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMetrics:
    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception escaped

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")  # set by the router on a match: the template, not the raw path
            handler = str(getattr(route, "path", "")) or ("/ui/static" if scope["path"].startswith("/ui/static/")
                                                         else "unmatched")
            self.counter.labels(handler, f"{status // 100}xx").inc()
