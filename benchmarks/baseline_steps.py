"""The observed baseline's settings: test AUC by forward-selection steps and by the
degree of the fitted value's powers.

No training: each seed simulates a family's data exactly as ``recovery.py`` does (same
rows, same training split, same test edges), scores it with
``observed_baseline(..., steps=s, index_degree=d)`` for every ``s`` and ``d`` asked for,
and reports test-edge AUC (mean +/- std) and each setting's difference from the first
paired seed by seed (mean and standard error). Families with latent targets are
included: the baseline leaves those unscored (ranked last), so they stay near 0.5
whatever the setting.

    python benchmarks/baseline_steps.py --seeds 0 1 2 3 4 5 6 7 8 9 --steps 0 1 2 3 4 \\
        --index-degrees 1
    python benchmarks/baseline_steps.py --seeds 0 1 2 3 4 5 6 7 8 9 --steps 3 \\
        --index-degrees 1 2 3 4 5
"""

from __future__ import annotations

import numpy as np
import torch

from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.metrics import score_matrix_metrics

from common import base_parser, paired_difference, seed_data, write_json


def one_seed(family: str, seed: int, settings: list[tuple[int, int]]) -> dict[tuple, float]:
    sd = seed_data(family, seed)
    x, y = sd.split.x_train.numpy(), sd.split.y_train.numpy()
    out = {}
    for s, d in settings:
        scores = observed_baseline(sd.bench.partial, x, y, steps=s, index_degree=d).scores
        out[s, d] = score_matrix_metrics(scores, sd.in_graph, sd.test, exclude=sd.val)["auc"]
    return out


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/baseline_steps.json")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--index-degrees", type=int, nargs="+", default=[3])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = [(s, d) for d in args.index_degrees for s in args.steps]
    label = {(s, d): f"steps={s}, index_degree={d}" for s, d in settings}
    results = {}
    for family in args.families:
        runs = [one_seed(family, seed, settings) for seed in args.seeds]
        auc = {k: np.array([r[k] for r in runs]) for k in settings}
        results[family] = {label[k]: auc[k].tolist() for k in settings}
        first = settings[0]
        print(f"\n{family} (seeds {args.seeds}): test AUC, paired difference from {label[first]}")
        for k in settings:
            diff, se = paired_difference(auc[k], auc[first])
            mean, sd = auc[k].mean(), auc[k].std()
            better = int((auc[k] > auc[first]).sum())
            print(f"  {label[k]}: {mean:.4f} +/- {sd:.4f}   {diff:+.4f} ({se:.4f}), ", end="")
            print(f"higher in {better}")
    write_json(args.out, {"seeds": args.seeds, "settings": list(label.values()), "auc": results})


if __name__ == "__main__":
    main()
