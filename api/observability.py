"""Request observation: Prometheus metrics (request counts and latency, jobs by
status; no tenant or job appears in them), request ids, and one structured access log
line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import scope_tenant
from gsnn_edges.job_status import JobStatus
from gsnn_edges.service import logs
from gsnn_edges.service import repository as repo
from gsnn_edges.service.context import ServiceContext


class JobsCollector:
    """Collects ``gsnn_edges_jobs{status}`` from the database at scrape time."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("gsnn_edges_jobs", "Jobs by status.", labels=["status"])
        with self.ctx.db.session() as session:
            counts = repo.count_jobs_by_status(session)
        for status in JobStatus:
            family.add_metric([status], counts.get(status, 0))
        yield family


class Metrics:
    """A registry (per app, so tests can build many apps) with the HTTP instruments."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gsnn_edges_http_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gsnn_edges_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(JobsCollector(ctx))


# a caller's X-Request-ID is kept when it is a short token (it goes into every log line)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
access_log = logging.getLogger("gsnn_edges.access")


def _request_id(headers: dict[bytes, bytes]) -> str:
    offered = headers.get(b"x-request-id", b"").decode("latin-1")
    return offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


class ObserveRequests:
    """Pure ASGI middleware, outermost: tags the request with an id (the caller's
    ``X-Request-ID`` when it is a short token, else a new one; sent back in the
    response) and its tenant, so every log line the request causes carries both; then
    counts it, times it per route template and logs one access line.

    The tenant comes from the bearer key as the routes resolve it (``None`` for a
    missing or unknown key, which the routes then refuse)."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics], keys: dict[str, str]) -> None:
        self.app, self.metrics, self.keys = app, metrics, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _request_id(headers)
        tenant = scope_tenant(scope, self.keys)
        tenant = tenant if isinstance(tenant, str) else None
        start, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with logs.bound(request_id=request_id, tenant=tenant):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                seconds = time.perf_counter() - start
                m = self.metrics()
                m.requests.labels(scope["method"], route, str(status)).inc()
                m.latency.labels(scope["method"], route).observe(seconds)
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"route": route, "status": status, "ms": round(seconds * 1e3, 2)},
                )
