"""The v1 routes. Most handlers are sync: they run in the thread pool, since the journal reads are
blocking calls, and the event loop stays free for other requests. Two are async: outcomes await
the ingest lane (``api/lane.py``), and routes score on the event loop and await their decision's
group commit (``telemetry/group_commit.py``)."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from tierwise.service.api.auth import require
from tierwise.service.api.gauges import health_report
from tierwise.service.api.metrics import Metrics, publish_online, scrape
from tierwise.service.api.responses import HealthOut, OutcomeOut, PolicyOut, QueueOut, ResolvedOut, RouteOut, errors
from tierwise.service.api.schemas import OutcomeIn, QueueResolveIn, RouteIn
from tierwise.service.classify.task import RepoInfo, Task
from tierwise.service.components import Components
from tierwise.service.errors import InvalidInput, TelemetryUnavailable
from tierwise.service.outcomes import Report, resolve_queue_item
from tierwise.service.redact import redact
from tierwise.service.routing import unlogged
from tierwise.service.telemetry.port import JournalPort
from tierwise.service.textnorm import is_blank

router = APIRouter()
# SQLite's INTEGER: a larger id cannot exist, and would overflow on the way to the journal.
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _parts(request: Request) -> Components:
    """Async, so resolving it costs no trip through the thread pool."""
    parts: Components = request.app.state.parts
    return parts


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


NO_TELEMETRY = "this server runs without telemetry"


async def _journal(parts: Annotated[Components, Depends(_parts)]) -> JournalPort:
    if parts.store is None:
        raise TelemetryUnavailable(NO_TELEMETRY)
    return parts.store.journal


Parts = Annotated[Components, Depends(_parts)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
JournalDep = Annotated[JournalPort, Depends(_journal)]


# Scorers that run the transformer on every request score in a pool thread. The others (about
# 0.3 ms; the encoder runs only for the rare unsure task) score on the event loop: two thread
# hops and the GIL hand-offs between eight route threads cost more than the scoring itself.
_ENCODER_EVERY_ROUTE = frozenset({"minilm", "minilm-int8"})


@router.post("/v1/route", response_model=RouteOut, responses=errors(400, 401, 403, 422, 503),
             dependencies=[Depends(require("route"))])
async def route(body: RouteIn, request: Request, parts: Parts, m: MetricsDep) -> dict[str, Any]:
    s = parts.settings
    if len(body.prompt) > s.max_prompt_chars:
        raise InvalidInput(f"prompt has {len(body.prompt)} characters; the limit is {s.max_prompt_chars}",
                           field="prompt")
    if is_blank(body.prompt):
        raise InvalidInput("prompt is blank", field="prompt")
    if len(body.files) > s.max_files:
        raise InvalidInput(f"files lists {len(body.files)} paths; the limit is {s.max_files}", field="files")
    task = Task(prompt=body.prompt, files=tuple(body.files),
                repo=RepoInfo(body.repo.files, body.repo.modules_touched, tuple(body.repo.languages)),
                diff_lines=body.diff_lines, expected_output=body.expected_output, tools=tuple(body.tools))
    prepare = partial(parts.router.prepare, task, harness=body.harness, task_id=body.task_id)
    # The online layer (TIERWISE_ADAPT) re-reads the journal every few routes: not on the loop.
    slow = s.embedder in _ENCODER_EVERY_ROUTE or parts.router.online is not None
    routed, row = await run_in_threadpool(prepare) if slow else prepare()
    if row is not None:
        try:
            await request.app.state.decisions.commit(row)
        except TelemetryUnavailable as exc:
            routed = unlogged(routed, exc)
    m.count_route(routed)
    return routed.to_response()


@router.post("/v1/outcomes", response_model=None, dependencies=[Depends(require("report"))],
             responses={200: {"model": OutcomeOut}, **errors(400, 401, 403, 404, 409, 422, 503)})
async def outcomes(body: OutcomeIn, request: Request, parts: Parts, m: MetricsDep) -> Response:
    """Async so that the work runs on the ingest lane, not the route threads' pool; the lane also
    encodes the JSON, so the event loop only moves bytes."""
    recorder = parts.recorder
    if recorder is None:
        raise TelemetryUnavailable(NO_TELEMETRY)
    fields = body.model_fields_set
    report = Report(
        decision_id=body.decision_id, attempt=body.attempt, tier=body.tier, resolved=body.resolved,
        cost_usd=body.cost_usd, input_tokens=body.input_tokens, output_tokens=body.output_tokens,
        latency_ms=body.latency_ms, failure=body.failure, overridden_to=body.overridden_to,
        output=body.output, has_output="output" in fields and body.output is not None,
    )
    proxy = getattr(request.app.state, "proxy", None)
    if proxy is not None:  # a proxied attempt: the usage the proxy measured is added to the report
        report = proxy.pending(report)
    counter = m.outcomes

    def record() -> bytes:
        response = recorder.record(report)
        if not response.get("duplicate"):  # a retried report is one outcome, counted once
            counter.labels(response["next"]["action"]).inc()
        return json.dumps(response).encode()

    return Response(await request.app.state.lane.run(record), media_type="application/json")


@router.get("/v1/queue", response_model=QueueOut, responses=errors(401, 403, 422, 503),
            dependencies=[Depends(require("admin"))])
def queue(journal: JournalDep) -> dict[str, Any]:
    # Redacted again on the way out: rows stored before redaction existed (service/redact.py).
    items = [dict(r, tiers_tried=json.loads(r["tiers_tried"]), failure_kinds=json.loads(r["failure_kinds"]),
                  prompt_preview=redact(r["prompt_preview"]) if r["prompt_preview"] else r["prompt_preview"])
             for r in journal.open_queue() if r["kind"] == "human"]
    return {"items": items, "count": len(items)}


@router.post("/v1/queue/{item_id}/resolve", response_model=ResolvedOut,
             responses=errors(400, 401, 403, 404, 409, 422, 503), dependencies=[Depends(require("admin"))])
def resolve(item_id: ItemId, body: QueueResolveIn, journal: JournalDep) -> dict[str, Any]:
    if is_blank(body.resolved_by):
        raise InvalidInput("resolved_by is blank", field="resolved_by")
    return resolve_queue_item(journal, item_id, body.resolved_by, body.note)


@router.get("/v1/policy", response_model=PolicyOut, responses=errors(401, 403, 503),
            dependencies=[Depends(require("admin"))])
def policy(parts: Parts) -> dict[str, Any]:
    active = parts.holder.active
    return {"version": active.policy.version, "source": active.source,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(active.loaded_at)),
            "policy": active.policy.model_dump(mode="json", by_alias=True)}


@router.get("/healthz", response_model=HealthOut, responses=errors(503))
def healthz(parts: Parts) -> dict[str, Any]:
    """HTTP 200 even when degraded: the service still routes; monitors alert on ``status``."""
    causes, deps = health_report(parts)
    return {"status": "degraded" if causes else "ok", "causes": causes,
            "policy_version": parts.holder.policy.version, "dependencies": deps}


_PROMETHEUS_TEXT = {"description": "Prometheus text exposition format",
                    "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}


@router.get("/metrics", response_class=Response, responses={**errors(), 200: _PROMETHEUS_TEXT})
def metrics(m: MetricsDep, parts: Parts, request: Request) -> Response:
    if parts.store is not None:
        disk = parts.store.disk_usage()
        m.journal_bytes.set(disk.journal_bytes)
        m.segments_bytes.set(disk.segments_bytes)
        m.segment_files.set(disk.segment_files)
    request.app.state.gauges.refresh(m, parts)
    online = parts.router.online
    if online is not None:
        publish_online(m, online.compute(parts.holder.policy.version))
    return Response(scrape(m.registry), media_type=CONTENT_TYPE_LATEST)
