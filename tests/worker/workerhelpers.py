"""Helpers for worker tests: a real `gsnn-edges worker` subprocess and job polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.datasets import create_dataset
from gsnn_edges.service.graphs import create_graph
from gsnn_edges.service.jobs import get_job, submit_job
from gsnn_edges.service.settings import Settings

from proctools import stop_process_group

REPO = Path(__file__).resolve().parents[2]
TENANT = "local"


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a worker process read the same settings."""
    env = dict(os.environ)
    env.update(
        {
            "GSNN_EDGES_DATA_DIR": str(settings.data_dir),
            "GSNN_EDGES_DATABASE_URL": settings.resolved_database_url,
            "GSNN_EDGES_BROKER_URL": settings.resolved_broker_url,
            "GSNN_EDGES_QUEUE_NAME": settings.queue_name,
            "GSNN_EDGES_HEARTBEAT_INTERVAL_S": str(settings.heartbeat_interval_s),
            "GSNN_EDGES_STALE_AFTER_S": str(settings.stale_after_s),
            "GSNN_EDGES_MAX_ATTEMPTS": str(settings.max_attempts),
        }
    )
    return env


class WorkerProcess:
    """``python -m gsnn_edges.cli worker`` in its own process group."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gsnn_edges.cli", "worker", "--loglevel", "info"],
            cwd=REPO,
            env=settings_env(settings),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a lost machine)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=20)
        self.log.close()


def make_inputs(ctx: ServiceContext, bench, frame) -> tuple[str, str]:
    graph = create_graph(ctx, TENANT, "bench", bench.partial.to_json())
    ds = create_dataset(ctx, TENANT, graph.id, frame.to_csv(index=False).encode(), "d.csv")
    return graph.id, ds.id


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
