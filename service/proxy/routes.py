"""``POST /v1/chat/completions`` and ``GET /v1/models``: the OpenAI-compatible edge.

Async handlers: the time goes to waiting on the upstream, and the journal work runs on the
ingest lane. Auth is the service's own (the ``route`` scope); the client's ``Authorization``
header is tierwise's key and is never forwarded upstream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from tierwise.service.api.auth import require
from tierwise.service.api.lane import IngestLane
from tierwise.service.api.metrics import Metrics
from tierwise.service.api.responses import errors
from tierwise.service.api.schemas import ClientId
from tierwise.service.classify import Harness
from tierwise.service.components import Components
from tierwise.service.proxy.core import Caller, Proxy
from tierwise.service.proxy.models import model_list, parse_model
from tierwise.service.proxy.request import ChatRequest, check_request
from tierwise.service.proxy.sessions import Sessions
from tierwise.service.proxy.streaming import open_stream
from tierwise.service.proxy.upstream import Upstreams

log = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")
DEFAULT_HARNESS: Harness = "ci"
# Sent instead of a body when the client left before the answer: nobody reads it (nginx's 499).
CLIENT_GONE = 499


def start_proxy(parts: Components, lane: IngestLane, metrics: Metrics) -> Proxy:
    """Built by the app's lifespan, after the components; ``Proxy.close`` releases the pool."""
    s = parts.settings
    return Proxy(parts, lane, metrics, Upstreams(s), Sessions(s.proxy_sessions, s.proxy_session_ttl_s))


class ChatCompletionOut(BaseModel):
    """The upstream's completion as it sent it (model id included); tierwise adds headers only:
    ``X-Tierwise-Decision-Id``, ``X-Tierwise-Tier``, ``X-Tierwise-Attempt``."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    object: str | None = None
    model: str | None = None
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None


class ModelOut(BaseModel):
    id: str
    object: str
    created: int
    owned_by: str


class ModelListOut(BaseModel):
    object: str
    data: list[ModelOut]


# Each server-sent event: ``data:`` holds a chat.completion.chunk (JSON), or ``[DONE]`` last.
_SSE = {"text/event-stream": {"schema": {
    "type": "object", "required": ["data"], "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
    "description": "one event: data is a chat.completion.chunk as JSON, or [DONE] at the end"}}}


async def until_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None after cancelling it when the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    log.info("client disconnected: upstream call cancelled")
    return None


@router.post("/v1/chat/completions", response_model=None, dependencies=[Depends(require("route"))],
             responses={200: {"model": ChatCompletionOut, "content": _SSE},
                        **errors(400, 401, 403, 409, 422, 502, 503, 504)})
async def chat_completions(
    body: ChatRequest, request: Request,
    x_tierwise_harness: Annotated[Harness | None, Header()] = None,
    x_tierwise_task_id: Annotated[ClientId | None, Header()] = None,
) -> Response:
    """OpenAI Chat Completions, streaming or not. ``model: "tierwise"`` routes; ``tierwise/<tier>``
    forces a tier (an override); any other id passes through to the default upstream."""
    proxy: Proxy = request.app.state.proxy
    check_request(body)
    target = parse_model(body.model, proxy.parts.holder.policy)
    session = None
    if target.mode != "passthrough":
        meta = body.metadata
        caller = Caller(key_id=getattr(request.state, "key_id", None),
                        harness=(meta and meta.harness) or x_tierwise_harness or DEFAULT_HARNESS,
                        task_id=(meta and meta.task_id) or x_tierwise_task_id)
        session = await proxy.session(body, target, caller)
    if body.stream:
        stream, served = await open_stream(proxy, body, session)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers=served.headers() if served else None)
    if session is None:
        data = await until_disconnect(request, proxy.upstreams.complete(None, proxy.passthrough_body(body)))
        headers = None
    else:
        result = await until_disconnect(request, proxy.complete(body, session))
        data, headers = (result[0], result[1].headers()) if result else (None, None)
    if data is None:
        return Response(status_code=CLIENT_GONE)
    return Response(json.dumps(data).encode(), media_type="application/json", headers=headers)


@router.get("/v1/models", response_model=ModelListOut, responses=errors(401, 403),
            dependencies=[Depends(require("route"))])
async def models(request: Request) -> dict[str, Any]:
    proxy: Proxy = request.app.state.proxy
    return model_list(proxy.parts.holder.policy)
