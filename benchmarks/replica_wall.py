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

import numpy as np

from common import write_json
from service_bench import ServiceBench, stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/replica_wall.json")
    args = ap.parse_args()

    bench = ServiceBench.create("gsnn-replica-wall-")
    worker, log = bench.start_worker(args.replicas, args.threads)
    spec = {"training": {"epochs": args.epochs, "device": "cpu"}}
    times: dict[int, list[float]] = {1: [], args.replicas: []}
    try:
        for rep in range(args.repeats):
            for r in (1, args.replicas):
                job, seconds = bench.run({**spec, "replicas": r}, worker, log)
                times[r].append(seconds)
                spans = "".join(  # each replica's start and end, from the job's creation
                    f"  replica {c.replica}: {(c.started_at - job.created_at).total_seconds():.1f}"
                    f"-{(c.finished_at - job.created_at).total_seconds():.1f} s"
                    for c in job.children
                )
                print(f"repeat {rep}: replicas={r} {times[r][-1]:.1f} s{spans}", flush=True)
    finally:
        stop(worker)
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
