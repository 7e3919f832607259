"""Worker fixtures: real Redis (db 7), a throwaway PostgreSQL database, worker processes."""

from __future__ import annotations

import uuid

import pytest
import redis

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.datasets import create_dataset
from gsnn_edges.service.graphs import create_graph
from gsnn_edges.service.settings import Settings
from worker.config import celery_enqueue, create_celery

from proctools import start_worker

REDIS_DB = 7  # tests/e2e uses 9


@pytest.fixture(scope="module")
def settings(tmp_path_factory, pg_url_module, redis_url) -> Settings:
    broker = f"{redis_url}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    return Settings(
        data_dir=tmp_path_factory.mktemp("worker-data"),
        database_url=pg_url_module,
        broker_url=broker,
        api_keys="",
        queue_name=f"gsnn_test_{uuid.uuid4().hex[:6]}",
        heartbeat_interval_s=0.5,
        stale_after_s=3.0,
        max_attempts=3,
        reaper_interval_s=0.5,
    )


@pytest.fixture(scope="module")
def ctx(settings):
    celery = create_celery(settings)
    ctx = ServiceContext.from_settings(settings, enqueue=celery_enqueue(celery, settings))
    yield ctx
    ctx.db.dispose()


@pytest.fixture(scope="module")
def log_path(settings):
    return settings.data_dir / "worker.log"


@pytest.fixture(scope="module")
def worker(settings, ctx, log_path):
    proc = start_worker(settings, log_path)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def inputs(ctx, bench, frame) -> tuple[str, str]:
    """``(graph id, dataset id)`` of the default benchmark, stored for tenant ``local``."""
    graph = create_graph(ctx, "local", "bench", bench.partial.to_json())
    ds = create_dataset(ctx, "local", graph.id, frame.to_csv(index=False).encode(), "d.csv")
    return graph.id, ds.id
