"""One streaming call: escalate until an upstream starts a stream, then relay it.

The response headers (decision, tier, attempt) go out with the first chunk, so every failure
before it (connection refused, an error status, a timeout, a refusal in the first chunk) fails
the attempt and the next tier is tried in the same call. After the first chunk the client has the
stream: a later failure is recorded on the attempt and ends the stream with an error event.

A client that goes away cancels the relay; closing the upstream response cancels the upstream
generation. The usage seen so far is kept on the attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from tierwise.service.errors import UpstreamFailed
from tierwise.service.proxy.core import Proxy, Served, call_usage, check_json, upstream_body
from tierwise.service.proxy.request import ChatRequest
from tierwise.service.proxy.sessions import Session, Step
from tierwise.service.proxy.stream import DONE, MALFORMED, Relay, sse
from tierwise.service.proxy.upstream import lines

log = logging.getLogger(__name__)
# A pass-through call has no plan: nothing caps it but the upstream.
NO_BUDGET = 10**12


def _wants_usage(req: ChatRequest) -> bool:
    options = (req.model_extra or {}).get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _start(proxy: Proxy, req: ChatRequest, step: Step | None, stack: AsyncExitStack,
                 relay: Relay) -> tuple[AsyncIterator[str], bytes]:
    """Open the stream and read up to its first forwardable chunk."""
    tier = step.tier if step else None
    response = await stack.enter_async_context(proxy.upstreams.stream(tier, upstream_body(req, step, stream=True)))
    it = lines(response, tier)
    async for line in it:
        try:
            first = relay.event(line)
        except MALFORMED as exc:
            raise UpstreamFailed(f"upstream of {tier or 'pass-through'} sent a malformed chunk ({exc})") from exc
        if relay.refused:
            raise UpstreamFailed(f"the model refused: {relay.refused}", "refused")
        if first is not None:
            return it, first
    raise UpstreamFailed(f"upstream of {tier or 'pass-through'} ended the stream before any chunk")


async def open_stream(proxy: Proxy, req: ChatRequest, session: Session | None) -> tuple[AsyncIterator[bytes],
                                                                                        Served | None]:
    """The stream's body and what it was served on (None for a pass-through call)."""
    while True:
        step = session.step if session else None
        relay = Relay(expects_json=req.expects_json() and step is not None,
                      budget_tokens=step.max_output_tokens if step else NO_BUDGET,
                      client_wants_usage=_wants_usage(req))
        stack = AsyncExitStack()
        start = time.perf_counter()
        try:
            it, first = await _start(proxy, req, step, stack, relay)
        except BaseException as exc:
            await stack.aclose()
            if session is None or step is None or not isinstance(exc, UpstreamFailed):
                raise
            proxy.account(session, step, (0, 0), (time.perf_counter() - start) * 1000.0)
            await proxy.failed(session, step, exc)
            continue
        body = _relay(proxy, req, session, step, stack, it, first, relay, start)
        return body, (Served(session, step) if session and step else None)


async def _relay(proxy: Proxy, req: ChatRequest, session: Session | None, step: Step | None, stack: AsyncExitStack,
                 it: AsyncIterator[str], first: bytes, relay: Relay, start: float) -> AsyncIterator[bytes]:
    failure: UpstreamFailed | None = None
    try:
        yield first
        if relay.stopped is None:
            async for line in it:
                try:
                    out = relay.event(line)
                except MALFORMED as exc:
                    raise UpstreamFailed(f"upstream sent a malformed chunk ({exc})") from exc
                if out is not None:
                    yield out
                if relay.stopped is not None:
                    break
        if relay.stopped is not None:
            yield relay.closing()
    except UpstreamFailed as exc:
        failure = exc
    finally:
        await stack.aclose()  # closes the upstream response: an early stop or a disconnect cancels it
        tokens = call_usage(req, relay.usage, relay.chars)
        latency = (time.perf_counter() - start) * 1000.0
        if session is not None and step is not None:
            proxy.account(session, step, tokens, latency)
        else:
            log.info("pass-through stream to model %s: %d input, %d output tokens", req.model, *tokens)
    # Only a stream that ran to its end (or broke upstream) gets here: a cancelled one does not.
    if session is not None and step is not None:
        await _close(proxy, req, session, step, relay, failure)
    if failure is not None:
        yield sse({"error": {"code": failure.code, "message": failure.message, "field": None}})
    yield DONE


async def _close(proxy: Proxy, req: ChatRequest, session: Session, step: Step, relay: Relay,
                 failure: UpstreamFailed | None) -> None:
    """Judge a finished stream: a failure, a refusal or broken JSON fails the attempt (the next
    call of the task goes to the next tier); otherwise the resolution in ``metadata``, if any."""
    kind: str | None = failure.kind if failure else ("refused" if relay.refused else None)
    if kind is None and req.expects_json() and not relay.tool_calls:
        kind = "schema_invalid" if check_json(req, relay.output()) else None
    if kind is not None:
        await proxy.record(session, step, resolved=False, failure=kind)
    else:
        await proxy.finish(session, step, req)

