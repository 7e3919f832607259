"""Celery app built from :class:`~gsnn_edges.service.settings.Settings`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, group

from gsnn_edges.service.context import Enqueue, EnqueueMany
from gsnn_edges.service.settings import Settings

RUN_JOB = "gsnn_edges.run_job"


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.is_filesystem_broker:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    # Redis re-delivers unacked messages after this; keep it above the longest job.
    return {"visibility_timeout": settings.job_time_limit_s + 3600}


def create_celery(settings: Settings) -> Celery:
    """Celery app for long, exclusive training jobs.

    Late acks + prefetch 1 + reject on worker loss keep a job's message until it is
    done; one task per child gives every job a fresh process (no CUDA state carried).
    Stale jobs are reaped by every API process (``ReaperThread``), not by a beat task:
    a worker busy with a long job could not run one, and the API is always deployed.
    """
    app = Celery("gsnn_edges", broker=settings.resolved_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        task_time_limit=settings.job_time_limit_s,
        task_soft_time_limit=max(1, settings.job_time_limit_s - 30),
        task_default_queue=settings.queue_name,
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=not settings.is_filesystem_broker,
    )
    return app


def celery_enqueue(app: Celery, settings: Settings) -> Enqueue:
    """``enqueue(job_id)`` sending ``gsnn_edges.run_job`` by name (no task import)."""

    def enqueue(job_id: str) -> None:
        app.send_task(RUN_JOB, args=[job_id], queue=settings.queue_name)

    return enqueue


def celery_enqueue_group(app: Celery, settings: Settings) -> EnqueueMany:
    """``enqueue_many(job_ids)``: one ``gsnn_edges.run_job`` message per job, sent as a
    Celery group (a job's replicas, for as many free workers as there are)."""

    def enqueue_many(job_ids: list[str]) -> None:
        sig = lambda job_id: app.signature(RUN_JOB, args=[job_id], queue=settings.queue_name)
        group(sig(j) for j in job_ids).apply_async()

    return enqueue_many


def broker_ping(app: Celery, settings: Settings) -> Callable[[], None]:
    """Zero-argument probe raising if the broker is unreachable."""

    def ping() -> None:
        if settings.is_filesystem_broker:
            probe = settings.broker_folder / "queue"
            if not probe.is_dir():
                raise RuntimeError(f"broker folder {probe} missing")
            return
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    return ping
