"""Per-epoch cost of joint training (GSNN + online regressor) against plain GSNN training.

For each size (function nodes) a fresh subprocess builds a random layered DAG (10 tiers,
about 3 parents per node), then times on the same process and data:

- epochs of plain GSNN training and of joint training (batch 64, 31 batches, 6 layers,
  aggregators sum+max; a warm-up epoch each, then 3 alternating epochs, median);
- the time spent inside ``aux_step`` over that epoch, against the bare dense work of its
  terms: ``[P*K*B, N] @ [N, N]`` forward and backward, one AdamW step on ``W`` and one
  Gram update (the floor any implementation pays), for the same 31 steps;
- ``evaluate()`` and ``evaluate_against()``; peak resident memory of the subprocess;
- the scorers that run once per job after training: the score test's one eval-mode pass
  over the same 31 batches (``score_test_s``) and the observed-node baseline on the same
  rows (``baseline_s``); ``per_epoch/plain`` is ``(joint + score_test / 30) / plain``, the
  cost per epoch of a default 30-epoch job against plain training.

    python benchmarks/speed.py --sizes 50 200 500 2000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from common import base_parser, write_json

LAYERS, BATCH, N_BATCHES, AGGS, REPEATS = 6, 64, 31, ("sum", "max"), 3


def _graph(n_function: int):
    from gsnn_edges.simulate import random_layered_dag

    tiers = 10 if n_function >= 100 else 5
    width = n_function // tiers
    # about 2 extra parents per node beyond the matched one
    prob = min(1.0, 2.0 / (width * tiers / 2))
    return random_layered_dag(width, tiers, width, edge_prob=prob, seed=0, hold_out_fraction=0.1)


def _epoch(model, opt, reg, x, y) -> tuple[float, float]:
    aux = 0.0
    t0 = time.perf_counter()
    for b in range(N_BATCHES):
        xb, yb = x[b * BATCH : (b + 1) * BATCH], y[b * BATCH : (b + 1) * BATCH]
        opt.zero_grad(set_to_none=True)
        if reg is not None:
            reg.pre_forward()
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        if reg is not None:
            reg.arm_retained_grads()
        loss.backward()
        if reg is not None:
            t1 = time.perf_counter()
            reg.aux_step()
            aux += time.perf_counter() - t1
        opt.step()
    return time.perf_counter() - t0, aux


def _floor(n: int, steps: int) -> float:
    """Bare dense work of one aux_step, times ``steps``."""
    rows = (LAYERS - 1) * len(AGGS) * BATCH
    X, Y = torch.randn(rows, n), torch.randn(rows, n)
    W = torch.nn.Parameter(torch.randn(n, n) * 0.01)
    opt = torch.optim.AdamW([W], lr=1e-3)
    gram = torch.zeros(n, n)

    def run(steps_: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps_):
            loss = (X @ W - Y).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            gram.add_(X.t() @ X)
        return time.perf_counter() - t0

    run(2)  # warm-up
    return statistics.median(run(steps) for _ in range(REPEATS))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n_function: int) -> dict:
    from gsnn_edges import GSNN, MagnitudeEdgeRegressor
    from gsnn_edges.inference.observed_baseline import observed_baseline
    from gsnn_edges.inference.score_test import ScoreTestScorer
    from gsnn_edges.simulate import simulate

    torch.manual_seed(0)
    bench = _graph(n_function)
    g = bench.partial
    X, Y = simulate(bench.full, BATCH * N_BATCHES, seed=0)
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    out = {"n_function": g.n_function, "n_ff_edges": len(g.function_edges())}
    runners = {}
    for mode in ("plain", "joint"):
        model = GSNN(g.edge_index_dict, g.node_names_dict, 8, LAYERS, dropout=0.2, norm="none")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        reg = (
            MagnitudeEdgeRegressor(model, g, aggregators=AGGS, dropout=0.2)
            if mode == "joint"
            else None
        )
        runners[mode] = (model, opt, reg)
        _epoch(model, opt, reg, x, y)  # warm-up
    # alternate the modes so background load hits both alike; report medians
    times = {"plain": [], "joint": [], "aux": []}
    for _ in range(REPEATS):
        for mode, (model, opt, reg) in runners.items():
            seconds, aux = _epoch(model, opt, reg, x, y)
            times[mode].append(seconds)
            if reg is not None:
                times["aux"].append(aux)
    out["plain_epoch_s"] = statistics.median(times["plain"])
    out["joint_epoch_s"] = statistics.median(times["joint"])
    out["aux_step_s"] = statistics.median(times["aux"])
    reg = runners["joint"][2]
    out["aux_floor_s"] = _floor(g.n_function, N_BATCHES)
    out["evaluate_s"] = _timed(reg.evaluate)
    out["evaluate_against_s"] = _timed(lambda: reg.evaluate_against(bench.held_out))
    batches = [
        (x[b * BATCH : (b + 1) * BATCH], y[b * BATCH : (b + 1) * BATCH]) for b in range(N_BATCHES)
    ]
    scorer = ScoreTestScorer(runners["joint"][0], g)
    out["score_test_s"] = _timed(lambda: scorer.fit(batches).score_matrix())
    out["baseline_s"] = _timed(lambda: observed_baseline(g, X, Y))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = base_parser(
        __doc__, default_out="benchmarks/results/speed.json", families=False, default_seeds=None
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500, 2000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker)))
        return
    rows = []
    cols = (
        "plain_epoch_s",
        "joint_epoch_s",
        "aux_step_s",
        "aux_floor_s",
        "evaluate_s",
        "evaluate_against_s",
        "score_test_s",
        "baseline_s",
        "peak_rss_mb",
    )
    print(
        f"{'N':>6} {'ff':>6}" + "".join(f"{c:>20}" for c in cols) + f"{'joint/plain':>13}"
        f"{'aux/floor':>11}{'per_epoch/plain':>17}"
    )
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--worker", str(n), "--threads", str(args.threads)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        r["joint_over_plain"] = r["joint_epoch_s"] / r["plain_epoch_s"]
        r["aux_over_floor"] = r["aux_step_s"] / r["aux_floor_s"]
        r["per_epoch_over_plain"] = (r["joint_epoch_s"] + r["score_test_s"] / 30) / r[
            "plain_epoch_s"
        ]
        rows.append(r)
        print(
            f"{r['n_function']:>6} {r['n_ff_edges']:>6}"
            + "".join(f"{r[c]:>20.3f}" for c in cols)
            + f"{r['joint_over_plain']:>13.2f}{r['aux_over_floor']:>11.2f}"
            + f"{r['per_epoch_over_plain']:>17.2f}",
            flush=True,
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    write_json(args.out, {"threads": args.threads, "device": device, "rows": rows})


if __name__ == "__main__":
    main()
