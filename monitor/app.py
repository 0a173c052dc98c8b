"""The application factory: ``create_app(settings)`` builds one service, no import-time state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI

from monitor import __version__
from monitor.alerting.lifecycle import Alerting
from monitor.api import (
    alerts,
    detection,
    health,
    ingest,
    metrics,
    models,
    monitors,
    oidc,
    pages,
    report,
)
from monitor.api.admission import AdmissionControl
from monitor.api.deps import ServiceState
from monitor.api.docs import install_docs
from monitor.api.errors import install_error_handlers
from monitor.api.openapi import install_openapi
from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import upgrade
from monitor.observability.access_log import redact_access_log
from monitor.observability.http import IngestMetrics
from monitor.observability.registry import Exposition
from monitor.observability.results import ResultsCollector
from monitor.runs.pipeline import ReferenceCache
from monitor.scheduling.retention import purge_periodically
from monitor.scheduling.scheduler import Worker
from monitor.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the Tidewatch API for ``settings``.

    >>> from monitor.settings import Settings
    >>> app = create_app(
    ...     Settings(database_url="sqlite:///:memory:", migrate_on_start=False, scheduler=False)
    ... )
    >>> app.title
    'Tidewatch'
    """
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    sessions = make_sessionmaker(engine)
    # /metrics reads results through its own connection: never behind the requests' pool
    metrics_engine = make_engine(settings.database_url, pool_size=1, max_overflow=1)
    metrics_sessions = make_sessionmaker(metrics_engine)
    state = ServiceState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        cache=ReferenceCache(settings.reference_cache_size),
        exposition=Exposition(ResultsCollector(metrics_sessions, settings.metrics_cache_seconds)),
        alerting=Alerting(settings, sessions),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # every thread of request work (sync routes, dependencies, in_thread) comes from this
        # pool: no more of them than the database pool can serve at once
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        if settings.migrate_on_start:
            upgrade(engine)
        purger = asyncio.create_task(
            purge_periodically(
                state.sessions, settings.retention_days, settings.purge_interval_seconds
            )
        )
        if settings.scheduler:
            state.worker = Worker(settings, engine, state.sessions, state.cache).start()
        try:
            yield
        finally:
            if state.worker is not None:
                state.worker.stop()
                state.worker = None
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            engine.dispose()
            metrics_engine.dispose()

    app = FastAPI(
        title="Tidewatch",
        version=__version__,
        description="Monitoring for machine-learning models in production.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: install_docs serves local assets
        redoc_url=None,
    )
    app.state.tidewatch = state
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    # here, not in monitor/server.py: whatever runs the app under uvicorn logs no tokens
    redact_access_log()
    app.add_middleware(IngestMetrics)
    # outermost: a shed request costs one comparison and touches nothing else
    app.add_middleware(AdmissionControl, max_in_flight=settings.max_in_flight)
    routers = (
        health.router,
        metrics.router,
        models.router,
        ingest.router,
        detection.router,
        monitors.router,
        alerts.router,
        report.router,
        pages.router,  # sign-in and the overview, for people in a browser
        oidc.router,  # sign-in through the site's identity provider, when configured
    )
    for router in routers:
        app.include_router(router)
    return app
