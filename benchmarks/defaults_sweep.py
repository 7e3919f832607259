"""Training defaults: candidate patches on a base configuration, paired seed by seed.

Families (``common.FAMILIES``; held-out function -> function edges split half validation,
half test): the SPEC section 6 benchmark, ``layered_all_obs`` (every function node has an
output), ``layered_many_obs`` / ``layered_few_obs`` (5 tiers x 10 observed through 10 / 3
outputs on the last tier, tiers 1-3 latent).

Every candidate is a patch on ``--base`` (``defaults``: the library defaults, i.e. the
service's; ``reference``: SPEC section 6). For each family and candidate the script prints
the test AUC of every scorer of the run (hybrid, score test, observed baseline, magnitude
W at the best-validation and at the last epoch) as mean +/- std over seeds, and its
difference from the first candidate given (the base itself: ``base``), paired seed by
seed: mean (standard error). ``--holdout-seeds`` repeats the paired differences on those
seeds alone (e.g. seeds not used to screen the candidates).

    python benchmarks/defaults_sweep.py --families layered_many_obs layered_few_obs \\
        --seeds 0 1 2 3 4 --candidates base lr_3e-3 epochs_60 --threads 1
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gsnn_edges.experiment import run_experiment

from common import CONFIGS, FAMILIES, base_parser, make_spec, paired_difference, write_json

CANDIDATES = {
    "base": {},
    # patches on the library defaults (--base defaults), 2026-11-28
    "lr_3e-3": {"training": {"lr": 3e-3}},
    "lr_3e-4": {"training": {"lr": 3e-4}},
    "epochs_60": {"training": {"epochs": 60}},
    "batch_32": {"training": {"batch_size": 32}},
    "channels_16": {"model": {"channels": 16}},
    "layers_4": {"model": {"layers": 4}},
    "layers_8": {"model": {"layers": 8}},
    "dropout_0": {"model": {"dropout": 0.0}},
    "dropout_0.1": {"model": {"dropout": 0.1}},
    "reg_lr_3e-3": {"regressor": {"lr": 3e-3}},
    "reg_lr_3e-4": {"regressor": {"lr": 3e-4}},
    # patches on the reference configuration (--base reference), 2026-11-25
    "gsnn_lr_1e-3": {"training": {"lr": 1e-3}},
    "gsnn_lr_1e-3+reg_lr_1e-2": {"training": {"lr": 1e-3}, "regressor": {"lr": 1e-2}},
    "gsnn_lr_1e-3+no_dropout": {
        "training": {"lr": 1e-3},
        "model": {"dropout": 0.0},
        "regressor": {"dropout": 0.0},
    },
    "gsnn_lr_1e-3+sum_only": {"training": {"lr": 1e-3}, "regressor": {"aggregators": ["sum"]}},
    "defaults+reg_lr_3e-4": {"training": {"lr": 1e-3}, "regressor": {"lr": 3e-4}},
    "defaults+reg_lr_1e-4": {"training": {"lr": 1e-3}, "regressor": {"lr": 1e-4}},
    "defaults+reg_no_dropout": {"training": {"lr": 1e-3}, "regressor": {"dropout": 0.0}},
    "defaults+ridge_0.1": {"training": {"lr": 1e-3}, "regressor": {"ridge": 0.1}},
    "defaults+channels_16": {"training": {"lr": 1e-3}, "model": {"channels": 16}},
    "defaults+layers_4": {"training": {"lr": 1e-3}, "model": {"layers": 4}},
    "defaults+layers_8": {"training": {"lr": 1e-3}, "model": {"layers": 8}},
    "defaults+layer_norm": {"training": {"lr": 1e-3}, "model": {"norm": "layer"}},
}

SCORERS = ("hybrid", "score_test", "observed_baseline", "online_best", "online_last")


def one_run(base: dict | None, family: str, patch: dict, seed: int) -> dict:
    """Test AUC of every scorer, test r2 and wall time of one training run."""
    t0 = time.perf_counter()
    run = run_experiment(FAMILIES[family](seed), make_spec(base, patch, seed))
    m = run.result.metrics
    sc = m["scorers"]
    auc = {
        "hybrid": sc["hybrid"]["test_edges"]["auc"],
        "score_test": sc["score_test"]["test_edges"]["auc"],
        "observed_baseline": sc["observed_baseline"]["test_edges"]["auc"],
        "online_best": sc["magnitude"]["test_edges"]["auc"],
        "online_last": m["last_epoch"]["test_edges"]["auc"],
    }
    return {
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "best_epoch": m["best_epoch"],
        "r2": m["test"]["r2"],
        "auc": auc,
    }


def paired(runs: list[dict], ref: list[dict], scorer: str, seeds: list[int]) -> dict:
    """Mean and standard error of ``runs - ref`` test AUC over ``seeds`` (paired by seed)."""
    a = {r["seed"]: r["auc"][scorer] for r in runs}
    b = {r["seed"]: r["auc"][scorer] for r in ref}
    mean, se = paired_difference([a[s] for s in seeds], [b[s] for s in seeds])
    return {"mean": mean, "se": se, "n": len(seeds)}


def summarise(runs: list[dict], ref: list[dict], holdout: list[int]) -> dict:
    seeds = [r["seed"] for r in runs]
    out: dict = {"seconds": float(np.mean([r["seconds"] for r in runs]))}
    out["r2"] = float(np.mean([r["r2"] for r in runs]))
    for s in SCORERS:
        vals = np.array([r["auc"][s] for r in runs], dtype=float)
        out[s] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=0))}
        out[f"{s}.vs_base"] = paired(runs, ref, s, seeds)
        if holdout:
            out[f"{s}.vs_base_holdout"] = paired(runs, ref, s, [x for x in seeds if x in holdout])
    return out


def print_row(family: str, name: str, row: dict, holdout: list[int]) -> None:
    def diff(s: str, key: str) -> str:
        return f"{row[f'{s}.{key}']['mean']:+.3f}({row[f'{s}.{key}']['se']:.3f})"

    line = "  ".join(
        f"{s} {row[s]['mean']:.3f}+/-{row[s]['std']:.3f} {diff(s, 'vs_base')}" for s in SCORERS
    )
    print(f"{family:<17} {name:<12} {line}  r2 {row['r2']:.3f}  {row['seconds']:.1f} s", flush=True)
    if holdout:
        held = "  ".join(f"{s} {diff(s, 'vs_base_holdout')}" for s in SCORERS)
        print(f"{'':<17} {'  seeds ' + str(holdout):<12} {held}", flush=True)


def main() -> None:
    ap = base_parser(
        __doc__, default_out="benchmarks/results/defaults_sweep.json", default_seeds=(0, 1, 2)
    )
    ap.add_argument("--base", choices=sorted(CONFIGS), default="defaults")
    ap.add_argument(
        "--candidates",
        nargs="+",
        choices=list(CANDIDATES),
        default=["base", "lr_3e-3", "lr_3e-4", "epochs_60", "channels_16", "layers_4"],
        help="the first one is the reference of the paired differences",
    )
    ap.add_argument("--holdout-seeds", type=int, nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = CONFIGS[args.base]
    rows = []
    for fam in args.families:
        ref: list[dict] | None = None
        for name in args.candidates:
            runs = [one_run(base, fam, CANDIDATES[name], seed) for seed in args.seeds]
            ref = ref or runs
            row = {"family": fam, "candidate": name, "patch": CANDIDATES[name], "runs": runs}
            row.update(summarise(runs, ref, args.holdout_seeds))
            rows.append(row)
            print_row(fam, name, row, args.holdout_seeds)
    write_json(
        args.out,
        {
            "base": args.base,
            "spec": base,
            "seeds": args.seeds,
            "reference": args.candidates[0],
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
