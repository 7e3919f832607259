"""Replicas (``TrainSpec.replicas``): does combining R independently seeded runs beat one?

For every family and seed, trains ``--replicas`` replicas of the service defaults on the
same data split (``gsnn_edges.train.train_replica``, as the service's workers do) and
scores the test edges with each scorer: replica 0 alone (what a one-replica job serves),
the mean of the single replicas' AUCs, and the first k replicas combined by mean
percentile rank and by mean z-score (``gsnn_edges.ensemble.combine_scores``), k = 2 ..
R. Differences are paired seed by seed (mean and standard error) against the mean AUC of
the single replicas of that seed (the expected AUC of a one-replica job; replica 0 alone
is one draw of it). ``--summarise FILE`` prints the tables of an earlier run's JSON.

    python benchmarks/replicas.py --families benchmark layered_many_obs --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from gsnn_edges.ensemble import COMBINES, combine_scores
from gsnn_edges.experiment import experiment_inputs
from gsnn_edges.train import RunSetup, train_replica

from common import FAMILIES, base_parser, make_spec, paired_difference, write_json

SCORERS = ("hybrid", "score_test", "magnitude")
HOWS = COMBINES


def one_seed(family: str, seed: int, replicas: int, patch: dict) -> dict:
    spec = make_spec(None, patch, seed)
    bench = FAMILIES[family](seed)
    data, _, test_edges = experiment_inputs(bench, spec)
    setup = RunSetup.prepare(bench.partial, data, spec, test_edges)
    t0 = time.perf_counter()
    runs = [train_replica(setup, r) for r in range(replicas)]
    seconds = (time.perf_counter() - t0) / replicas
    out: dict = {"seed": seed, "seconds_per_replica": seconds}
    for scorer in SCORERS:
        single = [r.metrics["scorers"][scorer]["test_edges"]["auc"] for r in runs]
        cell = {"replica0": single[0], "single_mean": float(np.mean(single))}
        for k in range(2, replicas + 1):
            for how in HOWS:
                combined, _ = combine_scores([r.scores[scorer].scores for r in runs[:k]], how)
                n = int(np.isfinite(combined).sum())
                cell[f"{how}{k}"] = setup.scorer_metrics(combined, n)["test_edges"]["auc"]
        out[scorer] = cell
    return out


def summarise(runs: list[dict], keys: list[str]) -> dict:
    out = {}
    for scorer in SCORERS:
        base = np.array([r[scorer]["single_mean"] for r in runs])
        for key in keys:
            vals = np.array([r[scorer][key] for r in runs])
            diff, se = paired_difference(vals, base)
            out[f"{scorer}.{key}"] = {
                "mean": float(vals.mean()),
                "std": float(vals.std()),
                "vs_single": diff,
                "se": se,
            }
    return out


def print_table(family: str, summary: dict, keys: list[str]) -> None:
    print(f"\n{family}: test AUC mean +/- std, then paired difference from the single mean (se)")
    print(f"{'scorer':<12}" + "".join(f"{k:>28}" for k in keys))
    for s in SCORERS:
        cells = "".join(
            f"{summary[f'{s}.{k}']['mean']:>9.3f} +/- {summary[f'{s}.{k}']['std']:.3f} "
            f"{summary[f'{s}.{k}']['vs_single']:+.3f} ({summary[f'{s}.{k}']['se']:.3f})"
            for k in keys
        )
        print(f"{s:<12}{cells}")
    print(flush=True)


def keys_for(replicas: int) -> list[str]:
    return ["replica0", "single_mean"] + [
        f"{how}{k}" for k in range(2, replicas + 1) for how in HOWS
    ]


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/replicas.json")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patch", type=json.loads, default={}, help="spec blocks merged in")
    ap.add_argument("--summarise", help="print the tables of this earlier output and stop")
    args = ap.parse_args()
    if args.summarise:
        report = json.loads(open(args.summarise).read())
        for family, fam in report["families"].items():
            keys = keys_for(report["replicas"])
            print_table(family, summarise(fam["runs"], keys), keys)
        return
    torch.set_num_threads(args.threads)
    keys = keys_for(args.replicas)
    report = {"replicas": args.replicas, "seeds": args.seeds, "patch": args.patch, "families": {}}
    for family in args.families:
        runs = []
        for seed in args.seeds:
            r = one_seed(family, seed, args.replicas, args.patch)
            runs.append(r)
            cells = "  ".join(
                f"{s} {r[s]['replica0']:.3f}->{r[s][f'rank{args.replicas}']:.3f}" for s in SCORERS
            )
            print(f"{family} seed {seed} ({r['seconds_per_replica']:.0f} s/replica) {cells}")
        summary = summarise(runs, keys)
        print_table(family, summary, keys)
        report["families"][family] = {"summary": summary, "runs": runs}
        write_json(args.out, report)


if __name__ == "__main__":
    main()
