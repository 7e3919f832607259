"""Edge recovery on the SPEC section 6 benchmark (or another family), several seeds.

Reports mean +/- std of test-edge AUC, MRR and filtered MRR for every scorer of one run:
the online magnitude regressor (best-validation checkpoint and last epoch), the score
test, the observed-node baseline and the hybrid (``gsnn_edges.inference.scorers``), and
the post-hoc correlation baseline fitted on the same trained GSNN; then each method's
AUC difference from the observed baseline, paired seed by seed (mean and standard error).
Pairs a scorer cannot score (the baseline's latent targets) rank last.

    python benchmarks/recovery.py --seeds 0 1 2 3 4 --config reference
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gsnn_edges.experiment import posthoc_baseline, run_experiment

from common import (
    CONFIGS,
    FAMILIES,
    add_patch_argument,
    base_parser,
    make_spec,
    paired_difference,
    write_json,
)

SCORERS = ("hybrid", "score_test", "observed_baseline")
METHODS = ("online_best", "online_last", "posthoc_corr", *SCORERS)
BASELINE = "observed_baseline"
KEYS = ("auc", "mrr", "filtered_mrr")


def one_seed(config: dict | None, family: str, seed: int, epochs: int | None, patch: dict) -> dict:
    spec = make_spec(config, patch, seed)
    if epochs:
        spec.training.epochs = epochs
    t0 = time.perf_counter()
    run = run_experiment(FAMILIES[family](seed), spec)
    seconds = time.perf_counter() - t0
    m = run.result.metrics
    return {
        "seed": seed,
        "best_epoch": m["best_epoch"],
        "seconds": seconds,
        "test_r2": m["test"]["r2"],
        "online_best": m["scorers"]["magnitude"]["test_edges"],
        "online_last": m["last_epoch"]["test_edges"],
        "posthoc_corr": posthoc_baseline(run),
        **{name: m["scorers"][name]["test_edges"] for name in SCORERS},
    }


def summarise(runs: list[dict]) -> dict:
    out = {}
    for method in METHODS:
        for key in KEYS:
            vals = np.array([r[method][key] for r in runs], dtype=float)
            out[f"{method}.{key}"] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=0))}
        mean, se = paired_difference(
            [r[method]["auc"] for r in runs], [r[BASELINE]["auc"] for r in runs]
        )
        out[f"{method}.auc_vs_baseline"] = {"mean": mean, "se": se}
    return out


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/recovery.json", families=False)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="reference")
    ap.add_argument("--family", choices=sorted(FAMILIES), default="benchmark")
    ap.add_argument("--epochs", type=int, default=None, help="override the epoch count")
    add_patch_argument(ap)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = []
    for seed in args.seeds:
        r = one_seed(CONFIGS[args.config], args.family, seed, args.epochs, args.patch)
        runs.append(r)
        cells = "  ".join(f"{m} {r[m]['auc']:.3f}" for m in METHODS)
        print(
            f"seed {seed} ({r['seconds']:.0f} s, best epoch {r['best_epoch']}) auc: {cells}",
            flush=True,
        )
    summary = summarise(runs)
    print(
        f"\nconfig={args.config}  family={args.family}  seeds={args.seeds}  "
        "(test edges, validation edges excluded)"
    )
    print(f"{'method':<18}" + "".join(f"{k:>22}" for k in KEYS) + f"{'auc - baseline':>22}")
    for method in METHODS:
        cells = "".join(
            f"{summary[f'{method}.{k}']['mean']:>14.3f} +/- {summary[f'{method}.{k}']['std']:.3f}"
            for k in KEYS
        )
        d = summary[f"{method}.auc_vs_baseline"]
        print(f"{method:<18}{cells}{d['mean']:>+14.3f} ({d['se']:.3f})")
    print()
    write_json(
        args.out,
        {
            "config": args.config,
            "family": args.family,
            "spec": CONFIGS[args.config],
            "patch": args.patch,
            "seeds": args.seeds,
            "summary": summary,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
