"""The confirmation's q-values on a small seeded simulation, end to end through
``train_joint`` with the service defaults: nothing confirmed on a complete graph, held-out
edges confirmed with few false discoveries when edges are missing.

The complete graph's false discoveries are the network's misfit, which the confirmation's
refining epochs (``confirm.refine_epochs``) remove most of, and its minimum effect
(``confirm.min_effect``) the rest (``benchmarks/README.md``, "The confirmation's refined
base model" and "The confirmation's minimum effect"). At width 10, ``confirm.top`` 20,
before the minimum effect the defaults gave on the complete graph 1, 0, 2, 0, 3, 0, 2, 1,
0, 0 false discoveries over seeds 0-9. With it (and 30 refining epochs) seeds 8 / 3 / 5
confirmed 10 / 10 / 16 pairs with edges missing, of which 9 / 8 / 12 held out; with the
current 15, seed 8 confirms 7, all held out. A single seed is what a suite test can
afford; the benchmark is the claim.
"""

import numpy as np

from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.confirm import set_covers
from gsnn_edges.simulate import converging_tier_graph, simulate_frame
from gsnn_edges.spec import TrainSpec
from gsnn_edges.train import train_joint

SEED, WIDTH, ROWS, TOP = 8, 10, 2000, 20


def _spec() -> TrainSpec:
    spec = TrainSpec()
    spec.training.seed, spec.training.device = SEED, "cpu"
    spec.confirm.top = TOP
    return spec


def _discoveries(edges):
    cand = edges.loc[~edges.has_edge.to_numpy(bool)]
    return cand.loc[cand.confirm_q_value.to_numpy(float) < 0.1]


def test_complete_graph_confirms_nothing():
    bench = converging_tier_graph(WIDTH)
    spec = _spec()
    n_total = int(round(ROWS / (1 - spec.training.test_fraction)))
    data = simulate_frame(bench.full, n_total, noise_scale=0.15, seed=SEED)
    result = train_joint(bench.full, data, spec)
    assert result.metrics["confirm"]["n_confirmed"] == TOP
    assert len(_discoveries(result.edges)) == 0


def test_missing_edges_are_confirmed_with_fdp_at_most_0_2():
    bench = converging_tier_graph(WIDTH)
    run = run_experiment(bench, _spec(), n_train=ROWS)
    found = _discoveries(run.result.edges)
    truth = {tuple(e) for e in bench.held_out}
    held = [(s, d) in truth for s, d in zip(found.src_func, found.dst_func, strict=True)]
    assert sum(held) >= 1 and 1 - np.mean(held) <= 0.2
    covers = set_covers(bench.partial, found[["src_idx", "dst_idx"]].to_numpy(), truth)
    assert np.mean(~covers) <= 0.2
