"""Errors on console pages: the API's JSON for scripts, a page for browsers.

The mapping from domain error to status stays the API's (``api/errors.py``); this only chooses
the body. A browser without a session is sent to the login page; a request with
``Authorization`` (a script) gets the API's JSON error, 401 included.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import RedirectResponse, Response

from tierwise.service.api.auth import HEADER
from tierwise.service.errors import TierwiseError, Unauthorized
from tierwise.service.ui.console import console_of

PREFIX = "/ui"


def is_console(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def wants_page(request: Request) -> bool:
    """A browser: no ``Authorization`` header, and it does not ask for JSON only."""
    accept = request.headers.get("accept", "")
    return not request.headers.get(HEADER) and not (accept.startswith("application/json") and "html" not in accept)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # after signing in, go back to a page, not to a form's target
        target = PREFIX + "/queue" if "/queue" in request.url.path else PREFIX
    return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='/')}", status_code=303)


def install(app: FastAPI) -> None:
    """Wrap the API's handlers for domain errors and invalid requests (call after
    ``api.errors.install``): the API's handler decides status and body, logs a 5xx and hides an
    internal message; for a browser on a console page that body is shown as a page instead."""
    for kind in (TierwiseError, RequestValidationError):
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))


def _as_page(api_handler: Callable[[Request, Any], Response | Awaitable[Response]]
             ) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        if is_console(request) and wants_page(request) and isinstance(exc, Unauthorized):
            return login_redirect(request)
        response = api_handler(request, exc)
        response = await response if inspect.isawaitable(response) else response
        if not is_console(request) or not wants_page(request):
            return response
        error = json.loads(bytes(response.body))["error"]
        return console_of(request).page(request, "error.html", {
            "status": response.status_code, "code": error["code"], "message": error["message"],
            "field": error["field"]}, status_code=response.status_code)

    return handler
