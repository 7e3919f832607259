"""Peak memory of one training job against its estimate (``estimate_job_bytes``).

Runs a 1-epoch ``train_joint`` on a random layered DAG per size in a fresh process each
(peak RSS cannot be reset within one), and prints the measured peak next to the
estimate that ``GSNN_EDGES_WORKER_MEMORY_MB`` is checked against at submit.

    python benchmarks/memory.py --widths 100 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def one(width: int, tiers: int, rows: int) -> dict:
    import torch

    from gsnn_edges.simulate import random_layered_dag, simulate_frame
    from gsnn_edges.spec import TrainSpec
    from gsnn_edges.train import train_joint
    from gsnn_edges.train_validation import estimate_job_bytes

    torch.set_num_threads(2)
    bench = random_layered_dag(width, tiers, width, edge_prob=0.02, seed=0, observe_all=True)
    data = simulate_frame(bench.full, rows, seed=0)
    spec = TrainSpec()
    spec.training.epochs, spec.training.device = 1, "cpu"
    train_joint(bench.partial, data, spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "function_nodes": bench.partial.n_function,
        "peak_mib": peak / 2**20,
        "estimate_mib": estimate_job_bytes(bench.partial, spec, rows) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--tiers", type=int, default=10)
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.tiers, args.rows)))
        return
    print(f"{'function nodes':>15}{'peak MiB':>10}{'estimate MiB':>14}")
    for width in args.widths:
        cmd = [sys.executable, __file__, "--one", str(width), "--tiers", str(args.tiers)]
        out = subprocess.run(cmd + ["--rows", str(args.rows)], capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['function_nodes']:>15}{r['peak_mib']:>10.0f}{r['estimate_mib']:>14.0f}")


if __name__ == "__main__":
    main()
