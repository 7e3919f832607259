"""How much do the data say about a missing edge into a latent node? A refit ceiling.

Every scorer of a run reads first-order signals of one trained network. This benchmark
asks the stronger question directly: add each candidate edge to the trained GSNN on its
own, fit it on the training rows, and measure what it buys on the rows the model never
trained on (the likelihood-ratio comparison the confirmation makes, one candidate at a
time: ``gsnn_edges.inference.confirm``'s edge, fit and held-out loss, variant 0 the
trained model, variant ``m`` the model plus candidate ``m`` alone). A candidate's
statistic is the one-sided paired t of the held-out rows' loss decrease. Candidates: the
run's test held-out edges and a uniform sample of the non-edges the metrics rank them
against (validation edges excluded, as there); the table reports the AUC of that
statistic next to the run's own scorers' AUC on the same sample.

The refits start from the partial graph's network at its last epoch (the run's own
checkpoint, chosen by the validation edges' AUC, is often an early, poorly fitting
epoch). Per seed the same spec also trains twice (two replicas: two random starts on the
same split) on the partial graph and twice on the complete true graph; the test loss
(mean squared error of the z-scored outputs) and r2 (mean over outputs) on the held-out
rows say how much prediction *all* the missing edges together buy, against what a
different random start alone changes. The simulated outputs are heavy-tailed (chained
cubic mechanisms), so the loss depends much on which rows are held out: compare it only
within a seed.

    python benchmarks/latent_ceiling.py --families layered_all_obs layered_many_obs \\
        layered_few_obs --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import numpy as np
import torch

from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.confirm import (
    FIT_EPOCHS,
    FIT_LR,
    _CandidateEdges,
    _losses,
    _train,
    rows_per_chunk,
)
from gsnn_edges.metrics import roc_auc
from gsnn_edges.train import train_joint

from common import (
    FAMILIES,
    base_parser,
    make_spec,
    paired_difference,
    run_pairs,
    training_split,
    write_json,
)

SCORERS = ("hybrid", "score_test", "magnitude")


def _refit_statistics(model, pairs: np.ndarray, split, batch_size: int) -> np.ndarray:
    """One-sided paired t of each candidate's held-out loss decrease when fitted alone.

    The private pieces of the confirmation are used as they are so that the fit is exactly
    the one the service runs; only the variants differ (each candidate alone, not all
    but one)."""
    m = len(pairs)
    keep = torch.cat([torch.zeros(1, m), torch.eye(m)])
    edges = _CandidateEdges(model, torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1]))
    n = split.x_train.shape[0]
    batches = [
        (split.x_train[i : i + batch_size], split.y_train[i : i + batch_size])
        for i in range(0, n, batch_size)
    ]
    rows = rows_per_chunk(model)
    thetas = _train(edges, keep, batches, FIT_EPOCHS, FIT_LR, rows)
    loss = _losses(edges, thetas, split.x_test, split.y_test, rows).double().numpy()
    d = loss[:1] - loss[1:]  # [M, n]: positive where the candidate helps
    se = d.std(1, ddof=1) / np.sqrt(d.shape[1])
    return d.mean(1) / np.maximum(se, 1e-30)


def one_seed(family: str, seed: int, n_negatives: int) -> dict:
    bench = FAMILIES[family](seed)
    spec = make_spec(None, {}, seed)
    run = run_experiment(bench, spec)
    names, in_graph, test, val = run_pairs(run)  # test, val: [E, 2]
    n = len(names)
    negative = ~in_graph & ~np.eye(n, dtype=bool)
    negative[tuple(test.T)] = negative[tuple(val.T)] = False
    neg = np.argwhere(negative)
    rng = np.random.default_rng(seed)
    neg = neg[rng.choice(len(neg), size=min(n_negatives, len(neg)), replace=False)]
    pairs = np.concatenate([test, neg]).astype(np.int64)
    positive = np.arange(len(pairs)) < len(test)

    def trained(graph):  # the last epoch (no checkpoint chosen on edges); 2 random starts
        s = make_spec(None, {}, seed)  # on one split (training.seed also draws the split)
        s.replicas = 2
        return train_joint(graph, run.data, s)

    partial = trained(bench.partial)
    split = training_split(bench.partial, run.data, spec)
    model = partial.model.eval()  # replica 0's
    stat = _refit_statistics(model, pairs, split, spec.training.batch_size)
    hybrid = _table_scores(run.result.edges, n)  # the edge table's (hybrid) scores
    out = {
        "seed": seed,
        "n_test_edges": int(positive.sum()),
        "refit": roc_auc(stat, positive),
        "hybrid": roc_auc(np.nan_to_num(hybrid[tuple(pairs.T)], nan=-np.inf), positive),
    }
    # Every non-edge, as recovery.py reports it.
    scorers = run.result.metrics["scorers"]
    out.update({f"{k}_all_pairs": scorers[k]["test_edges"]["auc"] for k in SCORERS})

    full = trained(bench.full)
    for key in ("loss", "r2"):
        out[f"{key}_checkpoint"] = run.result.metrics["test"][key]  # best validation AUC
        for name, r in (("partial", partial), ("full", full)):
            starts = [rep["test"][key] for rep in r.metrics["replicas"]]
            out[f"{key}_{name}"] = float(np.mean(starts))
            out[f"{key}_{name}_start_gap"] = float(abs(starts[1] - starts[0]))
    return out


def _table_scores(table, n: int) -> np.ndarray:
    S = np.full((n, n), np.nan)
    S[table.src_idx.to_numpy(), table.dst_idx.to_numpy()] = table.score.to_numpy(float)
    return S


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/latent_ceiling.json")
    ap.add_argument("--negatives", type=int, default=100, help="non-edges sampled per seed")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for family in args.families:
        runs = []
        for seed in args.seeds:
            r = one_seed(family, seed, args.negatives)
            runs.append(r)
            print(family, r, flush=True)
        results[family] = runs
    print("\nAUC on each seed's sample (test held-out edges vs sampled non-edges), mean +/- std;")
    print("test loss (z-scored outputs), and the full graph's and another start's change from it")
    for family, runs in results.items():

        def col(k: str, runs: list[dict] = runs) -> np.ndarray:
            return np.array([r[k] for r in runs if k in r])

        print(f"\n{family} (seeds {args.seeds})")
        for k in ("refit", "hybrid", *(f"{k}_all_pairs" for k in SCORERS)):
            v = col(k)
            if v.size:
                print(f"  {k:<22}{v.mean():.3f} +/- {v.std():.3f}")
        for key in ("loss", "r2"):
            base, full = col(f"{key}_partial"), col(f"{key}_full")
            d, se = paired_difference(full, base)
            gap = col(f"{key}_partial_start_gap")
            print(
                f"  test {key}: best-validation checkpoint {col(f'{key}_checkpoint').mean():.4f}; "
                f"last epoch, partial graph {base.mean():.4f}, complete graph {full.mean():.4f}, "
                f"difference {d:+.4f} ({se:.4f}); two starts on the partial graph differ by "
                f"{gap.mean():.4f} (median {np.median(gap):.4f})"
            )
    write_json(args.out, {"seeds": args.seeds, "negatives": args.negatives, "runs": results})


if __name__ == "__main__":
    main()
