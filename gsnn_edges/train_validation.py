"""Checks of a :class:`TrainSpec` and a dataset against a graph, before any training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gsnn_edges.graph import GSNNGraph
from gsnn_edges.spec import CONFIRM_CHUNK_BYTES, SpecValidationError, TrainSpec

__all__ = [
    "SpecValidationError",
    "check_confirm_rows",
    "estimate_job_bytes",
    "frame_arrays",
    "validate_spec",
]


def _check(cond: bool, loc: tuple, msg: str) -> None:
    if not cond:
        raise SpecValidationError(loc, msg)


def _check_validation(graph: GSNNGraph, spec: TrainSpec) -> None:
    v = spec.validation
    if v.holdout_fraction is not None:
        f = v.holdout_fraction
        n_ff = len(graph.function_edges())
        _check(
            round(f * n_ff) >= 1,
            ("validation", "holdout_fraction"),
            f"hides no edge: the graph has {n_ff} function -> function edges",
        )
    if v.edges is None:
        return
    _check(len(v.edges) > 0, ("validation", "edges"), "must list at least one edge")
    functions = set(graph.node_names_dict["function"])
    present = graph.function_edges()
    for i, (src, dst) in enumerate(v.edges):
        loc = ("validation", "edges", i)
        unknown = [n for n in (src, dst) if n not in functions]
        _check(not unknown, loc, f"{unknown} not function nodes of the graph")
        _check(src != dst, loc, f"self pair {src} -> {dst} cannot be a candidate edge")
        _check(
            (src, dst) not in present,
            loc,
            f"{src} -> {dst} is already in the graph; validation edges must be missing from it",
        )
    _check(
        len(set(map(tuple, v.edges))) == len(v.edges),
        ("validation", "edges"),
        "contains duplicate edges",
    )


def validate_spec(graph: GSNNGraph, spec: TrainSpec) -> None:
    """Check ``spec`` against ``graph`` (each field's own bounds are checked when the spec
    is built).

    Raises:
        SpecValidationError: naming the first invalid field.
    """
    _check(
        spec.confirm.top == 0 or spec.training.test_fraction > 0,
        ("confirm", "top"),
        "confirmation tests on held-out rows: set training.test_fraction > 0",
    )
    _check_validation(graph, spec)


# Peak memory model of one train_joint job (bytes), from peak RSS of 1-epoch runs on
# random layered DAGs (benchmarks/memory.py; benchmarks/README.md, "Memory"): 906 MiB
# at 1,000 function nodes, 1,924 MiB at 2,000 (~350 B per node pair), rounded up.
PROCESS_BYTES = 512 * 2**20  # the interpreter, torch, pandas
PAIR_BYTES = 400  # per function-node pair: W and its optimizer state, the score test's
# U and V, every scorer's scores and p-values, the edge table
REPLICA_PAIR_BYTES = 28  # per replica and pair when a job combines its replicas


def estimate_job_bytes(graph: GSNNGraph, spec: TrainSpec, n_rows: int) -> int:
    """A job's estimated peak memory on one device: ``PROCESS_BYTES + PAIR_BYTES * N^2``
    plus the activations of a batch (about ``3 C + 2 E`` float32 per row and block, for the
    model and the regressor's caches), the data (``n_rows`` x columns, a few copies) and,
    with ``confirm.top``, one chunk of the confirmation's variants; with ``replicas``,
    what combining them holds (each replica's scores and p-values in float64, W in
    float32, and the stacked standardised scores)."""
    n = len(graph.node_names_dict["function"])
    m = spec.model
    n_edges = sum(int(np.asarray(e).shape[1]) for e in graph.edge_index_dict.values()) + n
    per_row = 4 * m.layers * (3 * n * m.channels + 2 * n_edges)
    columns = len(graph.node_names_dict["input"]) + len(graph.node_names_dict["output"])
    return (
        PROCESS_BYTES
        + PAIR_BYTES * n * n
        + 2 * spec.training.batch_size * per_row
        + 3 * 4 * n_rows * columns
        + (CONFIRM_CHUNK_BYTES if spec.confirm.top else 0)
        + (REPLICA_PAIR_BYTES * spec.replicas * n * n if spec.replicas > 1 else 0)
    )


def check_confirm_rows(spec: TrainSpec, n_test_rows: int) -> None:
    """Confirmation needs at least 3 held-out rows (a paired t-test)."""
    _check(
        spec.confirm.top == 0 or n_test_rows >= 3,
        ("confirm", "top"),
        f"confirmation needs >= 3 held-out test rows, training.test_fraction leaves "
        f"{n_test_rows}: raise it or upload more rows",
    )


def frame_arrays(graph: GSNNGraph, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Input and output matrices in the graph's node order, checked for gaps and NaN.

    Returns:
        ``X [n, n_inputs]``, ``Y [n, n_outputs]`` as float32.
    """
    inputs, outputs = graph.node_names_dict["input"], graph.node_names_dict["output"]
    missing = [c for c in inputs + outputs if c not in data.columns]
    if missing:
        raise ValueError(f"data is missing columns for nodes {missing[:10]}")
    if len(data) == 0:
        raise ValueError("data has no rows")
    X = data[inputs].to_numpy(dtype=np.float32)
    Y = data[outputs].to_numpy(dtype=np.float32)
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("data contains NaN or infinite values")
    return X, Y
