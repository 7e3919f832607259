"""Worker fixtures: real Redis (db 7), a throwaway PostgreSQL database, worker processes."""

from __future__ import annotations

import uuid

import pytest
import redis

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.settings import Settings
from worker.config import celery_enqueue, create_celery

from workerhelpers import WorkerProcess, make_inputs

REDIS_DB = 7


@pytest.fixture(scope="module")
def settings(tmp_path_factory, pg_url_module) -> Settings:
    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
    return Settings(
        data_dir=tmp_path_factory.mktemp("worker-data"),
        database_url=pg_url_module,
        broker_url=f"redis://127.0.0.1:6379/{REDIS_DB}",
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
    proc = WorkerProcess(settings, log_path)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def inputs(ctx, bench, frame):
    return make_inputs(ctx, bench, frame)
