"""Prometheus metrics: request counts and latency, jobs by status."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gsnn_edges.job_status import JobStatus
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


class MetricsMiddleware:
    """Pure ASGI middleware recording count and latency per route template."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            m = self.metrics()
            m.requests.labels(scope["method"], route, str(status)).inc()
            m.latency.labels(scope["method"], route).observe(time.perf_counter() - start)
