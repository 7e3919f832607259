"""Wall time the confirmation of ``confirm.top`` candidates adds to a job, in the job's own
process and fanned out as chunk jobs over a worker's processes.

For each ``--workers W`` and ``--chunks C`` it starts ``gsnn-edges worker --concurrency W``
with ``GSNN_EDGES_CONFIRM_CHUNKS=C`` (SQLite and the filesystem broker in a temporary data
dir, ``--threads`` torch threads per process), runs a 1-epoch job that waits for the
worker to start, then the SPEC section 6 benchmark job through the job service without
confirmation and with ``confirm.top = --top``, alternating ``--repeats`` times. It reports
the median submit-to-succeeded wall time of each and the confirmation's added time as a
multiple of the job without it. Chunks run side by side only on as many free cores (or
GPUs) as worker processes.

    python benchmarks/confirm_wall.py --workers 1 2 --chunks 1 2 4 --threads 1
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from common import write_json
from service_bench import ServiceBench, stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/confirm_wall.json")
    args = ap.parse_args()

    bench = ServiceBench.create("gsnn-confirm-wall-")
    spec = {"training": {"device": "cpu"}}
    rows = []
    for workers in args.workers:
        for chunks in args.chunks:
            worker, log = bench.start_worker(workers, args.threads, confirm_chunks=str(chunks))
            bench.run({**spec, "training": {"epochs": 1, "device": "cpu"}}, worker, log)  # warm
            times: dict[str, list[float]] = {"plain": [], "confirm": []}
            fit_seconds = []
            try:
                for rep in range(args.repeats):
                    for what in times:
                        run = {**spec, "confirm": {"top": args.top if what == "confirm" else 0}}
                        job, seconds = bench.run(run, worker, log)
                        times[what].append(seconds)
                        if what == "confirm":
                            from gsnn_edges.service.results import load_metrics

                            info = load_metrics(bench.ctx, "local", job.id)["confirm"]
                            fit_seconds.append(info["seconds"])
                        print(
                            f"workers={workers} chunks={chunks} repeat {rep}: {what} "
                            f"{seconds:.1f} s",
                            flush=True,
                        )
            finally:
                stop(worker)
            plain, confirm = np.median(times["plain"]), np.median(times["confirm"])
            rows.append(
                {
                    "workers": workers,
                    "chunks": chunks,
                    "plain_s": plain,
                    "confirm_s": confirm,
                    "added_x": (confirm - plain) / plain,
                    "fit_s": float(np.median(fit_seconds)),
                    "seconds": times,
                }
            )
    cores = os.cpu_count()
    print(f"\n{args.threads} torch thread(s) per worker process, {cores} cores, top {args.top}")
    print(
        "| worker processes | chunks | job without confirmation | with | added, x the job "
        "without | fitting (summed over chunks) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['workers']} | {r['chunks']} | {r['plain_s']:.1f} s | {r['confirm_s']:.1f} s "
            f"| {r['added_x']:.2f} | {r['fit_s']:.1f} s |"
        )
    write_json(args.out, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
