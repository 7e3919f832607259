"""How the training defaults were chosen: candidate configurations on three graph families.

Families (held-out function -> function edges split half validation, half test):
- ``benchmark``: the converging-tier DAG of SPEC section 6 (width 25, 50 function nodes);
- ``layered_many_obs``: random layered DAG, 5 tiers x 10, 10 outputs on the last tier;
- ``layered_few_obs``: the same family observed through only 3 outputs.

Every configuration is a patch on the reference configuration (SPEC section 6). Reports
mean test AUC / MRR / filtered MRR over seeds at the best-validation checkpoint.

    python benchmarks/defaults_sweep.py --seeds 0 1 2
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gsnn_edges.experiment import run_experiment

from common import FAMILIES, REFERENCE, base_parser, make_spec, write_json

CANDIDATES = {
    "reference": {},
    "gsnn_lr_1e-3": {"training": {"lr": 1e-3}},
    "gsnn_lr_1e-3+reg_lr_1e-2": {"training": {"lr": 1e-3}, "regressor": {"lr": 1e-2}},
    "gsnn_lr_1e-3+no_dropout": {
        "training": {"lr": 1e-3},
        "model": {"dropout": 0.0},
        "regressor": {"dropout": 0.0},
    },
    "gsnn_lr_1e-3+sum_only": {"training": {"lr": 1e-3}, "regressor": {"aggregators": ["sum"]}},
    # follow-ups on top of the chosen defaults (GSNN lr 1e-3)
    "defaults+reg_lr_3e-4": {"training": {"lr": 1e-3}, "regressor": {"lr": 3e-4}},
    "defaults+reg_lr_1e-4": {"training": {"lr": 1e-3}, "regressor": {"lr": 1e-4}},
    "defaults+reg_no_dropout": {"training": {"lr": 1e-3}, "regressor": {"dropout": 0.0}},
    "defaults+ridge_0.1": {"training": {"lr": 1e-3}, "regressor": {"ridge": 0.1}},
    "defaults+channels_16": {"training": {"lr": 1e-3}, "model": {"channels": 16}},
    "defaults+layers_4": {"training": {"lr": 1e-3}, "model": {"layers": 4}},
    "defaults+layers_8": {"training": {"lr": 1e-3}, "model": {"layers": 8}},
    "defaults+layer_norm": {"training": {"lr": 1e-3}, "model": {"norm": "layer"}},
}

KEYS = ("auc", "mrr", "filtered_mrr")


def main() -> None:
    ap = base_parser(
        __doc__, default_out="benchmarks/results/defaults_sweep.json", default_seeds=(0, 1, 2)
    )
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for fam in args.families:
        for name in args.candidates:
            runs = []
            for seed in args.seeds:
                t0 = time.perf_counter()
                run = run_experiment(
                    FAMILIES[fam](seed), make_spec(REFERENCE, CANDIDATES[name], seed)
                )
                m = run.result.metrics
                runs.append(
                    {
                        "seed": seed,
                        "seconds": time.perf_counter() - t0,
                        "best": m["scorers"]["magnitude"]["test_edges"],
                        "last": m["last_epoch"]["test_edges"],
                        "r2": m["test"]["r2"],
                    }
                )
            row = {"family": fam, "candidate": name, "runs": runs}
            for which in ("best", "last"):
                for k in KEYS:
                    row[f"{which}_{k}"] = float(np.mean([r[which][k] for r in runs]))
            row["r2"] = float(np.mean([r["r2"] for r in runs]))
            rows.append(row)
            print(
                f"{fam:<18} {name:<28} "
                + " ".join(f"{w}_{k}={row[f'{w}_{k}']:.3f}" for w in ("best", "last") for k in KEYS)
                + f" r2={row['r2']:.3f}",
                flush=True,
            )
    write_json(args.out, {"seeds": args.seeds, "reference": REFERENCE, "rows": rows})


if __name__ == "__main__":
    main()
