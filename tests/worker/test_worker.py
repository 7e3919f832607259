"""A real Celery worker on Redis + PostgreSQL runs, fails, cancels and survives SIGKILL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.jobs import get_job, submit_job
from gsnn_edges.service.reaper import ReaperThread
from worker.config import celery_enqueue, celery_enqueue_group, create_celery

from patching import set_existing
from proctools import start_worker

pytestmark = pytest.mark.services
TENANT = "local"  # the tenant of the ``inputs`` fixture
TERMINAL = ("succeeded", "failed", "cancelled")


def submit(ctx: ServiceContext, inputs: tuple[str, str], epochs: int, **extra) -> str:
    spec = {"model": {"channels": 4, "layers": 3}, "training": {"epochs": epochs}, **extra}
    return submit_job(ctx, TENANT, *inputs, spec).job.id


def wait_for(ctx: ServiceContext, job_id: str, cond, timeout: float, log: Path | None = None):
    """Poll the job row until ``cond(job)``; fail with the worker log on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(ctx, TENANT, job_id)
        if cond(job):
            return job
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"job {job_id} stuck in {job.status} {job.progress}\n{tail}")


def test_worker_trains_job_to_succeeded(ctx, worker, inputs, log_path):
    job_id = submit(ctx, inputs, epochs=2)
    job = wait_for(ctx, job_id, lambda j: j.status in TERMINAL, 90, log_path)
    assert job.status == "succeeded", job.error
    assert job.progress["epoch"] == 2 and job.attempts == 1 and job.device == "cpu"
    assert job.result_attempt  # the attempt's own folder is the published one
    assert ctx.store.path(ctx.store.job_key(job_id, "edges", job.result_attempt)).exists()


def test_worker_failing_training_ends_failed_with_reason(ctx, worker, inputs, log_path):
    # bypasses API validation on purpose: training itself must raise and be recorded
    job_id = submit(ctx, inputs, epochs=2)
    with ctx.db.session() as s:  # corrupt the stored spec as a bad deploy might
        from gsnn_edges.service.models import Job

        row = s.get(Job, job_id)
        set_existing(row, "spec", {**row.spec, "model": {"norm": "banana"}})
        s.commit()
    job = wait_for(ctx, job_id, lambda j: j.status in TERMINAL, 90, log_path)
    assert job.status == "failed"
    assert job.error["type"] == "SpecValidationError" and "banana" in job.error["message"]


def test_worker_cancel_running_job_ends_cancelled(ctx, worker, inputs, log_path):
    from gsnn_edges.service.jobs import cancel_job

    job_id = submit(ctx, inputs, epochs=500)
    wait_for(ctx, job_id, lambda j: (j.progress or {}).get("epoch", 0) >= 1, 90, log_path)
    cancel_job(ctx, TENANT, job_id)
    job = wait_for(ctx, job_id, lambda j: j.status in TERMINAL, 30, log_path)
    assert job.status == "cancelled" and job.progress["epoch"] < 500


def test_worker_replicas_train_at_once_and_the_last_one_combines_them(settings, inputs, tmp_path):
    """replicas=2 on a worker with two processes: the API's group puts both replicas on
    the queue, they train side by side, and the worker that finishes the second runs
    the job itself, which combines them."""
    own = settings.model_copy(update={"queue_name": settings.queue_name + "_replicas"})
    celery = create_celery(own)
    ctx = ServiceContext.from_settings(
        own, enqueue=celery_enqueue(celery, own), enqueue_many=celery_enqueue_group(celery, own)
    )
    log = tmp_path / "replicas.log"
    pool = start_worker(own, log, concurrency=2)
    try:
        job_id = submit(ctx, inputs, epochs=3, replicas=2)
        job = wait_for(ctx, job_id, lambda j: j.status in TERMINAL, 120, log)
    finally:
        pool.stop()
        ctx.db.dispose()
    assert job.status == "succeeded", job.error
    first, second = job.children
    assert first.status == second.status == "succeeded"
    # side by side: each started before the other finished
    assert first.started_at < second.finished_at and second.started_at < first.finished_at
    assert job.started_at <= min(first.started_at, second.started_at)
    assert job.attempts == 1  # claimed once, after both replicas
    metrics = ctx.store.read_json(ctx.store.job_key(job_id, "metrics", job.result_attempt))
    assert [r["replica"] for r in metrics["replicas"]] == [0, 1]


@pytest.mark.slow  # a lost worker, a stale heartbeat and a rescue: ~15 s
def test_worker_sigkill_mid_job_is_requeued_by_reaper(settings, inputs, tmp_path):
    # own queue, so the module's shared worker cannot take the job
    own = settings.model_copy(update={"queue_name": settings.queue_name + "_kill"})
    ctx = ServiceContext.from_settings(own, enqueue=celery_enqueue(create_celery(own), own))
    log = tmp_path / "killed.log"
    victim = start_worker(own, log)
    # long enough that the kill reliably lands mid-job even on an idle machine
    job_id = submit(ctx, inputs, epochs=60)
    reaper = ReaperThread(ctx)
    reaper.start()
    try:
        running = wait_for(ctx, job_id, lambda j: (j.progress or {}).get("epoch", 0) >= 1, 90, log)
        victim.kill()
        assert running.status == "running" and running.progress["epoch"] < 60
        rescuer = start_worker(own, log)
        try:
            job = wait_for(ctx, job_id, lambda j: j.status in TERMINAL, 120, log)
        finally:
            rescuer.stop()
    finally:
        reaper.stop()
        victim.stop()
        ctx.db.dispose()
    assert job.status == "succeeded", job.error
    # >= 2: on a loaded machine a slow restart can cost one more stale-heartbeat claim
    assert job.attempts >= 2 and job.progress["epoch"] == 60
