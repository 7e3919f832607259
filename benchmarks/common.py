"""Configurations, graph families and command-line / output helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gsnn_edges.experiment import experiment_inputs
from gsnn_edges.graph import pair_indices
from gsnn_edges.inference.edge_table import function_edge_mask
from gsnn_edges.simulate import BenchmarkGraph, converging_tier_graph, random_layered_dag
from gsnn_edges.spec import TrainSpec
from gsnn_edges.train import _Split, _split_data
from gsnn_edges.train_validation import frame_arrays

# The configuration the public reference reports on (SPEC section 6).
REFERENCE = {
    "model": {"channels": 8, "layers": 6, "norm": "none", "dropout": 0.2, "node_mlp": False},
    "regressor": {
        "aggregators": ["sum", "max"],
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "ridge": 1e-2,
        "dropout": 0.2,
        "lr_schedule": "constant",
    },
    "training": {"epochs": 30, "batch_size": 64, "lr": 1e-4, "test_fraction": 0.2},
}

# Named configurations: the reference one and the library defaults (``None``).
CONFIGS = {"reference": REFERENCE, "defaults": None}

# Graph families, each a function of the seed.
FAMILIES = {
    "benchmark": lambda seed: converging_tier_graph(25),
    "layered_all_obs": lambda seed: random_layered_dag(
        25, 5, 10, edge_prob=0.1, seed=seed, observe_all=True
    ),
    "layered_many_obs": lambda seed: random_layered_dag(25, 5, 10, 10, edge_prob=0.1, seed=seed),
    "layered_few_obs": lambda seed: random_layered_dag(25, 5, 10, 3, edge_prob=0.1, seed=seed),
}


def make_spec(base: dict | None, patch: dict, seed: int) -> TrainSpec:
    """``base`` (None = the library defaults) with ``patch`` applied, for one seed on CPU."""
    d = json.loads(json.dumps(base or TrainSpec().to_dict()))
    d.pop("validation", None)
    for block, values in patch.items():
        d.setdefault(block, {}).update(values)
    spec = TrainSpec.from_dict(d)
    spec.training.seed, spec.training.device = seed, "cpu"
    return spec


def add_patch_argument(ap: argparse.ArgumentParser) -> None:
    """``--patch``: spec blocks (JSON) merged into every run's spec by :func:`make_spec`."""
    ap.add_argument(
        "--patch",
        type=json.loads,
        default={},
        help='spec blocks merged into the config, e.g. \'{"regressor": {"dropout": 0}}\'',
    )


def base_parser(
    doc: str,
    *,
    default_out: str,
    families: bool = True,
    default_seeds: Sequence[int] | None = (0, 1, 2, 3, 4),
) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line with the shared options: ``--seeds``
    (unless ``default_seeds`` is None), ``--families`` (if ``families``) and ``--out``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    if default_seeds is not None:
        ap.add_argument("--seeds", type=int, nargs="+", default=list(default_seeds))
    if families:
        ap.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--out", default=default_out)
    return ap


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of ``a - b``, paired element by element (seed by seed);
    the error is NaN for a single pair."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    se = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else float("nan")
    return float(d.mean()), float(se)


def training_split(graph, data, spec: TrainSpec):
    """The training / test rows a run of ``spec`` on ``graph`` and ``data`` uses (the same
    seeded split and z-scoring as ``train_joint``), on the CPU."""
    X, Y = frame_arrays(graph, data)
    return _split_data(X, Y, spec.training.test_fraction, spec.training.seed, torch.device("cpu"))


@dataclass
class SeedData:
    """One seed of a family as ``recovery.py`` simulates it, before any training: the
    benchmark graph, the defaults' spec, the data, the training split on the partial
    graph, the function node names, the in-graph mask ``[N, N]`` and the test /
    validation held-out edges as index pairs ``[E, 2]`` (as :func:`run_pairs` gives them
    for a finished run)."""

    bench: BenchmarkGraph
    spec: TrainSpec
    data: pd.DataFrame
    split: _Split
    names: list[str]
    in_graph: np.ndarray
    test: np.ndarray
    val: np.ndarray


def seed_data(family: str, seed: int) -> SeedData:
    """:class:`SeedData` of ``family`` at ``seed``."""
    bench = FAMILIES[family](seed)
    spec = make_spec(None, {}, seed)
    data, val, test = experiment_inputs(bench, spec)
    g = bench.partial
    names = list(g.node_names_dict["function"])
    return SeedData(
        bench=bench,
        spec=spec,
        data=data,
        split=training_split(g, data, spec),
        names=names,
        in_graph=function_edge_mask(g, len(names)),
        test=pair_indices(test, names),
        val=pair_indices(val, names),
    )


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parents created) and say so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return out


def run_pairs(run) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Function node names, the in-graph mask ``[N, N]`` and the test / validation held-out
    edges as index pairs ``[E, 2]`` of a finished ``run_experiment`` run."""
    reg = run.result.regressor
    names = reg.node_names
    test, val = pair_indices(run.test_edges, names), pair_indices(run.val_edges, names)
    return names, reg.in_graph.cpu().numpy(), test, val
