"""Errors on console pages: the API's JSON for scripts, a page for browsers.

The mapping from domain error to status stays the API's (``api/errors.py``); this only chooses
the body. A browser without a session is sent to the login page; a request with
``Authorization`` (a script) gets the API's JSON error, 401 included.
"""

from __future__ import annotations

import inspect
import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from tierwise.service.api.auth import HEADER
from tierwise.service.api.errors import status_for
from tierwise.service.errors import TierwiseError, Unauthorized
from tierwise.service.ui.console import console_of

log = logging.getLogger(__name__)

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
    """Wrap the API's handler for domain errors; call after ``api.errors.install``."""
    api_handler = app.exception_handlers[TierwiseError]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TierwiseError)
        if not is_console(request) or not wants_page(request):
            response = api_handler(request, exc)
            return await response if inspect.isawaitable(response) else response
        if isinstance(exc, Unauthorized):
            return login_redirect(request)
        status = status_for(exc)
        if status >= 500:
            log.error("console %s: %s: %s", request.url.path, exc.code, exc.message)
        message = exc.message if status != 500 else "internal error; see the server log"
        return console_of(request).page(request, "error.html", {
            "status": status, "code": exc.code, "message": message, "field": exc.field}, status_code=status)

    app.add_exception_handler(TierwiseError, handler)
