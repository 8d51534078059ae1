"""``install(app, settings)``: the console's routes, static files and error pages on an app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tierwise.service.settings import Settings
from tierwise.service.ui import errors
from tierwise.service.ui.console import HERE, attach
from tierwise.service.ui.routes import router


def install(app: FastAPI, settings: Settings) -> None:
    """Call after the API's error handlers are installed (the console wraps them)."""
    attach(app, settings)
    errors.install(app)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
