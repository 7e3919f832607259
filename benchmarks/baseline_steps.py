"""The observed baseline's forward selection: test AUC by number of selection steps.

No training: each seed simulates a family's data exactly as ``recovery.py`` does (same
rows, same training split, same test edges), scores it with
``observed_baseline(..., steps=s)`` for every ``s`` asked for, and reports test-edge AUC
(mean +/- std) and each setting's difference from ``steps=0`` paired seed by seed (mean
and standard error). Families with latent targets are included: the baseline leaves
those unscored (ranked last), so they stay near 0.5 whatever the setting.

    python benchmarks/baseline_steps.py --seeds 0 1 2 3 4 5 6 7 8 9 --steps 0 1 2 3 4
"""

from __future__ import annotations

import numpy as np
import torch

from gsnn_edges.experiment import experiment_inputs
from gsnn_edges.graph import pair_indices
from gsnn_edges.inference.edge_table import function_edge_mask
from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.metrics import score_matrix_metrics
from gsnn_edges.train import _split_data
from gsnn_edges.train_validation import frame_arrays

from common import FAMILIES, base_parser, make_spec, paired_difference, write_json


def one_seed(family: str, seed: int, steps: list[int]) -> dict[int, float]:
    bench = FAMILIES[family](seed)
    spec = make_spec(None, {}, seed)
    data, val, test = experiment_inputs(bench, spec)
    X, Y = frame_arrays(bench.partial, data)
    split = _split_data(X, Y, spec.training.test_fraction, seed, torch.device("cpu"))
    x, y = split.x_train.numpy(), split.y_train.numpy()
    names = bench.partial.node_names_dict["function"]
    in_graph = function_edge_mask(bench.partial, len(names))
    pos, val_pos = pair_indices(test, names), pair_indices(val, names)
    out = {}
    for s in steps:
        scores = observed_baseline(bench.partial, x, y, steps=s).scores
        out[s] = score_matrix_metrics(scores, in_graph, pos, exclude=val_pos)["auc"]
    return out


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/baseline_steps.json")
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for family in args.families:
        runs = [one_seed(family, seed, args.steps) for seed in args.seeds]
        auc = {s: np.array([r[s] for r in runs]) for s in args.steps}
        results[family] = {str(s): auc[s].tolist() for s in args.steps}
        first = args.steps[0]
        print(f"\n{family} (seeds {args.seeds}): test AUC, paired difference from steps={first}")
        for s in args.steps:
            diff, se = paired_difference(auc[s], auc[first])
            mean, sd = auc[s].mean(), auc[s].std()
            print(f"  steps={s}: {mean:.3f} +/- {sd:.3f}   {diff:+.3f} ({se:.3f})")
    write_json(args.out, {"seeds": args.seeds, "steps": args.steps, "auc": results})


if __name__ == "__main__":
    main()
