"""Task wrappers: reload by id, call the job service, return a JSON-able outcome."""

from __future__ import annotations

import logging
from functools import lru_cache

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.runner import run_job as run_job_service
from gsnn_edges.service.settings import get_settings
from worker.app import app
from worker.config import RUN_JOB, celery_enqueue

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _ctx() -> ServiceContext:
    """Service context of this process, built lazily (after fork) and migrated."""
    settings = get_settings()
    return ServiceContext.from_settings(settings, enqueue=celery_enqueue(app, settings))


@app.task(name=RUN_JOB, acks_late=True)
def run_job(job_id: str) -> str:
    """Train one job; a re-delivered or already claimed job is a no-op."""
    outcome = run_job_service(_ctx(), job_id)
    log.info("job %s: %s", job_id, outcome)
    return outcome
