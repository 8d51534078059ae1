"""The one place domain errors become HTTP responses: ``{"error": {code, message, field}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierwise.service import errors as e

log = logging.getLogger(__name__)

# A domain error not listed here is a fault of the server, not of the request: 500.
STATUS: dict[type[e.TierwiseError], int] = {
    e.InvalidInput: 422,
    e.NoEligibleTier: 422,
    e.DecisionNotFound: 404,
    e.QueueItemNotFound: 404,
    e.PolicyNotFound: 404,
    e.OutcomeConflict: 409,
    e.PolicyInvalid: 422,
    # A dependency the request needs is missing or unreachable: retrying later may work.
    e.RegistryUnavailable: 503,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.ConfigError: 503,
    e.ArtifactMissing: 503,
    e.TelemetryUnavailable: 503,
    # The proxy's upstream model server failed on every tier it may try (service/proxy/).
    e.UpstreamTimeout: 504,
    e.UpstreamFailed: 502,
}

# Errors a client should simply retry: their 503 carries ``Retry-After`` (seconds).
RETRY_AFTER_S: dict[type[e.TierwiseError], int] = {e.TelemetryUnavailable: 5}


def error_body(code: str, message: str, field: str | None) -> dict[str, dict[str, str | None]]:
    return {"error": {"code": code, "message": message, "field": field}}


def _field(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(e.TierwiseError)
    async def domain(_: Request, exc: e.TierwiseError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
        if status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        retry = next((str(s) for cls, s in RETRY_AFTER_S.items() if isinstance(exc, cls)), None)
        headers = {"Retry-After": retry} if retry else {}
        if isinstance(exc, e.Unauthorized):  # RFC 6750: a 401 names the scheme it wants
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=status,
                            headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        if err.get("type") == "json_invalid":
            return JSONResponse(error_body("invalid_json", f"request body is not valid JSON: "
                                           f"{err.get('ctx', {}).get('error', err['msg'])}", None), 400)
        field = _field(tuple(err.get("loc", ())))
        return JSONResponse(error_body("invalid_input", f"{field or 'body'}: {err['msg']}", field), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's only 400 is a body its JSON parser gave up on (nesting too deep: RecursionError).
        if exc.status_code == 400:
            return JSONResponse(error_body("invalid_json", "request body is not valid JSON (or nested too deeply)",
                                           None), 400)
        # ``headers`` carries ``Allow`` on a 405.
        return JSONResponse(error_body("http_error", str(exc.detail), None), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal", "internal error; see the server log", None), 500)
