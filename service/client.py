"""A typed HTTP client for agents and the benchmark replay: ``route()`` then ``report()``.

Responses are validated into the same models the server declares (``tierwise.service.api.responses``),
so a server that breaks the contract fails here, loudly, not three calls later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from tierwise.service.api.responses import HealthOut, OutcomeOut, PolicyOut, QueueItemOut, QueueOut, RouteOut
from tierwise.service.classify import NextAction


class ClientError(Exception):
    """A 4xx/5xx from tierwise, with its error code, message and field."""

    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" [{field}]" if field else ""))
        self.status, self.code, self.message, self.field = status, code, message, field


RouteDecision = RouteOut
"""The decision ``route()`` returns: the server's own response model."""


@dataclass(frozen=True)
class NextStep:
    """What to do after an attempt: ``done``, ``escalate`` (to ``tier``), ``human`` or ``script``."""

    action: NextAction
    attempt: int | None
    tier: str | None
    model: str | None
    resolved: bool
    failure: str | None
    raw: dict[str, Any] = field(repr=False)


class TierwiseClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, api_key: str | None = None) -> None:
        """``api_key``: a key from ``tierwise keys create``, sent as ``Authorization: Bearer``."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport, headers=headers)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(self._http.post(path, json=body))

    @staticmethod
    def _check(resp: httpx.Response) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:  # a proxy's HTML error page, an empty body
            data = None
        if not isinstance(data, dict):
            raise ClientError(resp.status_code, "bad_response",
                              f"expected a JSON object, got {resp.text[:200]!r}", None)
        if resp.status_code >= 400:
            err = data.get("error") or {}
            raise ClientError(resp.status_code, err.get("code", "?"), err.get("message", ""), err.get("field"))
        return data

    def route(self, prompt: str, *, files: list[str] | None = None, repo: dict[str, Any] | None = None,
              diff_lines: int | None = None, expected_output: str | None = None,
              tools: list[str] | None = None, harness: str = "ci", task_id: str | None = None) -> RouteDecision:
        body: dict[str, Any] = {"prompt": prompt, "files": files or [], "tools": tools or [], "harness": harness}
        for key, value in (("repo", repo), ("diff_lines", diff_lines), ("expected_output", expected_output),
                           ("task_id", task_id)):
            if value is not None:
                body[key] = value
        return _valid(RouteOut, self._post("/v1/route", body))

    def route_body(self, body: dict[str, Any]) -> RouteDecision:
        """Route a ready-made request body (as the simulator builds them)."""
        return self.route(**body)

    def report(self, decision_id: str, attempt: int, tier: str, *, resolved: bool, cost_usd: float,
               input_tokens: int | None = None, output_tokens: int | None = None,
               latency_ms: float | None = None, failure: str | None = None,
               overridden_to: str | None = None, output: Any = None) -> NextStep:
        body: dict[str, Any] = {"decision_id": decision_id, "attempt": attempt, "tier": tier,
                                "resolved": resolved, "cost_usd": cost_usd}
        for key, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                           ("latency_ms", latency_ms), ("failure", failure), ("overridden_to", overridden_to),
                           ("output", output)):
            if value is not None:
                body[key] = value
        d = self._post("/v1/outcomes", body)
        out = _valid(OutcomeOut, d)
        n = out.next
        return NextStep(n.action, n.attempt, n.tier, n.model, out.resolved, out.failure, d)

    def queue(self) -> list[QueueItemOut]:
        return _valid(QueueOut, self._check(self._http.get("/v1/queue"))).items

    def resolve(self, item_id: int, resolved_by: str, note: str | None = None) -> dict[str, Any]:
        return self._post(f"/v1/queue/{item_id}/resolve", {"resolved_by": resolved_by, "note": note})

    def policy(self) -> PolicyOut:
        return _valid(PolicyOut, self._check(self._http.get("/v1/policy")))

    def health(self) -> HealthOut:
        return _valid(HealthOut, self._check(self._http.get("/healthz")))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TierwiseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ClientError(200, "bad_response", f"{model.__name__}.{where}: {err['msg']}", where) from exc
