"""The SPEC section 6 benchmark protocol as one function (demo, benchmarks and tests).

Ground truth ``G*`` = the converging-tier DAG; the model trains on ``G_partial`` (held-out
function -> function edges removed); held-out edges are split into a validation half
(checkpoint selection) and a test half (reporting only, never seen by selection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gsnn_edges.device import model_device
from gsnn_edges.graph import Edge, pair_indices, split_edges
from gsnn_edges.inference.inferer import MagnitudeEdgeInferer
from gsnn_edges.simulate import BenchmarkGraph, converging_tier_graph, simulate_frame
from gsnn_edges.spec import TrainSpec, ValidationSpec
from gsnn_edges.train import TrainResult, scale, train_joint
from gsnn_edges.train_validation import frame_arrays


@dataclass
class BenchmarkRun:
    bench: BenchmarkGraph
    data: pd.DataFrame
    val_edges: list[Edge]
    test_edges: list[Edge]
    result: TrainResult


def run_benchmark(spec: TrainSpec | None = None, *, width: int = 25, **kwargs) -> BenchmarkRun:
    """The SPEC section 6 benchmark at ``width``; ``kwargs`` as for :func:`run_experiment`."""
    return run_experiment(converging_tier_graph(width), spec, **kwargs)


def run_experiment(
    bench: BenchmarkGraph,
    spec: TrainSpec | None = None,
    *,
    n_train: int = 2000,
    noise_scale: float = 0.15,
    val_fraction: float = 0.5,
    progress: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> BenchmarkRun:
    """Simulate ``bench.full`` (seed = ``spec.training.seed``), train on ``bench.partial``,
    select on a validation share of the held-out edges and score the rest as test.

    ``n_train`` training samples are simulated plus the test share of
    ``spec.training.test_fraction``.
    """
    spec = spec or TrainSpec()
    data, val_edges, test_edges = experiment_inputs(bench, spec, n_train, noise_scale, val_fraction)
    result = train_joint(
        bench.partial, data, spec, test_edges=test_edges, progress=progress, on_epoch=on_epoch
    )
    return BenchmarkRun(bench, data, val_edges, test_edges, result)


def experiment_inputs(
    bench: BenchmarkGraph,
    spec: TrainSpec,
    n_train: int = 2000,
    noise_scale: float = 0.15,
    val_fraction: float = 0.5,
) -> tuple[pd.DataFrame, list[Edge], list[Edge]]:
    """:func:`run_experiment`'s data and held-out halves, ``(data, validation edges, test
    edges)``; sets ``spec.validation`` to the validation half."""
    seed = spec.training.seed
    n_total = int(round(n_train / (1.0 - spec.training.test_fraction)))
    data = simulate_frame(bench.full, n_total, noise_scale=noise_scale, seed=seed)
    val_edges, test_edges = split_edges(bench.held_out, val_fraction, seed=seed)
    spec.validation = ValidationSpec(edges=list(val_edges))
    return data, list(val_edges), list(test_edges)


def edge_labels(edges: pd.DataFrame, positives: list[Edge], exclude: list[Edge]) -> pd.DataFrame:
    """Rows of an edge table usable for a ROC curve: positives and true non-edges.

    Returns the table restricted to ``positives`` and non-edges (in-graph and ``exclude``
    pairs dropped), with a bool column ``label``.
    """
    names = list(edges.src_func.cat.categories)
    n = len(names)
    key = lambda pairs: pairs[:, 0] * n + pairs[:, 1]
    pair = edges.src_idx.to_numpy() * n + edges.dst_idx.to_numpy()
    is_pos = np.isin(pair, key(pair_indices(positives, names)))
    drop = np.isin(pair, key(pair_indices(exclude, names))) | (edges.has_edge.to_numpy() & ~is_pos)
    out = edges.loc[~drop].copy()
    out["label"] = is_pos[~drop]
    return out


def fit_posthoc(
    run: BenchmarkRun, score: str = "corr", batch_size: int = 256
) -> MagnitudeEdgeInferer:
    """The post-hoc :class:`MagnitudeEdgeInferer` fitted on the run's final model over its
    whole (z-scored) dataset."""
    res = run.result
    X, Y = frame_arrays(run.bench.partial, run.data)
    device = model_device(res.model)
    x, y = scale(res.scaler, X, Y, device)
    batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    inferer = MagnitudeEdgeInferer(res.model, run.bench.partial, score=score)
    inferer.fit(batches, loss_fn=torch.nn.functional.mse_loss)
    return inferer


def posthoc_baseline(run: BenchmarkRun, score: str = "corr", batch_size: int = 256) -> dict:
    """Score the run's test edges (validation edges excluded) with :func:`fit_posthoc`, as
    the online regressor's test figure."""
    inferer = fit_posthoc(run, score, batch_size)
    return inferer.evaluate_against(run.test_edges, exclude=run.val_edges)
