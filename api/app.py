"""FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import document_shared_problems, install_error_handlers
from api.limits import AuthBeforeBody, BodySizeLimit, LoopbackOnly, RateLimit
from api.observability import Metrics, ObserveRequests
from api.routes import datasets, graphs, jobs, ops, plots, results
from api.ui import router as ui
from gsnn_edges.service.context import Enqueue, EnqueueMany, ServiceContext
from gsnn_edges.service.reaper import ReaperThread
from gsnn_edges.service.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Train Graph Structured Neural Networks on a prior-knowledge graph and
score every missing function -> function edge. Errors are RFC 9457
`application/problem+json`. Authenticate with `Authorization: Bearer <key>`."""


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: Enqueue,
    broker_ping: Callable[[], None],
    enqueue_many: EnqueueMany | None = None,
    run_reaper: bool = True,
) -> FastAPI:
    """Build the app: migrate the database, wire the job queue, mount the routes.

    Args:
        settings: defaults to the environment settings.
        enqueue: ``enqueue(job_id)`` puts a job on the queue (the process that assembles
            the app passes the Celery one: ``gsnn_edges.cli.server.celery_app``).
        broker_ping: readiness probe of the queue's broker, raising when it is down.
        enqueue_many: ``enqueue_many(job_ids)`` queues jobs meant to run at once (a
            job's replicas: a Celery group); by default ``enqueue`` each.
        run_reaper: run the stale-job reaper thread while the app is up.
    """
    settings = settings or get_settings()
    ctx = ServiceContext.from_settings(settings, enqueue=enqueue, enqueue_many=enqueue_many)
    if not settings.auth_enabled:
        log.warning(
            "GSNN_EDGES_API_KEYS is empty: no authentication, single local tenant; "
            "serve on loopback only"
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper = ReaperThread(ctx) if run_reaper else None
        if reaper:
            reaper.start()
        yield
        if reaper:
            reaper.stop()
        ctx.db.dispose()

    app = FastAPI(title="gsnn-edges", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx, app.state.broker_ping = ctx, broker_ping
    app.state.tenant_keys = settings.tenant_keys
    app.state.metrics = Metrics(ctx)
    install_error_handlers(app)
    generate_openapi = app.openapi  # FastAPI's, cached after its first call
    app.openapi = lambda: document_shared_problems(generate_openapi())
    for module in (graphs, datasets, jobs, results, plots, ops, ui):
        app.include_router(module.router)
    app.include_router(plots.graph_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(AuthBeforeBody, keys=settings.tenant_keys)  # runs before the limit
    app.add_middleware(
        RateLimit,
        keys=settings.tenant_keys,
        rate=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
    )
    if not settings.auth_enabled:
        app.add_middleware(LoopbackOnly)  # ahead of everything but the metrics
    app.add_middleware(
        ObserveRequests, metrics=lambda: app.state.metrics, keys=settings.tenant_keys
    )
    return app
