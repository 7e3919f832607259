"""The confirmation's q-values on a small seeded simulation, end to end through
``train_joint``: nothing confirmed on a complete graph, held-out edges confirmed with few
false claims when edges are missing.

Both need a GSNN that fits its graph: the complete graph's false discoveries are the
network's misfit (``benchmarks/README.md``, "The base model's fit decides the null"). With
100 epochs and no dropout, `calibration.py --width 10 --top 20` over seeds 0-9 gave no
discovery on the complete graph in 6 seeds (at most one in 9) and a set FDP <= 0.2 with
edges missing in 7; both at once in 4 (seeds 2, 5, 7 and 9), measured with the observed
baseline's forward selection and fitted-value powers (the baseline decides which 20 are
confirmed; "The fitted value's powers"). A single seed is what a suite test can afford;
the benchmark is the claim.
"""

import numpy as np

from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.confirm import set_covers
from gsnn_edges.simulate import converging_tier_graph, simulate_frame
from gsnn_edges.spec import TrainSpec
from gsnn_edges.train import train_joint

SEED, WIDTH, ROWS, TOP = 2, 10, 2000, 20


def _spec() -> TrainSpec:
    spec = TrainSpec()
    spec.model.dropout = 0.0
    spec.training.epochs, spec.training.seed, spec.training.device = 100, SEED, "cpu"
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


def test_missing_edges_are_confirmed_with_set_fdp_at_most_0_2():
    bench = converging_tier_graph(WIDTH)
    run = run_experiment(bench, _spec(), n_train=ROWS)
    found = _discoveries(run.result.edges)
    truth = {tuple(e) for e in bench.held_out}
    held = [(s, d) in truth for s, d in zip(found.src_func, found.dst_func, strict=True)]
    assert sum(held) >= 1
    covers = set_covers(bench.partial, found[["src_idx", "dst_idx"]].to_numpy(), truth)
    assert np.mean(~covers) <= 0.2
