"""Synthetic benchmark graphs and observations from a known DAG (SPEC sections 6 and 7).

Observations: inputs are i.i.d. standard normal; each function node is a random monotone
nonlinearity of a weighted sum of its parents, standardized, plus Gaussian noise; each
output is the mean of its parents plus Gaussian noise. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gsnn_edges.graph import (
    EDGE_TYPES,
    FF,
    Edge,
    GSNNGraph,
    topological_levels,
)

_IF, _FO = EDGE_TYPES[0], EDGE_TYPES[2]


@dataclass
class BenchmarkGraph:
    """A ground-truth graph, its training graph and the held-out edges.

    Attributes:
        full: the ground truth ``G*``.
        partial: ``G*`` minus ``held_out`` (the training graph).
        held_out: function -> function edges removed from ``full``.
    """

    full: GSNNGraph
    partial: GSNNGraph
    held_out: list[Edge]


# --------------------------------------------------------------------------- graphs
def converging_tier_graph(n: int = 25) -> BenchmarkGraph:
    """The converging-tier benchmark DAG of SPEC section 6.

    Inputs ``in0..in{n-1}``; tier A ``f0..f{n-1}`` (``ink -> fk``); tier B
    ``f{n}..f{2n-2}`` (``f{n+k}`` has parents ``fk`` and ``f{k+1}``); sink ``f{2n-1}`` fed
    by every tier-B node; outputs ``o0..o{n-1}`` (``f{n+k} -> ok``, sink ``-> o{n-1}``).
    Held out: ``(fk, f{n+k})`` for ``k = 1..n-2``, then ``(f{n+k}, sink)`` for even ``k``.

    At ``n = 25``: 25 inputs, 50 function nodes, 25 outputs, 72 f->f edges, 35 held out.
    """
    if n < 3:
        raise ValueError(f"converging_tier_graph needs n >= 3, got n={n}")
    f = [f"f{i}" for i in range(2 * n)]
    sink = f[2 * n - 1]
    nodes = {
        "input": [f"in{k}" for k in range(n)],
        "function": f,
        "output": [f"o{k}" for k in range(n)],
    }
    edges: list[Edge] = [(f"in{k}", f[k]) for k in range(n)]
    for k in range(n - 1):
        edges += [(f[k], f[n + k]), (f[k + 1], f[n + k])]
    edges += [(f[n + k], sink) for k in range(n - 1)]
    edges += [(f[n + k], f"o{k}") for k in range(n - 1)] + [(sink, f"o{n - 1}")]
    held = [(f[k], f[n + k]) for k in range(1, n - 1)]
    held += [(f[n + k], sink) for k in range(0, n - 1, 2)]
    full = GSNNGraph.from_edges(nodes, edges)
    return BenchmarkGraph(full=full, partial=full.without_function_edges(held), held_out=held)


def _covering_pairs(n_a: int, n_b: int) -> np.ndarray:
    """Pairs ``(i % n_a, i % n_b)`` for ``i < max(n_a, n_b)``: every a and every b is hit."""
    i = np.arange(max(n_a, n_b))
    return np.stack([i % n_a, i % n_b])


def _layered_function_edges(
    rng: np.random.Generator, n_layers: int, width: int, edge_prob: float
) -> np.ndarray:
    """f->f edges ``[2, E]``: a random perfect matching between consecutive tiers (every
    node gets a parent in the previous tier and a child in the next) plus extra parents
    from any earlier tier with probability ``edge_prob``."""
    blocks = []
    for t in range(1, n_layers):
        dst0 = t * width
        mask = rng.random((dst0, width)) < edge_prob
        mask[(t - 1) * width + rng.permutation(width), np.arange(width)] = True
        src, dst = np.nonzero(mask)
        blocks.append(np.stack([src, dst + dst0]))
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((2, 0), dtype=np.int64)


def _protected_edges(rng: np.random.Generator, ff: np.ndarray) -> np.ndarray:
    """Bool mask over ``ff`` columns keeping one random in-edge and out-edge per node."""
    perm = rng.permutation(ff.shape[1])
    keep = np.zeros(ff.shape[1], dtype=bool)
    for row in (0, 1):
        _, first = np.unique(ff[row, perm], return_index=True)
        keep[perm[first]] = True
    return keep


def random_layered_dag(
    n_inputs: int,
    n_layers: int,
    width: int,
    n_outputs: int | None = None,
    *,
    edge_prob: float = 0.3,
    seed: int = 0,
    hold_out_fraction: float = 0.3,
    observe_all: bool = False,
) -> BenchmarkGraph:
    """A random layered DAG with a held-out share of its function -> function edges.

    Function nodes ``f0..`` form ``n_layers`` tiers of ``width``. Each tier-``t > 0`` node
    has a parent in tier ``t-1`` (a random matching, so every non-last-tier node also has
    a child) plus extra parents from tiers ``< t`` with probability ``edge_prob``. Inputs
    and tier 0 are joined by a covering assignment plus ``edge_prob`` extras; outputs read
    the last tier by a covering assignment (every output has a parent and every last-tier
    node a child), or with ``observe_all`` every function node has an output of its own
    (``o{i}`` reads ``f{i}``; ``n_outputs`` must then be None).

    Held out: ``round(hold_out_fraction * E_ff)`` f->f edges drawn at random among those
    that are not a node's only kept parent or only kept child, so in ``partial`` every
    function node keeps a parent and a child (fewer are held out if too few are eligible).
    """
    if observe_all and n_outputs is not None:
        raise ValueError("observe_all gives every function node its own output: leave n_outputs")
    n_f = n_layers * width
    n_outputs = (n_f if observe_all else width) if n_outputs is None else n_outputs
    for name, val in (("n_inputs", n_inputs), ("n_layers", n_layers), ("width", width)):
        if val < 1:
            raise ValueError(f"{name} must be >= 1, got {val}")
    if n_outputs < 1:
        raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
    if not 0.0 <= edge_prob <= 1.0:
        raise ValueError(f"edge_prob must be in [0, 1], got {edge_prob}")
    if not 0.0 <= hold_out_fraction < 1.0:
        raise ValueError(f"hold_out_fraction must be in [0, 1), got {hold_out_fraction}")
    rng = np.random.default_rng(seed)
    if_mask = rng.random((n_inputs, width)) < edge_prob
    if_mask[tuple(_covering_pairs(n_inputs, width))] = True
    ff = _layered_function_edges(rng, n_layers, width, edge_prob)
    if observe_all:
        fo = np.stack([np.arange(n_f), np.arange(n_f)])
    else:
        fo = _covering_pairs(width, n_outputs) + np.array([[n_f - width], [0]])
    names = {
        "input": [f"in{i}" for i in range(n_inputs)],
        "function": [f"f{i}" for i in range(n_f)],
        "output": [f"o{i}" for i in range(n_outputs)],
    }
    full = GSNNGraph(names, {_IF: np.stack(np.nonzero(if_mask)), FF: ff, _FO: fo})
    eligible = np.flatnonzero(~_protected_edges(rng, ff))
    k = min(int(round(hold_out_fraction * ff.shape[1])), eligible.size)
    held_idx = np.sort(rng.choice(eligible, size=k, replace=False))
    fn = np.asarray(names["function"], dtype=object)
    held = list(zip(fn[ff[0, held_idx]].tolist(), fn[ff[1, held_idx]].tolist(), strict=True))
    return BenchmarkGraph(full=full, partial=full.without_function_edges(held), held_out=held)


# --------------------------------------------------------------------------- data
_NONLINEARITIES = (
    lambda z: np.tanh(1.5 * z),
    lambda z: np.logaddexp(0.0, 2.0 * z),  # softplus
    lambda z: np.where(z > 0, z, 0.2 * z),  # leaky ReLU
    lambda z: z + 0.3 * z**3,
)


def _monotone(kind: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Apply the monotone nonlinearity ``_NONLINEARITIES[kind[j]]`` to column ``j``.

    One vectorized call per nonlinearity (not per node).

    Shapes:
        kind: [L]; z: [S, L]; returns [S, L].
    """
    out = np.empty_like(z)
    for k, fn in enumerate(_NONLINEARITIES):
        cols = kind == k
        if cols.any():
            out[:, cols] = fn(z[:, cols])
    return out


def _standardize(v: np.ndarray) -> np.ndarray:
    std = v.std(axis=0)
    return (v - v.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


def _signed_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Weights with ``|w| ~ U[0.5, 1.5]`` and a random sign."""
    return rng.uniform(0.5, 1.5, n) * rng.choice(np.array([-1.0, 1.0]), n)


def _draw_mechanism(
    rng: np.random.Generator, n_in: int, n_f: int, eid: dict
) -> tuple[sp.csc_matrix, sp.csc_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Random parameters of every function node.

    Shapes:
        w_if: [n_in, n_f] sparse; w_ff: [n_f, n_f] sparse; norm, bias, kind: [n_f]
        (``norm_j = sqrt(sum of squared in-weights)``, 0 for parentless nodes).
    """
    w_if = sp.csc_matrix((_signed_weights(rng, eid[_IF].shape[1]), eid[_IF]), (n_in, n_f))
    w_ff = sp.csc_matrix((_signed_weights(rng, eid[FF].shape[1]), eid[FF]), (n_f, n_f))
    norm = np.sqrt(np.asarray(w_if.power(2).sum(0) + w_ff.power(2).sum(0)).ravel())
    bias = rng.uniform(-0.5, 0.5, n_f)
    kind = rng.integers(0, len(_NONLINEARITIES), n_f)
    return w_if, w_ff, norm, bias, kind


def simulate(
    graph: GSNNGraph, n_samples: int, *, noise_scale: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw observations of the input and output nodes from ``graph``.

    For function node ``j`` with input parents ``I_j`` and function parents ``F_j``:
    ``a_j = (sum_e w_e v_src(e)) / sqrt(sum_e w_e^2) + b_j``, ``v_j = std(g_j(a_j)) +
    noise_scale * eps`` where ``g_j`` is a random monotone nonlinearity, ``std`` z-scores
    over samples, ``w ~ ±U[0.5, 1.5]``, ``b_j ~ U[-0.5, 0.5]``. Function nodes without a
    parent are exogenous ``N(0, 1)``. Output ``k``: mean of its parents plus
    ``noise_scale * eps``. Nodes are computed level by level (topological order of the
    f->f subgraph), each level one sparse matmul over all samples.

    Shapes:
        X: [n_samples, n_input] float32; Y: [n_samples, n_output] float32.

    Raises:
        GraphValidationError: the f->f subgraph has a cycle.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
    rng = np.random.default_rng(seed)
    n_f = graph.n_function
    eid = graph.edge_index_dict
    levels = topological_levels(n_f, eid[FF], graph.node_names_dict["function"])
    w_if, w_ff, norm, bias, kind = _draw_mechanism(rng, graph.n_input, n_f, eid)

    X = rng.standard_normal((n_samples, graph.n_input))
    F = np.asarray(w_if.T @ X.T).T  # input contributions to every function node, [S, n_f]
    noise = noise_scale * rng.standard_normal((n_samples, n_f))
    for lvl in levels:
        a = F[:, lvl] + np.asarray(w_ff[:, lvl].T @ F.T).T
        has_parent = norm[lvl] > 0
        a = a / np.where(has_parent, norm[lvl], 1.0) + bias[lvl]
        v = _standardize(_monotone(kind[lvl], a))
        v = np.where(has_parent, v, rng.standard_normal(v.shape))
        F[:, lvl] = v + noise[:, lvl]

    fo, n_out = eid[_FO], graph.n_output
    mean = sp.csc_matrix((np.ones(fo.shape[1]), fo), (n_f, n_out))
    mean = mean.multiply(1.0 / np.maximum(np.asarray(mean.sum(0)), 1.0)).tocsc()
    Y = np.asarray(mean.T @ F.T).T + noise_scale * rng.standard_normal((n_samples, n_out))
    return X.astype(np.float32), Y.astype(np.float32)


def simulate_frame(
    graph: GSNNGraph, n_samples: int, *, noise_scale: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """:func:`simulate` as a DataFrame: input-name columns, then output-name columns.

    Shapes:
        returns: [n_samples, n_input + n_output] float32 columns.
    """
    X, Y = simulate(graph, n_samples, noise_scale=noise_scale, seed=seed)
    cols = graph.node_names_dict["input"] + graph.node_names_dict["output"]
    return pd.DataFrame(np.concatenate([X, Y], axis=1), columns=cols)
