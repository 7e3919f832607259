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

from gsnn_edges.experiment import experiment_inputs
from gsnn_edges.graph import pair_indices
from gsnn_edges.inference.edge_table import function_edge_mask
from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.metrics import score_matrix_metrics

from common import (
    FAMILIES,
    base_parser,
    make_spec,
    paired_difference,
    training_split,
    write_json,
)


def one_seed(family: str, seed: int, settings: list[tuple[int, int]]) -> dict[tuple, float]:
    bench = FAMILIES[family](seed)
    spec = make_spec(None, {}, seed)
    data, val, test = experiment_inputs(bench, spec)
    split = training_split(bench.partial, data, spec)
    x, y = split.x_train.numpy(), split.y_train.numpy()
    names = bench.partial.node_names_dict["function"]
    in_graph = function_edge_mask(bench.partial, len(names))
    pos, val_pos = pair_indices(test, names), pair_indices(val, names)
    out = {}
    for s, d in settings:
        scores = observed_baseline(bench.partial, x, y, steps=s, index_degree=d).scores
        out[s, d] = score_matrix_metrics(scores, in_graph, pos, exclude=val_pos)["auc"]
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
