"""The proxy's flow for one call: find the task's decision (or route a new one), call the tier's
upstream with the plan's caps, and on failure record the attempt and escalate in the same call.

Every attempt the proxy closes goes through ``OutcomeRecorder``, the same path as
``POST /v1/outcomes``: proxied and reported attempts are the same rows, so the KPIs, ``tierwise
stats``, the notebook and retune read them alike. Journal work runs on the ingest lane (off the
event loop); the upstream call holds no lock, so calls of one task may overlap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import Draft202012Validator
from starlette.concurrency import run_in_threadpool

from tierwise.service.api.lane import IngestLane
from tierwise.service.api.metrics import Metrics
from tierwise.service.components import Components
from tierwise.service.errors import (
    InvalidInput,
    TelemetryUnavailable,
    UpstreamFailed,
    UpstreamTimeout,
)
from tierwise.service.outcomes import OutcomeRecorder, Report
from tierwise.service.policy.decide import TierPlan, plan_for
from tierwise.service.proxy.models import Target
from tierwise.service.proxy.request import ChatRequest, message_text, to_task
from tierwise.service.proxy.sessions import Session, Sessions, Step, task_key
from tierwise.service.proxy.stream import estimate_tokens
from tierwise.service.proxy.upstream import Upstreams, refusal

log = logging.getLogger(__name__)
NO_TELEMETRY = "the proxy records every attempt, and this server runs without telemetry"


@dataclass(frozen=True)
class Caller:
    """Who calls, and the task hints from headers or ``metadata``."""

    key_id: str | None
    harness: str
    task_id: str | None


@dataclass(frozen=True)
class Served:
    """What one call was served on: the headers the client gets."""

    session: Session
    step: Step

    def headers(self) -> dict[str, str]:
        return {"X-Tierwise-Decision-Id": self.session.decision_id, "X-Tierwise-Tier": self.step.tier,
                "X-Tierwise-Attempt": str(self.step.attempt)}


def step_of(plan: TierPlan, attempt: int) -> Step:
    return Step(attempt=attempt, tier=plan.tier, model=plan.model, temperature=plan.temperature,
                max_output_tokens=plan.max_output_tokens)


def upstream_body(req: ChatRequest, step: Step | None, *, stream: bool) -> dict[str, Any]:
    """The request as the upstream gets it: the tier's model, temperature and output tokens
    capped by the plan, tierwise's ``metadata`` removed, usage asked for on a stream."""
    body = req.model_dump(exclude_unset=True, exclude={"metadata"}, by_alias=True)
    if step is not None:
        body["model"] = step.model
        body["temperature"] = step.temperature if req.temperature is None else min(req.temperature,
                                                                                   step.temperature)
        key = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        asked = body.get(key)
        body[key] = step.max_output_tokens if asked is None else min(asked, step.max_output_tokens)
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


def check_json(req: ChatRequest, content: str) -> str | None:
    """Why ``content`` breaks the requested JSON output (None: it does not)."""
    try:
        value = json.loads(content)
    except ValueError as exc:
        return f"output is not JSON ({exc})"
    schema = req.json_schema()
    if schema is None:
        return None
    errors = list(Draft202012Validator(schema).iter_errors(value))
    return f"output breaks the schema: {errors[0].message}"[:300] if errors else None


def call_usage(req: ChatRequest, usage: dict[str, Any] | None, output_chars: int) -> tuple[int, int]:
    """(input, output) tokens of a call: the upstream's ``usage``, else an estimate from characters."""
    if usage and isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
        return usage["prompt_tokens"], usage["completion_tokens"]
    prompt_chars = sum(len(message_text(m)) for m in req.messages)
    return estimate_tokens(prompt_chars), estimate_tokens(output_chars)


class Proxy:
    def __init__(self, parts: Components, lane: IngestLane, metrics: Metrics, upstreams: Upstreams,
                 sessions: Sessions) -> None:
        self.parts, self.lane, self.metrics, self.upstreams, self.sessions = parts, lane, metrics, upstreams, sessions
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def close(self) -> None:
        await self.upstreams.close()

    def passthrough_body(self, req: ChatRequest) -> dict[str, Any]:
        """A pass-through call goes out as the client sent it (less tierwise's ``metadata``); it is logged."""
        log.info("pass-through call to model %s", req.model)
        return upstream_body(req, None, stream=False)

    @property
    def recorder(self) -> OutcomeRecorder:
        if self.parts.recorder is None:
            raise TelemetryUnavailable(NO_TELEMETRY)
        return self.parts.recorder

    # -- the task's decision -------------------------------------------------------------------

    async def session(self, req: ChatRequest, target: Target, caller: Caller) -> Session:
        """The task's live decision, synced with the journal; a new one when there is none."""
        key = task_key(caller.key_id, caller.task_id, req.opening())
        lock = self._creating.get(key)
        if lock is None:
            lock = self._creating[key] = asyncio.Lock()
        async with lock:  # two first calls of one task at once make one decision
            session = self.sessions.get(key)
            if session is not None and session.stale:
                async with session.lock:
                    await self._sync(session)
            if session is None or session.closed:
                session = await self._route(req, target, caller)
                self.sessions.put(key, session)
        if target.tier is not None and session.forced != target.tier:
            session.forced = target.tier  # once per task: after a failure there, escalation climbs on
            if target.tier != session.step.tier:
                await self._override(session, target.tier)
        return session

    async def _route(self, req: ChatRequest, target: Target, caller: Caller) -> Session:
        task = to_task(req, self.parts.settings.max_prompt_chars)
        routed = await run_in_threadpool(self.parts.router.route, task, harness=caller.harness,
                                         task_id=caller.task_id)
        self.metrics.count_route(routed)
        if not routed.logged:  # an attempt of an unlogged decision could never be recorded
            raise TelemetryUnavailable("the journal refused the decision; retry later")
        d = routed.decision
        return Session(routed.decision_id, d.policy_version, d.profile, step_of(d.plan, 0))

    async def _sync(self, session: Session) -> None:
        """Catch up with attempts recorded elsewhere (``/v1/outcomes``, another call of the task)."""
        session.stale = False
        # The route threads' pool, not the reniced ingest lane: a call waits on this read.
        rows = await run_in_threadpool(self.recorder.journal.attempts, session.decision_id)
        if len(rows) == session.step.attempt:
            return
        if not rows:
            return
        last = rows[-1]
        if last["next_action"] != "escalate":
            session.closed = True
            return
        policy = self.parts.holder.version(session.policy_version)
        session.step = step_of(plan_for(policy, last["next_tier"], session.profile), len(rows))

    async def _override(self, session: Session, tier: str) -> None:
        """``tierwise/<tier>`` on a task routed elsewhere: the developer overrides the routed tier."""
        nxt = await self.record(session, session.step, resolved=False, overridden_to=tier)
        if nxt.get("action") != "escalate":
            raise InvalidInput(f"tier {tier} cannot be forced: the decision allows no further step "
                               f"({nxt.get('action')})", field="model")

    # -- attempts --------------------------------------------------------------------------------

    async def record(self, session: Session, step: Step, *, resolved: bool, failure: str | None = None,
                     overridden_to: str | None = None) -> dict[str, Any]:
        """Close ``step``'s attempt with its calls' usage, and move the task to the next step."""
        async with session.lock:
            await self._sync(session)
            if session.closed or session.step.attempt != step.attempt:
                return {"action": "moved"}  # another call of the task closed this attempt first
            u = session.usage_of(step.attempt)
            report = Report(decision_id=session.decision_id, attempt=step.attempt, tier=step.tier,
                            resolved=resolved, cost_usd=round(u.cost_usd, 9), input_tokens=u.input_tokens,
                            output_tokens=u.output_tokens, latency_ms=round(u.latency_ms, 3), failure=failure,
                            overridden_to=overridden_to)
            response = await self.lane.run(self.recorder.record, report)
            nxt: dict[str, Any] = response["next"]
            if nxt["action"] == "escalate":
                policy = self.parts.holder.version(session.policy_version)
                session.step = step_of(plan_for(policy, nxt["tier"], session.profile), nxt["attempt"])
            else:
                session.closed = True
            return nxt

    def account(self, session: Session, step: Step, tokens: tuple[int, int], latency_ms: float) -> None:
        policy = self.parts.holder.version(session.policy_version)
        session.usage_of(step.attempt).add(policy.tiers[step.tier], tokens[0], tokens[1], latency_ms)

    async def failed(self, session: Session, step: Step, exc: UpstreamFailed) -> None:
        """Record the failed attempt; escalated, the caller retries; spent, the error goes out."""
        nxt = await self.record(session, step, resolved=False, failure=exc.kind)
        if nxt["action"] in ("escalate", "moved") and not session.closed:
            return
        where = f"; the task went to the {nxt['action']} queue" if nxt["action"] in ("human", "script") else ""
        message = f"{exc.message} (attempt {step.attempt} on tier {step.tier}, no tier left to try{where})"
        raise UpstreamTimeout(message) if isinstance(exc, UpstreamTimeout) else UpstreamFailed(message, exc.kind)

    async def finish(self, session: Session, step: Step, req: ChatRequest) -> dict[str, Any] | None:
        """After a successful call: the resolution the client sent in ``metadata``, if any."""
        resolved = req.resolution()
        if resolved is None:
            return None
        failure = None if resolved else (req.metadata.failure if req.metadata else None)
        return await self.record(session, step, resolved=resolved, failure=failure)

    # -- one non-streaming call ----------------------------------------------------------------

    async def complete(self, req: ChatRequest, session: Session) -> tuple[dict[str, Any], Served]:
        while True:
            step = session.step
            start = time.perf_counter()
            data: dict[str, Any] | None = None
            try:
                data = await self.upstreams.complete(step.tier, upstream_body(req, step, stream=False))
                self._judge(req, data)
            except UpstreamFailed as exc:
                self._account_reply(req, session, step, data, start)
                await self.failed(session, step, exc)
                continue
            self._account_reply(req, session, step, data, start)
            await self.finish(session, step, req)
            return data, Served(session, step)

    def _account_reply(self, req: ChatRequest, session: Session, step: Step, data: dict[str, Any] | None,
                       start: float) -> None:
        latency = (time.perf_counter() - start) * 1000.0
        if data is None:  # the upstream answered nothing usable: no tokens to bill
            self.account(session, step, (0, 0), latency)
            return
        content = _content(data)
        self.account(session, step, call_usage(req, data.get("usage"), len(content or "")), latency)

    def _judge(self, req: ChatRequest, data: dict[str, Any]) -> None:
        choice = data["choices"][0] if data["choices"] else {}
        if not isinstance(choice.get("message"), dict):
            raise UpstreamFailed("the upstream's answer has no message")
        why = refusal(choice)
        if why is not None:
            raise UpstreamFailed(f"the model refused: {why}", "refused")
        content = _content(data)
        if req.expects_json() and isinstance(content, str) and not _message(data).get("tool_calls"):
            broken = check_json(req, content)
            if broken is not None:
                raise UpstreamFailed(broken, "schema_invalid")

    def pending(self, report: Report) -> Report:
        """A ``/v1/outcomes`` report of a proxied attempt, with the usage the proxy measured added:
        the agent need not report the cost of calls that went through the proxy."""
        session = self.sessions.by_decision(report.decision_id)
        if session is not None:
            session.stale = True
        u = session.usage.get(report.attempt) if session is not None else None
        if u is None or u.calls == 0:
            return report
        return replace(report, cost_usd=round(report.cost_usd + u.cost_usd, 9),
                       input_tokens=(report.input_tokens or 0) + u.input_tokens,
                       output_tokens=(report.output_tokens or 0) + u.output_tokens,
                       latency_ms=round((report.latency_ms or 0.0) + u.latency_ms, 3))


def _message(data: dict[str, Any]) -> dict[str, Any]:
    """The first choice's message; ``{}`` when the upstream sent none (or not an object)."""
    choices = data.get("choices") or [{}]
    message = choices[0].get("message")
    return message if isinstance(message, dict) else {}


def _content(data: dict[str, Any]) -> str | None:
    content = _message(data).get("content")
    return content if isinstance(content, str) else None

