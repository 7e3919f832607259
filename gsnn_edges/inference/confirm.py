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
   one-sided paired t-test of ``mean(d) > margin``; ``effect`` is ``mean(d)`` in units of
   the standardised loss (a mean over the outputs); ``margin = min_effect / n_outputs``,
   i.e. ``min_effect`` is the squared error summed over the outputs that an edge must
   remove (:func:`judge`); q-values are Benjamini-Hochberg over the ``M`` candidates.
   Each edge is judged in the company of the others, so a non-edge that only echoes a
   better candidate counts for less.

The held-out rows take no part in choosing or fitting the candidates, so each p-value is
valid for its own null hypothesis, *this edge does not improve held-out prediction given
the others*, and leans conservative (an edge fitted to noise makes held-out rows worse,
so removing it helps). That is checked where the model is exactly right (outputs drawn
from the trained GSNN itself: ``benchmarks/calibration.py``, "model null"). It is not
the same as *the edge is absent from the true graph*: where the GSNN fits a node
imperfectly, an extra input that carries information about its true parents improves
prediction too. ``benchmarks/README.md`` ("Confirmation") measures the gap (false
discoveries under a complete graph and among missing edges); the service therefore keeps
confirmation opt-in and reports it in columns of its own. A job narrows the gap by
confirming on a copy of its trained model refined without dropout
(:func:`gsnn_edges.train.refine_for_confirmation`, ``confirm.refine_epochs``), and closes
most of the rest with the margin: the misfit's non-edges improve held-out prediction by
far less than missing edges do (complete graphs, 20 seeds, the non-edges with p < 0.01:
a median 0.002-0.003 of squared error summed over the outputs; held-out edges' median
0.15 on the benchmark, 0.01-0.03 with every node observed), and the default
``confirm.min_effect = 0.005`` removes them (``benchmarks/README.md``, "The
confirmation's minimum effect").

**What the test cannot tell apart.** Held-out prediction from the inputs sees an edge
``i -> j`` only through the inputs ``i``'s activations are a function of. Every other
source ``k`` whose inputs bring ``j`` the same new ones (``inputs(k) - inputs(j) ==
inputs(i) - inputs(j)`` in the graph the model trained on) gives ``j`` the same
information, so no refit can prefer one of them on evidence; only the shapes the frozen
network happens to give them differ. :func:`equivalent_sources` finds them and the table's
``equivalents`` column counts them: a discovery with ``equivalents > 0`` says *this edge
or one of its equivalents is missing*. On the SPEC benchmark 33 of the 35 held-out edges
have such an equivalent (the sibling that shares the missing parent's only input). A test
that treats equivalents alike makes about half of those discoveries false. The
confirmation's 0.34, counted edge by edge, lies below that only because the frozen
network happens to favour the true parents. Counted by equivalent set it is 0.07
(``benchmarks/README.md``, "What held-out prediction cannot tell apart").

Variants run side by side as one ``[k * B, ...]`` batch per chunk of ``k``, so confirming
``M`` candidates costs about ``(M + 1) * FIT_EPOCHS`` passes of the frozen network over
the training rows plus ``M + 1`` forward passes over the held-out rows
(``benchmarks/README.md`` gives the time against training's). The fits are independent,
so the service can split them over workers: :func:`fit_variants` fits any subset,
:func:`judge` tests the candidates once every variant's fit is in
(:mod:`gsnn_edges.service.children`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor, nn

from gsnn_edges.device import model_device
from gsnn_edges.edge_columns import CONFIRM_COLUMNS, UNCONFIRMED
from gsnn_edges.graph import FF, Edge, GraphData, index_array, input_ancestry, pair_indices
from gsnn_edges.inference.magnitudes import (
    check_probe_model,
    node_sums,
    probe_mode,
    uniform_group_size,
)
from gsnn_edges.metrics import bh_qvalues
from gsnn_edges.spec import CONFIRM_CHUNK_BYTES

__all__ = [
    "CONFIRM_COLUMNS",
    "EdgeConfirmation",
    "VariantFits",
    "confirm_edges",
    "effect_margin",
    "equivalent_sources",
    "fit_variants",
    "judge",
    "set_covers",
    "variant_keep",
    "with_confirmation",
]

# Adam passes over the training rows and rate of every variant's fit (how they were
# chosen: benchmarks/README.md, "Implementation choices"; 3 -> 2 passes in "The
# confirmation's minimum effect").
FIT_EPOCHS = 2
FIT_LR = 1e-2


def rows_per_chunk(model: nn.Module, budget: int = CONFIRM_CHUNK_BYTES) -> int:
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
        p_values: ``[M]`` one-sided paired t-test p-values of ``effect > effect_margin``.
        q_values: ``[M]`` Benjamini-Hochberg over these ``M``.
        theta: ``[M, P]`` the jointly fitted edge weights per block pair.
        n_train_rows, n_heldout_rows: rows used to fit and to test.
        equivalent: bool ``[M, N]``: the other sources each candidate's test cannot tell
            from it (:func:`equivalent_sources`); ``equivalents`` counts them.
        effect_margin: the margin the p-values test ``effect`` against, in its units
            (:func:`judge`; 0: any improvement).
    """

    src: np.ndarray
    dst: np.ndarray
    effect: np.ndarray
    p_values: np.ndarray
    q_values: np.ndarray
    theta: np.ndarray
    n_train_rows: int
    n_heldout_rows: int
    equivalent: np.ndarray
    effect_margin: float = 0.0

    @property
    def equivalents(self) -> np.ndarray:
        """``[M]`` how many other sources each candidate's test cannot tell from it."""
        return self.equivalent.sum(1)


def with_confirmation(
    edges: pd.DataFrame, confirmation: EdgeConfirmation | None = None
) -> pd.DataFrame:
    """``edges`` (an :func:`~gsnn_edges.inference.edge_table.edge_table`) with the
    :data:`CONFIRM_COLUMNS` filled from ``confirmation`` where a pair was confirmed:
    unconfirmed pairs keep :data:`~gsnn_edges.edge_columns.UNCONFIRMED`, never a made-up
    p-value.

    Raises:
        ValueError: a confirmed pair is not a row of ``edges``.
    """
    n = len(edges)
    out = edges.assign(**{k: np.full(n, v) for k, v in UNCONFIRMED.items()})
    if confirmation is None or confirmation.src.size == 0:
        return out
    width = len(edges["src_func"].cat.categories)  # the node names the indices point into
    row_of = np.full(width * width, -1)
    row_of[edges["src_idx"].to_numpy() * width + edges["dst_idx"].to_numpy()] = np.arange(n)
    pair = confirmation.src * width + confirmation.dst
    known = (confirmation.src < width) & (confirmation.dst < width)
    rows = np.where(known, row_of[np.where(known, pair, 0)], -1)
    if (rows < 0).any():
        raise ValueError("a confirmed pair is not a row of the edge table")
    values = {
        "confirmed": True,
        "effect": confirmation.effect,
        "confirm_p_value": confirmation.p_values,
        "confirm_q_value": confirmation.q_values,
        "equivalents": confirmation.equivalents.astype(float),
    }
    for col, v in values.items():
        out.iloc[rows, out.columns.get_loc(col)] = v
    return out


def confirm_edges(
    model: nn.Module,
    data: GraphData,
    pairs: np.ndarray,
    train_batches: Iterable,
    x_heldout: Tensor,
    y_heldout: Tensor,
    *,
    epochs: int = FIT_EPOCHS,
    lr: float = FIT_LR,
    chunk_rows: int | None = None,
    min_effect: float = 0.0,
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
            (default: as many as fit in ``CONFIRM_CHUNK_BYTES`` of activations, see
            :func:`rows_per_chunk`).
        min_effect: the held-out squared error, summed over the standardised outputs,
            an edge must remove to count (:func:`judge`).

    Returns:
        :class:`EdgeConfirmation`.

    Raises:
        ValueError: fewer than 3 held-out rows, no training rows, pairs out of range or
            on the diagonal, or a model the activations cannot be read from.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    fit = fit_variants(
        model,
        data,
        pairs,
        range(len(pairs) + 1),
        list(train_batches),
        x_heldout,
        y_heldout,
        epochs=epochs,
        lr=lr,
        chunk_rows=chunk_rows,
    )
    return judge(data, pairs, fit, min_effect)


@dataclass
class VariantFits:
    """Fits of some of a confirmation's ``M + 1`` weight variants (:func:`variant_keep`):
    what one chunk of a fanned-out confirmation hands to :func:`judge`.

    Attributes:
        variants: ``[V]`` which variants (0: every candidate; ``m + 1``: all but ``m``).
        losses: ``[V, n]`` per held-out row loss of each.
        thetas: ``[V, M, P]`` their fitted edge weights.
        n_train_rows: training rows each was fitted on.
    """

    variants: np.ndarray
    losses: np.ndarray
    thetas: np.ndarray
    n_train_rows: int

    @classmethod
    def concat(cls, parts: Sequence[VariantFits]) -> VariantFits:
        """The chunks' fits as one, in variant order."""
        order = np.argsort(np.concatenate([p.variants for p in parts]), kind="stable")
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])[order]
        return cls(cat("variants"), cat("losses"), cat("thetas"), parts[0].n_train_rows)


def variant_keep(
    m: int, variants: Sequence[int] | range, device: torch.device | None = None
) -> Tensor:
    """``[V, M]`` 0/1: which candidates each of ``variants`` holds (variant 0 every
    candidate, variant ``m + 1`` all but candidate ``m``)."""
    rows = torch.cat([torch.ones(1, m, device=device), 1 - torch.eye(m, device=device)])
    return rows[torch.as_tensor(list(variants), dtype=torch.long, device=device)]


def fit_variants(
    model: nn.Module,
    data: GraphData,
    pairs: np.ndarray,
    variants: Sequence[int] | range,
    train_batches: Sequence,
    x_heldout: Tensor,
    y_heldout: Tensor,
    *,
    epochs: int = FIT_EPOCHS,
    lr: float = FIT_LR,
    chunk_rows: int | None = None,
) -> VariantFits:
    """Fit ``variants`` of the candidate edges ``pairs`` on the training batches and take
    their per-row held-out losses (arguments as :func:`confirm_edges`'). Each variant is
    fitted alone from 0, so any split of the ``M + 1`` variants into chunks, fitted
    anywhere (a worker each in the service), gives the fits of one run.

    Raises:
        ValueError: as :func:`confirm_edges`.
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
    n_train = sum(int(b[0].shape[0]) for b in train_batches)
    if n_train == 0:
        raise ValueError("train_batches yielded no rows; nothing to fit")
    keep = variant_keep(len(pairs), variants, device)
    edges = _CandidateEdges(model, src, dst)
    chunk_rows = chunk_rows or rows_per_chunk(model)
    thetas = _train(edges, keep, train_batches, epochs, lr, chunk_rows)
    losses = _losses(edges, thetas, x_heldout.to(device), y_heldout.to(device), chunk_rows)
    return VariantFits(
        np.asarray(list(variants), dtype=np.int64),
        losses.double().cpu().numpy(),
        thetas.cpu().numpy(),
        n_train,
    )


def effect_margin(data: GraphData, min_effect: float) -> float:
    """``min_effect`` (held-out squared error summed over the outputs) in ``effect``'s
    units, which average over the outputs: ``min_effect / n_outputs``."""
    if not min_effect >= 0.0:
        raise ValueError(f"min_effect is a held-out squared error >= 0, got {min_effect}")
    return float(min_effect) / len(data.node_names_dict["output"])


def judge(
    data: GraphData, pairs: np.ndarray, fit: VariantFits, min_effect: float = 0.0
) -> EdgeConfirmation:
    """The paired test of each candidate from the fits of all ``M + 1`` variants: does
    removing it raise the held-out squared error, summed over the standardised outputs,
    by more than ``min_effect`` (0.01: a hundredth of one output's variance)? The loss
    and ``effect`` average over the outputs, so the margin in their units is
    ``min_effect / n_outputs``: a threshold that does not shrink an edge's evidence as
    the panel of outputs grows."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not np.array_equal(fit.variants, np.arange(len(pairs) + 1)):
        raise ValueError(f"the fits hold variants {fit.variants.tolist()}, not 0..{len(pairs)}")
    margin = effect_margin(data, min_effect)
    d = fit.losses[1:] - fit.losses[:1]  # loss without candidate m minus loss with all
    effect, p = _paired_t(d, margin)
    return EdgeConfirmation(
        src=pairs[:, 0].copy(),
        dst=pairs[:, 1].copy(),
        effect=effect,
        p_values=p,
        q_values=bh_qvalues(p),
        theta=fit.thetas[0],
        n_train_rows=fit.n_train_rows,
        n_heldout_rows=fit.losses.shape[1],
        equivalent=equivalent_sources(data, pairs),
        effect_margin=margin,
    )


def equivalent_sources(graph: GraphData, pairs: np.ndarray) -> np.ndarray:
    """For each candidate ``src -> dst`` (``pairs`` ``[M, 2]`` function-node indices), the
    other sources ``k`` whose edge into ``dst`` would bring it the same new inputs
    (``inputs(k) - inputs(dst) == inputs(src) - inputs(dst)``, inputs by
    :func:`~gsnn_edges.graph.input_ancestry`): held-out prediction cannot tell the
    candidate from them. ``dst`` itself, ``src`` and ``dst``'s parents are never counted.

    Returns:
        bool ``[M, N]``.
    """
    reach = input_ancestry(graph)
    n = reach.shape[0]
    ff = index_array(graph.edge_index_dict[FF])
    is_parent = np.zeros((n, n), dtype=bool)
    is_parent[ff[0], ff[1]] = True
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros((len(pairs), n), dtype=bool)
    # a loop over candidates (at most CONFIRM_MAX_TOP, once per job): each compares every
    # source's new inputs for dst at once, [N, N_input]
    for m, (src, dst) in enumerate(pairs):
        new = reach & ~reach[dst]
        out[m] = (new == new[src]).all(1)
        out[m, [src, dst]] = False
        out[m, is_parent[:, dst]] = False
    return out


class _CandidateEdges:
    """The ``M`` candidate edges of one confirmation on a fixed model: what a forward pass
    with ``k`` weight variants side by side needs, built once per confirmation rather than
    per batch (the destinations' one-hot matrix, the channel layout)."""

    def __init__(self, model: nn.Module, src: Tensor, dst: Tensor) -> None:
        self.model, self.src = model, src
        self.groups, self.n_nodes = model.channel_groups, model.n_function
        self.size = uniform_group_size(self.groups, self.n_nodes)
        # [N, M]: scatters the candidates' terms onto their destinations
        self.onehot_dst_t = torch.nn.functional.one_hot(dst, self.n_nodes).float().t().contiguous()
        self.n_pairs = len(model.ResBlocks) - 1

    def predict(self, x: Tensor, thetas: Tensor) -> Tensor:
        """The model's outputs ``[k, n, n_out]`` for rows ``x`` ``[n, n_inputs]`` with the
        candidates added at each of ``k`` weight variants ``thetas`` ``[k, M, P]``, as one
        batch of ``k * n`` rows (variant-major); the caller holds :func:`probe_mode`.

        The shift is built channel-major (``[C, k n]``, the layout the blocks compute in)
        and handed over as its ``[k n, C]`` view: a row-major shift made the block's
        ``z + shift`` and its nonlinearity run on mixed strides (with the copies, 62% of
        a fit step's profile; the fit now takes 0.66x the time: ``benchmarks/README.md``,
        "Implementation choices")."""
        k, n = thetas.shape[0], x.shape[0]
        m = self.src.numel()

        def shift(layer: int) -> Tensor | None:
            if layer == 0:
                return None
            h = self.model.ResBlocks[layer - 1]._last_activation.t()  # [C, k * n]
            t = node_sums(h, self.groups, self.n_nodes, self.size, channels_first=True)
            t = t[self.src]  # [M, k * n]
            w = thetas[:, :, layer - 1].t()  # [M, k]
            node_add = self.onehot_dst_t @ (t.view(m, k, n) * w[:, :, None]).view(m, -1)
            if self.size is not None:  # node i's channels i*c..(i+1)*c-1: a broadcast,
                # whose backward is a sum where index_select's is a scatter
                shape = (self.n_nodes, self.size, k * n)
                return node_add.unsqueeze(1).expand(shape).reshape(-1, k * n).t()
            return node_add.index_select(0, self.groups).t()

        return self.model(x.repeat(k, 1), pre_norm_shift=shift).view(k, n, -1)


def _train(
    edges: _CandidateEdges,
    keep: Tensor,
    batches: Sequence,
    epochs: int,
    lr: float,
    chunk_rows: int,
) -> Tensor:
    """Weight variants of the candidate edges ``[V, M, P]``, each trained by its own Adam
    from 0 on the training batches (in their order, ``epochs`` passes) with the network
    frozen and in eval mode; ``keep`` ``[V, M]`` (0/1) pins a variant's dropped
    candidates at 0. Variants run side by side, chunks of ``k`` per batch."""
    out = []
    n_batch = max((len(b[0]) for b in batches), default=1)
    k_max = max(1, chunk_rows // n_batch)
    device = keep.device
    for start in range(0, keep.shape[0], k_max):  # a loop over chunks of variants
        mask = keep[start : start + k_max, :, None]
        theta = torch.zeros(mask.shape[0], mask.shape[1], edges.n_pairs, device=device)
        theta.requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=lr)
        with probe_mode(edges.model), _frozen(edges.model), torch.enable_grad():
            for _ in range(epochs):
                for batch in batches:
                    x, y = batch[0].to(device), batch[1].to(device)
                    pred = edges.predict(x, theta * mask)
                    # a sum of the variants' own mean losses: each gets its own gradient
                    loss = (pred - y[None]).square().mean((1, 2)).sum()
                    (theta.grad,) = torch.autograd.grad(loss, theta)  # the network's untouched
                    opt.step()
        out.append((theta * mask).detach())
    return torch.cat(out)


@contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """The network's parameters without gradients while the candidate edges fit: the
    backward pass then skips their gradients (the sparse layers' sampled products), which
    the fit would compute and drop; restored on exit, also on error."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def _losses(
    edges: _CandidateEdges, thetas: Tensor, x: Tensor, y: Tensor, chunk_rows: int
) -> Tensor:
    """Per-row loss of each weight variant ``thetas[v]`` (``[V, M, P]``), ``[V, n]``;
    chunks of variants run side by side."""
    n = x.shape[0]
    k_max = max(1, chunk_rows // n)
    out = torch.empty(thetas.shape[0], n, device=x.device)
    with probe_mode(edges.model):
        for start in range(0, thetas.shape[0], k_max):  # a loop over chunks of variants
            th = thetas[start : start + k_max]
            out[start : start + len(th)] = (edges.predict(x, th) - y[None]).square().mean(2)
    return out


def _paired_t(d: np.ndarray, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each row of ``d`` ``[M, n]`` and its one-sided t-test p-value of
    mean > ``margin`` (1 where the rows are constant: the edge changed nothing)."""
    n = d.shape[1]
    mean = d.mean(1)
    sd = d.std(1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = (mean - margin) / (sd / math.sqrt(n))
    p = np.where(sd > 0, stats.t.sf(tstat, n - 1), 1.0)
    return mean, p


def set_covers(graph: GraphData, pairs: np.ndarray, true_edges: Iterable[Edge]) -> np.ndarray:
    """Bool ``[M]``: whether candidate ``pairs[m]`` (function-node indices) or one of its
    equivalents (:func:`equivalent_sources`) is one of ``true_edges`` (name pairs), i.e.
    whether the discovery "this edge or an equivalent is missing" is true."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size == 0:
        return np.zeros(0, dtype=bool)
    names = list(graph.node_names_dict["function"])
    true_pairs = pair_indices(list(true_edges), names)
    is_true = np.zeros((len(names), len(names)), dtype=bool)
    is_true[true_pairs[:, 0], true_pairs[:, 1]] = True
    own = is_true[pairs[:, 0], pairs[:, 1]]
    via = (equivalent_sources(graph, pairs) & is_true[:, pairs[:, 1]].T).any(1)
    return own | via
