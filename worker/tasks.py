"""Task wrappers: reload by id, call the job service, return a JSON-able outcome."""

from __future__ import annotations

import logging
from functools import lru_cache

# Loaded in the worker's main process, before it forks a child per job, so that every
# child starts with torch, the training code and what a process's first optimizer
# imports (torch._dynamo, 1.5 s) already imported: ~3 s less per job and per
# confirmation chunk (benchmarks/README.md, "Confirmation on workers"). Importing starts
# no threads and no CUDA context, so the fork stays safe.
import torch._dynamo  # noqa: F401

import gsnn_edges.train  # noqa: F401
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.runner import run_next_job
from gsnn_edges.service.settings import get_settings
from worker.app import app
from worker.config import RUN_JOB, celery_enqueue, celery_enqueue_group

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _ctx() -> ServiceContext:
    """Service context of this process, built lazily (after fork) and migrated. Its
    queue sends a job's confirmation chunks (a group, so free workers fit them at once)."""
    settings = get_settings()
    return ServiceContext.from_settings(
        settings,
        enqueue=celery_enqueue(app, settings),
        enqueue_many=celery_enqueue_group(app, settings),
    )


@app.task(name=RUN_JOB)  # late acks come from task_acks_late in worker.config
def run_job(job_id: str) -> str:
    """Train the job it is fairest to run now (``job_id`` is this message's job, which
    gets a later turn when another tenant's goes first); nothing claimable is a no-op."""
    outcome = run_next_job(_ctx(), job_id)
    log.info("job %s: %s", job_id, outcome)
    return outcome
