"""Confirmation of candidate edges by refitting: what each edge buys on held-out rows.

A screening score (any scorer) is a first-order guess made on the training rows. To
confirm ``M`` candidates they are actually added to the trained GSNN and fitted, then
judged on rows the model never trained on:

1. **The edge.** The score test's edge (:mod:`gsnn_edges.inference.score_test`): for every
   adjacent block pair ``p = (l-1, l)`` a weight ``theta_p`` adds ``theta_p * t_i^{l-1}``
   to every pre-norm channel of ``j`` at block ``l``, where ``t_i`` is the sum of ``i``'s
   activation channels. ``theta = 0`` is the trained model, so adding the edges leaves
   the starting loss unchanged.
2. **The fits**, on the training rows, with the trained network frozen and in eval mode
   (no dropout, no random numbers): ``M + 1`` variants of the graph, one with every
   candidate added and, for each ``m``, one with all but ``m``, each fitted the same way
   (Adam from 0, ``FIT_EPOCHS`` passes over the same batches in the same order): the
   paired comparison the test needs. Warm-starting the variants from the joint fit
   instead is cheaper but not valid: two collinear candidates fitted with opposite signs
   leave a variant without one of them worse than it should be, and outputs drawn from
   the trained GSNN itself (where no edge can help) then gave 10 "discoveries" in one
   seed of ten (``benchmarks/README.md``).
3. **The test**, on the held-out rows: per candidate ``m`` and row ``b``,
   ``d_b = loss_b(fit without m) - loss_b(fit with all)``. The p-value is the
   one-sided paired t-test of ``mean(d) > 0``; ``effect`` is ``mean(d)`` in units of the
   standardised loss; q-values are Benjamini-Hochberg over the ``M`` candidates. Each
   edge is judged in the company of the others, so a non-edge that only echoes a better
   candidate counts for less.

The held-out rows take no part in choosing or fitting the candidates, so each p-value is
valid for its own null hypothesis, *this edge does not improve held-out prediction given
the others*, and leans conservative (an edge fitted to noise makes held-out rows worse,
so removing it helps). That is checked where the model is exactly right (outputs drawn
from the trained GSNN itself: ``benchmarks/calibration.py``, "model null"). It is not
the same as *the edge is absent from the true graph*: where the GSNN fits a node
imperfectly, an extra input that carries information about its true parents improves
prediction too. ``benchmarks/README.md`` ("Confirmation") measures the gap (false
discoveries under a complete graph and among missing edges); the service therefore keeps
confirmation opt-in and reports it in columns of its own.

Variants run side by side as one ``[k * B, ...]`` batch per chunk of ``k``, so confirming
``M`` candidates costs about ``(M + 1) * FIT_EPOCHS`` passes of the frozen network over
the training rows plus ``M + 1`` forward passes over the held-out rows
(``benchmarks/README.md`` gives the time against training's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor, nn

from gsnn_edges.inference.magnitudes import (
    check_probe_model,
    model_device,
    node_sums,
    probe_mode,
    uniform_group_size,
)
from gsnn_edges.metrics import bh_qvalues

__all__ = ["CONFIRM_COLUMNS", "EdgeConfirmation", "confirm_edges", "with_confirmation"]

# Columns a confirmation adds to an edge table (NaN / False for unconfirmed pairs).
CONFIRM_COLUMNS = ("confirmed", "effect", "confirm_p_value", "confirm_q_value")

# Adam passes over the training rows and rate of every variant's fit. Chosen for one
# joint fit on one seed each of the benchmark (missing edges) and two complete graphs
# (rates 1e-2 / 3e-2 x 3 / 10 passes): all four fitted the benchmark's held-out edges
# alike (23-24 true discoveries); 1e-2 x 3 let the fewest noise edges in under the
# complete graphs.
FIT_EPOCHS = 3
FIT_LR = 1e-2
# Activation memory a chunk of side-by-side variants may take (forward and backward).
CHUNK_BYTES = 256 * 2**20


def rows_per_chunk(model: nn.Module, budget: int = CHUNK_BYTES) -> int:
    """Rows of side-by-side variants whose activations fit in ``budget`` bytes: per row
    and block about ``3 C`` channel values (pre-norm, activation, gradient) and ``2 E``
    edge-state values, float32. Bounds the confirmation's memory on large graphs, where a
    fixed row count would not (2,500 nodes x 8 channels x 6 blocks: ~1.2 MB a row)."""
    per_row = 4 * len(model.ResBlocks) * (3 * model.channel_groups.numel() + 2 * model.n_edges)
    return max(1, budget // per_row)


@dataclass
class EdgeConfirmation:
    """Held-out confirmation of ``M`` candidate edges (function-node indices).

    Attributes:
        src, dst: ``[M]`` candidate ``src -> dst``.
        effect: ``[M]`` mean held-out loss decrease that the edge brings given the others.
        p_values: ``[M]`` one-sided paired t-test p-values of ``effect > 0``.
        q_values: ``[M]`` Benjamini-Hochberg over these ``M``.
        theta: ``[M, P]`` the jointly fitted edge weights per block pair.
        n_train_rows, n_heldout_rows: rows used to fit and to test.
    """

    src: np.ndarray
    dst: np.ndarray
    effect: np.ndarray
    p_values: np.ndarray
    q_values: np.ndarray
    theta: np.ndarray
    n_train_rows: int
    n_heldout_rows: int


def with_confirmation(
    edges: pd.DataFrame, confirmation: EdgeConfirmation | None = None
) -> pd.DataFrame:
    """``edges`` (an edge table with ``src_idx`` / ``dst_idx``) with the
    :data:`CONFIRM_COLUMNS` filled from ``confirmation`` where a pair was confirmed:
    unconfirmed pairs get ``confirmed=False`` and NaN, never a made-up p-value."""
    n = len(edges)
    out = edges.assign(
        confirmed=np.zeros(n, dtype=bool),
        effect=np.full(n, np.nan),
        confirm_p_value=np.full(n, np.nan),
        confirm_q_value=np.full(n, np.nan),
    )
    if confirmation is None or confirmation.src.size == 0:
        return out
    width = int(max(edges["src_idx"].max(), edges["dst_idx"].max(), 0)) + 1
    width = max(width, int(confirmation.src.max()) + 1, int(confirmation.dst.max()) + 1)
    row_of = pd.Series(
        np.arange(n), index=edges["src_idx"].to_numpy() * width + edges["dst_idx"].to_numpy()
    )
    rows = row_of.reindex(confirmation.src * width + confirmation.dst).to_numpy()
    if np.isnan(rows).any():
        raise ValueError("a confirmed pair is not a row of the edge table")
    rows = rows.astype(np.int64)
    out.iloc[rows, out.columns.get_loc("confirmed")] = True
    for col, values in (
        ("effect", confirmation.effect),
        ("confirm_p_value", confirmation.p_values),
        ("confirm_q_value", confirmation.q_values),
    ):
        out.iloc[rows, out.columns.get_loc(col)] = values
    return out


def confirm_edges(
    model: nn.Module,
    data,
    pairs: np.ndarray,
    train_batches: Iterable,
    x_heldout: Tensor,
    y_heldout: Tensor,
    *,
    epochs: int = FIT_EPOCHS,
    lr: float = FIT_LR,
    chunk_rows: int | None = None,
) -> EdgeConfirmation:
    """Fit the candidate edges on the training rows and test each on held-out rows.

    Args:
        model: the trained :class:`~gsnn_edges.nn.GSNN` (trained with the mean squared
            error); left unchanged.
        data: the graph the model was built on.
        pairs: ``[M, 2]`` candidate ``(src, dst)`` function-node indices.
        train_batches: ``(x, y, ...)`` training batches (iterated ``epochs`` times).
        x_heldout, y_heldout: ``[n, n_inputs]``, ``[n, n_outputs]`` rows the model did
            not train on (at least 3).
        epochs, lr: passes and Adam rate of every variant's fit.
        chunk_rows: variants run side by side in chunks of about this many rows
            (default: as many as fit in ``CHUNK_BYTES`` of activations, see
            :func:`rows_per_chunk`).

    Returns:
        :class:`EdgeConfirmation`.

    Raises:
        ValueError: fewer than 3 held-out rows, no training rows, pairs out of range or
            on the diagonal, or a model the activations cannot be read from.
    """
    check_probe_model(model, data)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    n = model.n_function
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pairs must index the {n} function nodes")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise ValueError("a candidate edge i -> i is a self edge, not a missing edge")
    n_held = int(x_heldout.shape[0])
    if n_held < 3:
        raise ValueError(f"confirmation needs at least 3 held-out rows, got {n_held}")
    device = model_device(model)
    src = torch.as_tensor(pairs[:, 0].copy(), device=device)
    dst = torch.as_tensor(pairs[:, 1].copy(), device=device)
    batches = list(train_batches)
    n_train = sum(int(b[0].shape[0]) for b in batches)
    if n_train == 0:
        raise ValueError("train_batches yielded no rows; nothing to fit")
    m, p = len(pairs), len(model.ResBlocks) - 1
    # variant 0 holds every candidate, variant m + 1 all but candidate m; each is fitted
    # the same way from 0 (paired: same rows, same steps, no random numbers)
    keep = torch.cat([torch.ones(1, m, device=device), 1 - torch.eye(m, device=device)])
    init = torch.zeros(m + 1, m, p, device=device)
    chunk_rows = chunk_rows or rows_per_chunk(model)
    thetas = _train(model, src, dst, init, keep, batches, epochs, lr, chunk_rows)
    losses = _losses(
        model, src, dst, thetas, x_heldout.to(device), y_heldout.to(device), chunk_rows
    )
    d = losses[1:] - losses[:1]  # loss without candidate m minus loss with all
    effect, p = _paired_t(d.double().cpu().numpy())
    return EdgeConfirmation(
        src=pairs[:, 0].copy(),
        dst=pairs[:, 1].copy(),
        effect=effect,
        p_values=p,
        q_values=bh_qvalues(p),
        theta=thetas[0].cpu().numpy(),
        n_train_rows=n_train,
        n_heldout_rows=n_held,
    )


def _train(
    model,
    src,
    dst,
    init: Tensor,
    keep: Tensor,
    batches: Sequence,
    epochs: int,
    lr: float,
    chunk_rows: int,
) -> Tensor:
    """Variants of the candidate edges' weights ``[V, M, P]``, each trained by its own
    Adam from ``init`` on the training batches (in their order, ``epochs`` passes) with
    the network frozen and in eval mode; ``keep`` ``[V, M]`` (0/1) pins a variant's
    dropped candidates at 0. Variants run side by side, chunks of ``k`` per batch."""
    out = []
    n_batch = max((len(b[0]) for b in batches), default=1)
    k_max = max(1, chunk_rows // n_batch)
    for start in range(0, init.shape[0], k_max):  # a loop over chunks of variants
        mask = keep[start : start + k_max, :, None].to(init.dtype)
        theta = (init[start : start + k_max] * mask).clone().requires_grad_(True)
        k = theta.shape[0]
        opt = torch.optim.Adam([theta], lr=lr)
        with probe_mode(model), torch.enable_grad():
            for _ in range(epochs):
                for batch in batches:
                    x, y = batch[0].to(init.device), batch[1].to(init.device)
                    shift = _edge_shift(model, src, dst, theta * mask, k, len(x))
                    pred = model(x.repeat(k, 1), pre_norm_shift=shift).view(k, len(x), -1)
                    # a sum of the variants' own mean losses: each gets its own gradient
                    loss = (pred - y[None]).square().mean((1, 2)).sum()
                    (theta.grad,) = torch.autograd.grad(loss, theta)  # the network's untouched
                    opt.step()
        out.append((theta * mask).detach())
    return torch.cat(out)


def _edge_shift(model, src: Tensor, dst: Tensor, thetas: Tensor, k: int, n: int):
    """``pre_norm_shift`` adding ``k`` variants of the candidate edges (``thetas``
    ``[k, M, P]``) to a batch of ``k * n`` rows (variant-major), read from the cached
    activations of the block before."""
    groups, n_nodes = model.channel_groups, model.n_function
    size = uniform_group_size(groups, n_nodes)
    onehot_dst = torch.nn.functional.one_hot(dst, n_nodes).to(thetas.dtype)  # [M, N]

    def shift(layer: int) -> Tensor | None:
        if layer == 0:
            return None
        h = model.ResBlocks[layer - 1]._last_activation  # [k * n, C]
        t = node_sums(h, groups, n_nodes, size).view(k, n, n_nodes)[..., src]  # [k, n, M]
        node_add = (t * thetas[:, None, :, layer - 1]) @ onehot_dst  # [k, n, N]
        return node_add.index_select(2, groups).reshape(k * n, -1)

    return shift


@torch.no_grad()
def _losses(model, src, dst, thetas, x, y, chunk_rows: int) -> Tensor:
    """Per-row loss of each variant ``v`` of the model with the candidate edges at weights
    ``thetas[v]`` (``[V, M, P]``), ``[V, n]``; chunks of variants run side by side."""
    n = x.shape[0]
    k_max = max(1, chunk_rows // n)
    out = torch.empty(thetas.shape[0], n, device=x.device)
    with probe_mode(model):
        for start in range(0, thetas.shape[0], k_max):  # a loop over chunks of variants
            th = thetas[start : start + k_max]
            k = th.shape[0]
            pred = model(x.repeat(k, 1), pre_norm_shift=_edge_shift(model, src, dst, th, k, n))
            out[start : start + k] = (pred.view(k, n, -1) - y[None]).square().mean(2)
    return out


def _paired_t(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each row of ``d`` ``[M, n]`` and its one-sided t-test p-value of mean > 0
    (1 where the rows are constant: the edge changed nothing)."""
    n = d.shape[1]
    mean = d.mean(1)
    sd = d.std(1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = mean / (sd / math.sqrt(n))
    p = np.where(sd > 0, stats.t.sf(tstat, n - 1), 1.0)
    return mean, p
