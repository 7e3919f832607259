"""Checks of a :class:`TrainSpec` and a dataset against a graph, before any training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gsnn_edges.graph import GSNNGraph
from gsnn_edges.spec import (
    AGGREGATORS,
    CONFIRM_MAX_TOP,
    DEVICES,
    LR_SCHEDULES,
    NORMS,
    SCORE_MODES,
    SCORERS,
    TrainSpec,
)


class SpecValidationError(ValueError):
    """A training spec field is invalid; ``loc`` names the field, e.g. ``('model', 'norm')``."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc, self.msg = loc, msg


def _check(cond: bool, loc: tuple, msg: str) -> None:
    if not cond:
        raise SpecValidationError(loc, msg)


def _check_ranges(spec: TrainSpec) -> None:
    m, r, t = spec.model, spec.regressor, spec.training
    _check(m.channels >= 1, ("model", "channels"), f"must be >= 1, got {m.channels}")
    _check(
        m.layers >= 2,
        ("model", "layers"),
        f"must be >= 2 (the regressor pairs adjacent layers), got {m.layers}",
    )
    _check(0 <= m.dropout < 1, ("model", "dropout"), f"must be in [0, 1), got {m.dropout}")
    _check(m.norm in NORMS, ("model", "norm"), f"must be one of {list(NORMS)}, got {m.norm!r}")
    bad = [a for a in r.aggregators if a not in AGGREGATORS]
    _check(
        bool(r.aggregators) and not bad,
        ("regressor", "aggregators"),
        f"must be a non-empty subset of {list(AGGREGATORS)}, got {list(r.aggregators)}",
    )
    _check(
        r.score_mode in SCORE_MODES,
        ("regressor", "score_mode"),
        f"must be one of {list(SCORE_MODES)}, got {r.score_mode!r}",
    )
    _check(
        r.scorer in SCORERS,
        ("regressor", "scorer"),
        f"must be one of {list(SCORERS)}, got {r.scorer!r}",
    )
    _check(
        r.lr_schedule in LR_SCHEDULES,
        ("regressor", "lr_schedule"),
        f"must be one of {list(LR_SCHEDULES)}, got {r.lr_schedule!r}",
    )
    for name in ("lr", "weight_decay", "ridge"):
        v = getattr(r, name)
        _check(v >= 0 and np.isfinite(v), ("regressor", name), f"must be >= 0, got {v}")
    _check(r.lr > 0, ("regressor", "lr"), f"must be > 0, got {r.lr}")
    _check(0 <= r.dropout < 1, ("regressor", "dropout"), f"must be in [0, 1), got {r.dropout}")
    _check(t.epochs >= 1, ("training", "epochs"), f"must be >= 1, got {t.epochs}")
    _check(t.batch_size >= 1, ("training", "batch_size"), f"must be >= 1, got {t.batch_size}")
    _check(t.lr > 0 and np.isfinite(t.lr), ("training", "lr"), f"must be > 0, got {t.lr}")
    _check(
        0 <= t.test_fraction <= 0.5,
        ("training", "test_fraction"),
        f"must be in [0, 0.5], got {t.test_fraction}",
    )
    _check(
        t.device in DEVICES,
        ("training", "device"),
        f"must be one of {list(DEVICES)}, got {t.device!r}",
    )
    top = spec.confirm.top
    _check(
        0 <= top <= CONFIRM_MAX_TOP,
        ("confirm", "top"),
        f"must be in [0, {CONFIRM_MAX_TOP}], got {top}",
    )
    _check(
        top == 0 or t.test_fraction > 0,
        ("confirm", "top"),
        "confirmation tests on held-out rows: set training.test_fraction > 0",
    )


def _check_validation(graph: GSNNGraph, spec: TrainSpec) -> None:
    v = spec.validation
    _check(
        v.edges is None or v.holdout_fraction is None,
        ("validation",),
        "give either 'edges' or 'holdout_fraction', not both",
    )
    if v.holdout_fraction is not None:
        f = v.holdout_fraction
        _check(0 < f < 1, ("validation", "holdout_fraction"), f"must be in (0, 1), got {f}")
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
    for i, edge in enumerate(v.edges):
        loc = ("validation", "edges", i)
        _check(len(edge) == 2, loc, f"must be a [src, dst] pair, got {list(edge)}")
        src, dst = edge
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
    """Raise :class:`SpecValidationError` naming the first invalid field of ``spec``."""
    _check_ranges(spec)
    _check_validation(graph, spec)


# Peak memory model of one train_joint job (bytes), from peak RSS of 1-epoch runs on
# random layered DAGs (benchmarks/memory.py; benchmarks/README.md, "Memory"): 906 MiB
# at 1,000 function nodes, 1,924 MiB at 2,000 (~350 B per node pair), rounded up.
PROCESS_BYTES = 512 * 2**20  # the interpreter, torch, pandas
PAIR_BYTES = 400  # per function-node pair: W and its optimizer state, the score test's
# U and V, every scorer's scores and p-values, the edge table


def estimate_job_bytes(graph: GSNNGraph, spec: TrainSpec, n_rows: int) -> int:
    """A job's estimated peak memory on one device: ``PROCESS_BYTES + PAIR_BYTES * N^2``
    plus the activations of a batch (about ``3 C + 2 E`` float32 per row and block, for the
    model and the regressor's caches), the data (``n_rows`` x columns, a few copies) and,
    with ``confirm.top``, one chunk of the confirmation's variants."""
    from gsnn_edges.inference.confirm import CHUNK_BYTES

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
        + (CHUNK_BYTES if spec.confirm.top else 0)
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
