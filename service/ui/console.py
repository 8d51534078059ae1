"""The console's per-app state, built by ``install(app)``: templates, the session signer and the
policy registry, each made on first use so that an app that never serves a page pays nothing."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from tierwise.service.errors import RegistryUnavailable
from tierwise.service.settings import Settings
from tierwise.service.ui.fmt import FILTERS
from tierwise.service.ui.session import Signer, load_secret

if TYPE_CHECKING:
    from tierwise.service.policy.registry import PolicyRegistry

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SECRET_FILE = "ui_session.key"


class Console:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
        self.templates.env.filters.update(FILTERS)
        self._lock = threading.Lock()
        self._signer: Signer | None = None
        self._registry: PolicyRegistry | None = None

    @property
    def signer(self) -> Signer:
        with self._lock:
            if self._signer is None:
                self._signer = Signer(load_secret(self.settings.home / SECRET_FILE))
            return self._signer

    def registry(self) -> PolicyRegistry:
        """The MLflow registry; RegistryUnavailable when it is off or cannot be reached (retried on
        the next page, never cached as broken)."""
        if not self.settings.use_registry:
            raise RegistryUnavailable("this server serves a policy file (TIERWISE_USE_REGISTRY=false): "
                                      "there is no registry to show", field="use_registry")
        with self._lock:
            if self._registry is None:
                from tierwise.service.policy.registry import make_registry

                try:
                    self._registry = make_registry(self.settings)
                except Exception as exc:  # MLflow raises many types: a bad URI, a locked or corrupt file
                    log.warning("console: policy registry unavailable: %s: %s", type(exc).__name__, exc)
                    raise RegistryUnavailable(f"policy registry unavailable: {type(exc).__name__}: {exc}",
                                              field="registry") from exc
            return self._registry

    def page(self, request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
        return self.templates.TemplateResponse(request, name, context, status_code=status_code,
                                               headers=NO_STORE)


# Pages show a queue and keys' names: never cached by a browser or a proxy, never framed.
NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; "
                                       "form-action 'self'; frame-ancestors 'none'"}


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def attach(app: FastAPI, settings: Settings) -> None:
    app.state.console = Console(settings)
