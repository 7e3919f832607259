"""Wall time of a job with ``replicas: R`` on a worker with R processes, against one replica.

Starts ``gsnn-edges worker --concurrency R`` (SQLite and the filesystem broker in a
temporary data dir, as ``gsnn-edges serve`` uses them; ``--threads`` torch threads per
process), submits through the job service, the way the API does (the replicas go out as
a Celery group), the SPEC section 6 benchmark with ``replicas: 1`` and then with
``replicas: R``, alternating ``--repeats`` times, and reports submit-to-succeeded wall time
of each and their ratio. Needs R free cores (or R GPUs) for the replicas to run side by
side; on fewer the ratio measures the machine, not the service.

    python benchmarks/replica_wall.py --replicas 2 --threads 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_json


def start_worker(data_dir: Path, concurrency: int, threads: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSNN_EDGES_")}
    env.update(GSNN_EDGES_DATA_DIR=str(data_dir), OMP_NUM_THREADS=str(threads))
    argv = [sys.executable, "-m", "gsnn_edges.cli", "worker", "--concurrency", str(concurrency)]
    return subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/replica_wall.json")
    args = ap.parse_args()

    from gsnn_edges.service.context import ServiceContext
    from gsnn_edges.service.datasets import create_dataset
    from gsnn_edges.service.graphs import create_graph
    from gsnn_edges.service.jobs import get_job, submit_job
    from gsnn_edges.service.settings import Settings
    from gsnn_edges.simulate import converging_tier_graph, simulate_frame
    from worker.config import celery_enqueue, celery_enqueue_group, create_celery

    data_dir = Path(tempfile.mkdtemp(prefix="gsnn-replica-wall-"))
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
    dataset = create_dataset(ctx, "local", graph.id, frame.to_csv(index=False).encode(), "d.csv")
    log = data_dir / "worker.log"
    worker = start_worker(data_dir, args.replicas, args.threads, log)
    spec = {"training": {"epochs": args.epochs, "device": "cpu"}}
    times: dict[int, list[float]] = {1: [], args.replicas: []}
    try:
        for rep in range(args.repeats):
            for r in (1, args.replicas):
                t0 = time.perf_counter()
                job = submit_job(ctx, "local", graph.id, dataset.id, {**spec, "replicas": r}).job
                while (job := get_job(ctx, "local", job.id)).status in ("queued", "running"):
                    time.sleep(0.1)
                    if worker.poll() is not None:
                        raise SystemExit(f"worker exited:\n{log.read_text()[-3000:]}")
                if job.status != "succeeded":
                    raise SystemExit(f"job {job.status}: {job.error}")
                times[r].append(time.perf_counter() - t0)
                spans = "".join(  # each replica's start and end, from the job's creation
                    f"  replica {c.replica}: {(c.started_at - job.created_at).total_seconds():.1f}"
                    f"-{(c.finished_at - job.created_at).total_seconds():.1f} s"
                    for c in job.children
                )
                print(f"repeat {rep}: replicas={r} {times[r][-1]:.1f} s{spans}", flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    one, many = np.median(times[1]), np.median(times[args.replicas])
    print(
        f"\nmedian wall time: 1 replica {one:.1f} s, {args.replicas} replicas {many:.1f} s, "
        f"ratio {many / one:.2f} ({args.threads} torch thread(s) per worker process, "
        f"{os.cpu_count()} cores)"
    )
    write_json(
        args.out,
        {"args": vars(args), "seconds": {str(k): v for k, v in times.items()}, "ratio": many / one},
    )


if __name__ == "__main__":
    main()
