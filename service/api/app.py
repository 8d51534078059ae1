"""The FastAPI app factory. Nothing is built at import time: ``create_app(settings)`` does it all."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tierwise.service import components
from tierwise.service.api import errors
from tierwise.service.api.auth import Gate
from tierwise.service.api.context_routes import router as context_v1
from tierwise.service.api.gauges import ScrapeGauges
from tierwise.service.api.http_metrics import HttpMetrics
from tierwise.service.api.lane import IngestLane
from tierwise.service.api.limits import BodyLimit, body_limit, context_body_limit
from tierwise.service.api.metrics import make_metrics, worker_exit
from tierwise.service.api.routes import router as v1
from tierwise.service.keys import KeyStore
from tierwise.service.proxy.routes import router as proxy_routes
from tierwise.service.proxy.routes import start_proxy
from tierwise.service.settings import Settings, load_settings
from tierwise.service.telemetry.group_commit import GroupCommitter
from tierwise.service.ui.mount import install as install_console

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = make_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = components.build(settings)
        app.state.parts = parts
        app.state.lane = IngestLane(settings.ingest_threads, settings.ingest_nice)
        journal = parts.router.journal
        app.state.decisions = GroupCommitter(journal, "decisions") if journal is not None else None
        app.state.proxy = start_proxy(parts, app.state.lane, metrics)
        if parts.store is not None:
            parts.store.start_background_export(settings.export_interval_s)
        poller = None
        if settings.use_registry:
            from tierwise.service.policy.poller import PolicyPoller

            poller = PolicyPoller(settings, parts.holder, metrics)
            poller.start()
        metrics.policy_info.labels(parts.holder.policy.version).set(1)
        log.info("tierwise ready: policy %s from %s", parts.holder.policy.version, parts.holder.active.source)
        try:
            yield
        finally:
            if poller is not None:
                poller.stop()
            await app.state.proxy.close()
            app.state.lane.close()
            if app.state.decisions is not None:
                app.state.decisions.close()  # commits what is queued before the journal closes
            parts.close()
            worker_exit()

    app = FastAPI(title="tierwise", version="1", lifespan=lifespan,
                  description="Routes coding-agent tasks to the cheapest model tier that will do.")
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.auth = Gate(KeyStore(settings.keys_file), settings.auth)  # reads the file on first use
    errors.install(app)
    app.add_middleware(BodyLimit, max_body=body_limit(settings.max_prompt_chars, settings.max_files),
                       timeout_s=settings.body_timeout_s, per_path={
                           "/v1/context": context_body_limit(settings.context_max_bytes, settings.context_max_files)})
    app.include_router(v1)
    install_console(app, settings)  # /ui: the operator console
    app.state.gauges = ScrapeGauges(settings)
    app.add_middleware(HttpMetrics, counter=metrics.http_responses)  # last added: outermost
    app.include_router(proxy_routes)
    app.include_router(context_v1)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory`` (several workers each build their own app)."""
    return create_app(load_settings())
