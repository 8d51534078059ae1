"""Response bodies of the v1 contract, declared once: the routes serve them as ``response_model``
(so ``/openapi.json`` documents every response) and ``tierwise.service.client`` validates into them.

Models are lenient about extra keys on the way in (``extra="allow"``), so a client keeps working
against a newer server that adds a field, and strict about the types of the fields they name."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tierwise.service.classify import FailureKind, NextAction, Profile, Stage

_OPEN = ConfigDict(extra="allow", populate_by_name=True)


class OutputSchemaOut(BaseModel):
    model_config = _OPEN
    name: str
    json_schema: dict[str, Any] = Field(alias="schema")


class RouteOut(BaseModel):
    """The decision for one task: the tier's plan, the scores behind it, and why."""

    model_config = _OPEN
    decision_id: str
    policy_version: str
    profile: Profile
    profile_scores: dict[Profile, float]
    unsure: bool
    complexity: float
    tier: str
    model: str
    temperature: float
    max_input_tokens: int
    max_output_tokens: int
    output_schema: OutputSchemaOut
    escalation_chain: list[str]
    explored: bool
    propensity: float
    tier_scores: dict[str, float]
    reasons: list[str]
    # Which scorer decided the profile: "static" (the fast path) or "encoder" (MiniLM).
    stage: Stage = "encoder"
    latency_ms: float


class Signature(BaseModel):
    model_config = _OPEN
    profile: Profile
    tiers_tried: list[str]
    failure_kinds: list[FailureKind]
    policy_version: str


class NextOut(BaseModel):
    """``done``; ``escalate`` with the next tier's plan; ``human`` or ``script`` with the queue item."""

    model_config = _OPEN
    action: NextAction
    attempt: int | None = None
    tier: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    output_schema: OutputSchemaOut | None = None
    escalation_chain: list[str] | None = None
    queue_item_id: int | None = None
    signature: Signature | None = None
    script: str | None = None


class OutcomeOut(BaseModel):
    model_config = _OPEN
    decision_id: str
    attempt: int
    tier: str
    resolved: bool
    failure: FailureKind | None
    schema_valid: bool | None
    schema_errors: list[str]
    overridden_to: str | None
    next: NextOut
    duplicate: bool = False


class QueueItemOut(BaseModel):
    model_config = _OPEN
    item_id: int
    decision_id: str
    ts: float
    kind: Literal["human", "script"]
    script: str | None
    profile: Profile
    tiers_tried: list[str]
    failure_kinds: list[FailureKind]
    policy_version: str
    task_id: str | None
    prompt_preview: str | None


class QueueOut(BaseModel):
    model_config = _OPEN
    items: list[QueueItemOut]
    count: int


class ResolvedOut(BaseModel):
    model_config = _OPEN
    item_id: int
    resolved_by: str
    note: str | None
    status: Literal["resolved"]


class PolicyOut(BaseModel):
    model_config = _OPEN
    version: str
    source: str
    loaded_at: str
    policy: dict[str, Any]


HealthStatus = Literal["ok", "degraded"]


class HealthOut(BaseModel):
    """``degraded`` (still HTTP 200: the service routes) when any component names a cause in
    ``causes``, e.g. ``"telemetry: journal write failed: database or disk is full"``."""

    model_config = _OPEN
    status: HealthStatus
    policy_version: str
    causes: list[str] = []
    # Per dependency (journal, registry, segments): "ok", "off", or the cause it is degraded.
    dependencies: dict[str, str] = {}


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorOut(BaseModel):
    """Every error: a 4xx for the request's fault, 5xx for the server's; never a traceback."""

    error: ErrorDetail


# Why each error status is sent. To add one (auth's 401/403, say): a line here, then name it in
# the routes' ``errors(...)`` (or in ``EVERY_ROUTE`` if any route can send it).
ERROR_STATUSES: dict[int, str] = {
    400: "the body is not valid JSON",
    401: "no API key, a malformed Authorization header, or an unknown or revoked key (WWW-Authenticate: Bearer)",
    403: "the API key lacks the scope this endpoint needs (route, report or admin)",
    404: "unknown decision, queue item or path",
    408: "the request body did not arrive in time",
    409: "a conflicting or out-of-sequence report",
    413: "the body is over the size limit",
    422: "a field is invalid (named in error.field), or no tier can take the task",
    500: "an internal fault (no details are sent)",
    502: "the proxy's upstream model server failed (error, refusal or invalid output) on every tier tried",
    503: "a dependency (registry, artefact, configuration, telemetry) is unavailable; retry after Retry-After",
    504: "the proxy's upstream model server timed out on every tier tried",
}
# What any route can answer, whatever it does: the body limits (``api/limits.py``) run before
# routing, and a fault is a fault.
EVERY_ROUTE: tuple[int, ...] = (408, 413, 500)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can also send ``statuses``, each with the real error body."""
    return {status: {"model": ErrorOut, "description": ERROR_STATUSES[status]}
            for status in sorted({*EVERY_ROUTE, *statuses})}


# Every error status, for a caller that wants them all.
ERRORS = errors(*ERROR_STATUSES)
