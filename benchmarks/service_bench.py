"""What the wall-time benchmarks of the service share: a real Celery worker on a temporary
data dir (SQLite and the filesystem broker, as ``gsnn-edges serve`` uses them), the SPEC
section 6 benchmark uploaded through the job service, and a job run to its end."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ServiceBench:
    """A job-service context on ``data_dir`` with the benchmark graph and data uploaded."""

    data_dir: Path
    ctx: Any
    graph_id: str
    dataset_id: str

    @classmethod
    def create(cls, prefix: str) -> ServiceBench:
        from gsnn_edges.service.context import ServiceContext
        from gsnn_edges.service.datasets import create_dataset
        from gsnn_edges.service.graphs import create_graph
        from gsnn_edges.service.settings import Settings
        from gsnn_edges.simulate import converging_tier_graph, simulate_frame
        from worker.config import celery_enqueue, celery_enqueue_group, create_celery

        data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        settings = Settings(data_dir=data_dir, database_url=None, broker_url=None, api_keys="")
        celery = create_celery(settings)
        ctx = ServiceContext.from_settings(
            settings,
            enqueue=celery_enqueue(celery, settings),
            enqueue_many=celery_enqueue_group(celery, settings),
        )
        bench = converging_tier_graph(25)
        frame = simulate_frame(bench.full, 2500, noise_scale=0.15, seed=0)
        graph = create_graph(ctx, "local", "bench", bench.partial.to_json())
        data = frame.to_csv(index=False).encode()
        dataset = create_dataset(ctx, "local", graph.id, data, "d.csv")
        return cls(data_dir, ctx, graph.id, dataset.id)

    def start_worker(
        self, concurrency: int, threads: int, **settings: str
    ) -> tuple[subprocess.Popen, Path]:
        """``gsnn-edges worker --concurrency`` with ``threads`` torch threads per process and
        ``settings`` as ``GSNN_EDGES_*`` variables; returns it and its log."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GSNN_EDGES_")}
        env.update(GSNN_EDGES_DATA_DIR=str(self.data_dir), OMP_NUM_THREADS=str(threads))
        env.update({f"GSNN_EDGES_{k.upper()}": v for k, v in settings.items()})
        log = self.data_dir / "worker.log"
        argv = [sys.executable, "-m", "gsnn_edges.cli", "worker"]
        argv += ["--concurrency", str(concurrency)]
        out = log.open("ab")
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT), log

    def run(self, spec: dict, worker: subprocess.Popen, log: Path) -> tuple[Any, float]:
        """Submit ``spec`` as the API would and wait for it to succeed: the job and the
        wall time from submit to succeeded."""
        from gsnn_edges.service.jobs import get_job, submit_job

        t0 = time.perf_counter()
        job = submit_job(self.ctx, "local", self.graph_id, self.dataset_id, spec).job
        while (job := get_job(self.ctx, "local", job.id)).status in ("queued", "running"):
            time.sleep(0.1)
            if worker.poll() is not None:
                raise SystemExit(f"worker exited:\n{log.read_text()[-3000:]}")
        if job.status != "succeeded":
            raise SystemExit(f"job {job.status}: {job.error}")
        return job, time.perf_counter() - t0


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(timeout=60)
