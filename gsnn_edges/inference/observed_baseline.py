"""Observed-node regression baseline: scores candidate function -> function edges by least
squares on the observed columns alone (no network, no training).

Each function node is stood in for by what observes it: the z-scored columns of its output
children, else those of its input parents, else nothing (a *latent* node); with
``degree > 1`` their powers join them. A node with output children is an *observed
target*; its target signal is the mean of their z-scored columns, and its *model* regresses
that signal (least squares with intercept) on the stand-ins of its known function parents
and on its input-parent columns.

Every score is a textbook partial F test: ``R^2`` is the share of the residual of a
reduced model that the source's stand-in explains when added to it, the score is
``sqrt(R^2)`` (a partial multiple correlation, in ``[0, 1]``), and with ``n`` samples,
``p`` the numerical rank of the reduced model's centred design and ``k`` the rank the
source adds, ``F = (R^2 / k) / ((1 - R^2) / (n - 1 - p - k))`` (the ``1`` is the
intercept) and ``p_value = F.sf(F; k, n - 1 - p - k)``. The reduced model is:

- for a pair already in the graph, ``j``'s model without ``i`` (a column that another
  parent or an input of ``j`` also brings stays in): the known edge scores as a candidate
  tested first would in the graph without it at ``index_degree=1`` (the fitted value's
  powers below are for candidates only), not ~0. These fits are downdated from ``j``'s
  full fit, so a hub of in-degree ``w`` costs ``O(w^2)`` per parent, not a new
  ``O(S w^2)`` regression;
- for a candidate, ``j``'s model, the z-scored powers ``2..index_degree`` of that model's
  least-squares fitted value (Ramsey's RESET terms), and the candidates selected before
  it. The simulated mechanisms, like many real ones, are a nonlinearity of a weighted sum
  of the parents, which per-parent powers cannot express; without the fitted-value powers
  that misfit passes for a missing parent. Per target, the best candidate joins the
  model, ``steps`` times
  (:mod:`gsnn_edges.inference.forward_selection`), so a missing parent explains away the
  relatives that only echo it. A selected pair's p-value is Sidak-adjusted for the ``m``
  candidates it was chosen from, ``1 - (1 - p)^m``; an unselected pair is tested given all
  the selections, which leaves its p-value valid and, where the target has no missing
  parent, conservative (the tests measure both).

A candidate whose source is observed and downstream of the target in the known graph
(the edge would close a feedback loop) is not scored. The source's outputs are a
function of the target's value, its noise included, through the known path, so they
explain part of the target's signal that no parent can, and the partial correlation
would measure the known path backwards, not a missing edge. With every node observed
these pairs were 40 of the confirmation's 70 false discoveries in 10 runs
(``benchmarks/README.md``, "Reverse and feedback candidates"). The hybrid ranks them with the pairs
the baseline cannot score, by the score test, whose activations are functions of the
inputs alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor

from gsnn_edges.graph import EDGE_TYPES, FF, GraphInput, as_graph, function_descendants
from gsnn_edges.inference.forward_selection import forward_select, outside_basis

__all__ = ["ObservedBaseline", "observed_baseline"]

_IF, _FO = EDGE_TYPES[0], EDGE_TYPES[2]
# A column counts as constant when var <= _REL_VAR_TOL * E[x^2] (float rounding level).
_REL_VAR_TOL = 1e-10
# A residual counts as zero (target fully explained: no score) below this share of ||y||^2.
_REL_RESID_TOL = 1e-12
# Relative ridge floor: keeps D^T D + lam I invertible for the leave-one-out downdate.
_RIDGE_FLOOR = 1e-10
# float64 entries of one gathered [G, S, w] design batch (bounds memory, ~128 MB).
_CHUNK_ENTRIES = 1 << 24


@dataclass
class ObservedBaseline:
    """Scores of every function -> function pair from :func:`observed_baseline`.

    Attributes:
        scores: ``[N, N]`` float64, ``scores[i, j]`` = partial multiple correlation of
            ``i``'s stand-in with ``j``'s signal given ``j``'s reduced model (module
            docstring), in ``[0, 1]``; NaN where not scorable.
        p_values: ``[N, N]`` float64 partial-F p-values (Sidak-adjusted where selected);
            NaN where ``scores`` is NaN or the test has no residual degrees of freedom.
        observed_target: ``[N]`` bool, ``j`` has an output child (columns of the other
            nodes are NaN).
        has_features: ``[N]`` bool, ``i`` has a stand-in: an output child or an input
            parent (rows of the other nodes are NaN).

    Scores are also NaN on the diagonal, for an observed source downstream of the
    target in the known graph (module docstring), for a stand-in whose columns are all
    constant or already in the target's reduced model, and for a target whose signal is constant or
    fully explained by its model (for its candidates: by its model and the fitted value's
    powers, while its known parents stay scored).
    """

    scores: np.ndarray
    p_values: np.ndarray
    observed_target: np.ndarray
    has_features: np.ndarray


# --------------------------------------------------------------------------- helpers
def _zscore(a: np.ndarray) -> tuple[Tensor, Tensor]:
    """Columns of ``a`` z-scored over samples (ddof 0) as float64, constant columns -> 0;
    and the mask of non-constant columns."""
    t = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    c = t - t.mean(0)
    var = c.square().mean(0)
    ok = var > _REL_VAR_TOL * t.square().mean(0)
    return torch.where(ok, c / var.clamp_min(1e-300).sqrt(), torch.zeros_like(c)), ok


def _expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ranges ``starts[g] .. starts[g] + counts[g] - 1`` flattened.

    Returns:
        ``(owner, position)``, each ``[counts.sum()]``: the range index and the position.
    """
    owner = np.repeat(np.arange(len(counts)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + within


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _basis(B: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batched thin SVD ``B = U diag(s) V^T`` and the orthonormal basis it gives, with a
    numerical-rank mask (the ``matrix_rank`` tolerance): ``basis = B @ coef`` is ``U``
    with the dropped directions zero.

    Shapes:
        B: ``[G, S, w]`` -> basis ``[G, S, w]``, coef ``[G, w, w]``, keep bool ``[G, w]``,
        s ``[G, w]``, Vh ``[G, w, w]``.
    """
    U, s, Vh = torch.linalg.svd(B, full_matrices=False)
    if (short := B.shape[2] - s.shape[1]) > 0:  # fewer samples than columns: pad to w
        U, s = F.pad(U, (0, short)), F.pad(s, (0, short))
        Vh = F.pad(Vh, (0, 0, 0, short))
    keep = s > s[:, :1] * max(B.shape[1:]) * torch.finfo(s.dtype).eps
    # An all-zero block has s_max = 0: nothing is kept.
    inv = torch.where(keep, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), 0.0)
    return U * keep[:, None, :], Vh.mT * inv[:, None, :], keep, s, Vh


def _chunks(items: np.ndarray, per_item: int) -> Iterator[np.ndarray]:
    step = max(1, _CHUNK_ENTRIES // max(per_item, 1))
    for start in range(0, len(items), step):
        yield items[start : start + step]


def _stand_ins(eid: dict, n_f: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stand-in columns of every function node, as a table sorted by node.

    Columns index the pool ``[z(X), z(Y)]``: input ``k`` is column ``k``, output ``o`` is
    ``n_in + o``.

    Returns:
        ``node [M]``, ``col [M]`` and ``has_out [n_f]`` bool.
    """
    fo, fi = eid[_FO], eid[_IF]
    has_out = np.bincount(fo[0], minlength=n_f) > 0
    by_input = ~has_out[fi[1]]  # inputs stand in only for nodes without outputs
    node = np.concatenate([fo[0], fi[1, by_input]])
    col = np.concatenate([n_in + fo[1], fi[0, by_input]])
    order = np.argsort(node, kind="stable")
    return node[order], col[order], has_out


@dataclass
class _StandIns:
    """Orthonormal bases of every node's stand-in.

    Attributes:
        Q: ``[S, M + 1]`` the bases side by side in feature-table order (a node with ``k``
            pool columns owns ``k`` columns; dropped directions and the last column are 0).
        slots: ``[N, k_max]`` each node's columns of ``Q``, padded with the last one.
        slot_valid: ``[N, k_max]`` the slots holding a basis vector.
        slot_pool: ``[N, k_max]`` the pool column behind each slot, padded with ``P`` (one
            past the pool); coef: ``[N, k_max, k_max]`` with
            ``Q[:, slots[i]] = Z[:, slot_pool[i]] @ coef[i]``.
    """

    Q: Tensor
    slots: Tensor
    slot_valid: Tensor
    slot_pool: Tensor
    coef: Tensor


def _stand_in_bases(
    Z: Tensor, feat_col: np.ndarray, f_count: np.ndarray, f_start: np.ndarray
) -> _StandIns:
    """One batched SVD per group of equal-size stand-ins (and memory chunk)."""
    n, n_f, m = Z.shape[0], f_count.size, feat_col.size
    kmax = int(f_count.max(initial=0))
    Q = torch.zeros(n, m + 1, dtype=Z.dtype)
    coef = torch.zeros(n_f, kmax, kmax, dtype=Z.dtype)
    valid = torch.zeros(n_f, kmax, dtype=torch.bool)
    for k in np.unique(f_count[f_count > 0]):
        for nodes in _chunks(np.flatnonzero(f_count == k), n * int(k)):
            pos = f_start[nodes][:, None] + np.arange(k)
            basis, c, keep, _, _ = _basis(Z[:, torch.from_numpy(feat_col[pos])].permute(1, 0, 2))
            Q[:, torch.from_numpy(pos.ravel())] = basis.permute(1, 0, 2).reshape(n, -1)
            coef[nodes, :k, :k], valid[nodes, :k] = c, keep
    used = np.arange(kmax) < f_count[:, None]
    slot = np.minimum(f_start[:, None] + np.arange(kmax), max(m - 1, 0))
    slots = torch.from_numpy(np.where(used, slot, m))
    pool = torch.from_numpy(np.where(used, feat_col[slot] if m else 0, Z.shape[1]))
    return _StandIns(Q, slots, valid, pool, coef)


@dataclass
class _Designs:
    """The full design of every observed target and its leave-one-parent-out removals.

    Attributes:
        col: ``[E]`` pool columns of the designs, each design's run ascending, no repeats.
        width: ``[T]`` columns per design (target ``t`` = the ``t``-th observed node).
        src, dst, design: ``[L]`` the pairs scored without the parent: f->f edges whose
            source has a stand-in and whose target is observed; ``design`` is ``dst``'s.
        rm, rm_ok: ``[L, b]`` positions (within the design) of the columns that only
            ``src`` brings to it, padded; a column another parent or an input also brings
            stays in the model without ``src``.
    """

    col: np.ndarray
    width: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    design: np.ndarray
    rm: np.ndarray
    rm_ok: np.ndarray


def _designs(
    eid: dict,
    feat_col: np.ndarray,
    f_start: np.ndarray,
    f_count: np.ndarray,
    obs: np.ndarray,
    live: np.ndarray,
) -> _Designs:
    """Build every design vectorized (no loop over nodes); ``live`` masks non-constant
    pool columns (a constant column is all zeros after z-scoring and would only make the
    Gram matrix singular)."""
    ff, fi = eid[FF], eid[_IF]
    targets = np.flatnonzero(obs)
    tpos = np.full(obs.size, -1)
    tpos[targets] = np.arange(targets.size)
    edges = np.flatnonzero((f_count[ff[0]] > 0) & obs[ff[1]])
    # Entries (design, pool column, tag): each parent's stand-in columns tagged by its
    # leave-one-out index, then the input-parent columns (tag -1).
    owner, pos = _expand(f_start[ff[0, edges]], f_count[ff[0, edges]])
    inp = np.flatnonzero(obs[fi[1]])
    design = tpos[np.concatenate([ff[1, edges[owner]], fi[1, inp]])]
    col = np.concatenate([feat_col[pos], fi[0, inp]])
    tag = np.concatenate([owner, np.full(inp.size, -1)])
    alive = live[col]
    design, col, tag = design[alive], col[alive], tag[alive]
    # Repeated columns (two parents sharing an output, a parent standing in by one of the
    # target's inputs) enter a design once.
    uniq, inv, cnt = np.unique(design * live.size + col, return_inverse=True, return_counts=True)
    d_design, d_col = np.divmod(uniq, live.size)
    width = np.bincount(d_design, minlength=targets.size)
    position = np.arange(uniq.size) - _starts(width)[d_design]
    only = (cnt[inv] == 1) & (tag >= 0)
    rm_l, rm_p = tag[only], position[inv[only]]
    order = np.argsort(rm_l, kind="stable")
    rm_l, rm_p = rm_l[order], rm_p[order]
    rm_cnt = np.bincount(rm_l, minlength=edges.size)
    slot = np.arange(rm_l.size) - _starts(rm_cnt)[rm_l]
    rm = np.zeros((edges.size, int(rm_cnt.max(initial=0))), dtype=np.int64)
    rm_ok = np.zeros(rm.shape, dtype=bool)
    rm[rm_l, slot], rm_ok[rm_l, slot] = rm_p, True
    dst = ff[1, edges]
    return _Designs(d_col, width, ff[0, edges], dst, tpos[dst], rm, rm_ok)


def _leave_out(
    D: Tensor, y: Tensor, beta: Tensor, hinv: Tensor, g: np.ndarray, rm: Tensor, ok: Tensor
) -> Tensor:
    """Ridge residuals without the columns ``rm``, downdated from the full fit.

    Minimizing ``||y - D b||^2 + lam ||b||^2`` subject to ``b_rm = 0`` gives
    ``b = beta - Hinv[:, rm] Hinv[rm, rm]^-1 beta_rm`` (``Hinv = (D^T D + lam I)^-1``):
    a ``|rm|``-sized solve per pair instead of a new fit (``S w^2`` each, ``S w^3`` per
    target of in-degree ``w``).

    Shapes:
        D: ``[G, S, w]``; y: ``[S, G]``; beta: ``[G, w]``; hinv: ``[G, w, w]``;
        g: ``[L]`` design of each pair; rm, ok: ``[L, b]`` -> residuals ``[S, L]``.
    """
    w, b = D.shape[2], rm.shape[1]
    gi = torch.from_numpy(g)
    both = ok[:, :, None] & ok[:, None, :]
    eye = torch.eye(b, dtype=D.dtype)
    h_bb = torch.where(both, hinv[gi[:, None, None], rm[:, :, None], rm[:, None, :]], eye)
    h_wb = hinv[gi[:, None, None], torch.arange(w)[None, :, None], rm[:, None, :]] * ok[:, None]
    t = torch.linalg.solve(h_bb, beta[gi[:, None], rm] * ok)
    b_loo = beta[gi] - torch.einsum("lwb,lb->lw", h_wb, t)
    dropped = torch.zeros_like(b_loo).scatter_add_(1, rm, ok.to(D.dtype)) > 0
    b_loo = b_loo.masked_fill(dropped, 0.0)  # 0 up to rounding already; make it exact
    # Pairs of one design share its D: one [S, w] x [w, pairs] product per design.
    counts = np.bincount(g, minlength=D.shape[0])
    slot = torch.from_numpy(np.arange(g.size) - _starts(counts)[g])
    coef = torch.zeros(D.shape[0], int(counts.max()), w, dtype=D.dtype)
    coef[gi, slot] = b_loo
    fit = torch.bmm(D, coef.transpose(1, 2))  # [G, S, pairs]
    return y[:, gi] - fit[gi, :, slot].T


@dataclass
class _Fit:
    """The fits of one chunk of ``G`` observed targets sharing a design width ``w``.

    Attributes:
        targets: ``[G]`` target positions; r: ``[S, G]`` ridge residuals of the full
            designs (the known pairs' tests) and r_ls: ``[S, G]`` their least-squares
            residuals (the candidates'); rank: ``[G]`` the designs' numerical rank.
        pairs: ``[L]`` the chunk's known pairs (``_Designs`` rows); r_pairs: ``[S, L]``
            their leave-one-parent-out residuals; rank_pairs: ``[L]`` those designs' ranks
            and full_rank_pairs: ``[L]`` the full design's, on one scale
            (:func:`_gram_ranks`).
        cols: ``[G, w]`` pool columns of the designs; basis: ``[G, S, w]`` an orthonormal
            basis of each (dropped directions zero), ``basis = Z[:, cols] @ coef``.
    """

    targets: np.ndarray
    r: Tensor
    r_ls: Tensor
    rank: Tensor
    pairs: np.ndarray
    r_pairs: Tensor
    rank_pairs: Tensor
    cols: Tensor
    basis: Tensor
    coef: Tensor
    full_rank_pairs: Tensor


def _gram_ranks(
    gram: Tensor, g: np.ndarray, rm: Tensor, ok: Tensor, n: int
) -> tuple[Tensor, Tensor]:
    """Ranks of each known pair's full design and of the design without the parent's own
    columns, from the designs' Gram matrices (no ``[S, ...]`` work per pair). A design
    built from powers of a few-valued column (a binary input at degree 3) is rank
    deficient, so ``w - |removed|`` would overstate the reduced rank.

    Both count eigenvalues above ``lam_max(full) * max(n, w) * eps``; by interlacing the
    reduced rank is then never above the full one.

    Shapes:
        gram: ``[G, w, w]``; g: ``[L]``; rm, ok: ``[L, b]`` -> two ``[L]``.
    """
    full = torch.linalg.eigvalsh(gram)[torch.from_numpy(g)]
    kept = torch.ones(rm.shape[0], gram.shape[1], dtype=torch.bool)
    kept[torch.arange(rm.shape[0])[:, None].expand_as(rm)[ok], rm[ok]] = False
    sub = gram[torch.from_numpy(g)] * (kept[:, :, None] & kept[:, None, :])
    tol = full[:, -1:] * max(n, gram.shape[1]) * torch.finfo(gram.dtype).eps
    return (full > tol).sum(1), (torch.linalg.eigvalsh(sub) > tol).sum(1)


def _fits(
    Z: Tensor, y_t: Tensor, des: _Designs, ridge: float, kmax: int, extra: Callable[[int], int]
) -> Iterator[_Fit]:
    """Ridge residuals of every full design and of every leave-one-parent-out model.

    One batched SVD ``D = U diag(s) V^T`` per (width, memory chunk) group of targets;
    ``lam = max(ridge, 1e-10) * mean(s^2)`` (the floor keeps ``D^T D + lam I`` invertible
    for the downdate), ``beta = V diag(s / (s^2 + lam)) U^T y``; the least-squares
    residual projects on ``U``'s kept columns. The design rank (for the candidates' F
    tests) counts ``s`` above the ``matrix_rank`` tolerance; the known pairs' ranks come
    from :func:`_gram_ranks`.
    ``extra(w)`` entries per target of width ``w`` are budgeted for the caller's own work
    on a chunk.
    """
    n = Z.shape[0]
    d_start = _starts(des.width)
    pair_cnt = np.bincount(des.design, minlength=des.width.size)
    pair_order, pair_start = np.argsort(des.design, kind="stable"), _starts(pair_cnt)
    b = des.rm.shape[1]
    for w in np.unique(des.width):
        group = np.flatnonzero(des.width == w)
        lmax = int(pair_cnt[group].max())
        per_target = n * (w + lmax * max(kmax, 1)) + w * (w + lmax * max(b, 1))
        for d in _chunks(group, per_target + extra(int(w))):
            y = y_t[:, d]
            g, pos = _expand(pair_start[d], pair_cnt[d])
            pairs = pair_order[pos]
            cols = torch.from_numpy(des.col[d_start[d][:, None] + np.arange(w)])
            D = Z[:, cols].permute(1, 0, 2)
            basis, coef, keep, s, Vh = _basis(D)
            rank = keep.sum(1)
            if w == 0:
                yield _Fit(d, y, y, rank, pairs, y[:, g], rank[g], cols, basis, coef, rank[g])
                continue
            s2 = s.square()
            inv = 1.0 / (s2 + max(ridge, _RIDGE_FLOOR) * s2.mean(1, keepdim=True))
            uy = torch.einsum("gsw,sg->gw", basis, y)  # directions below the rank tolerance: 0
            beta = torch.einsum("gvw,gw->gv", Vh.mT, uy * s * inv)
            r = y - torch.einsum("gsw,gw->sg", D, beta)
            r_ls = y - torch.einsum("gsw,gw->sg", basis, uy)
            if not pairs.size:
                yield _Fit(d, r, r_ls, rank, pairs, y[:, :0], rank[:0], cols, basis, coef, rank[:0])
                continue
            rm, ok = torch.from_numpy(des.rm[pairs]), torch.from_numpy(des.rm_ok[pairs])
            hinv = (Vh.mT * inv[:, None, :]) @ Vh
            r_pairs = _leave_out(D, y, beta, hinv, g, rm, ok)
            full_rank, rank_pairs = _gram_ranks((Vh.mT * s2[:, None, :]) @ Vh, g, rm, ok, n)
            yield _Fit(d, r, r_ls, rank, pairs, r_pairs, rank_pairs, cols, basis, coef, full_rank)


def _known_pair_tests(
    fit: _Fit, des: _Designs, den: np.ndarray, ynorm: Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The partial F tests of a chunk's known pairs: each parent's own columns in its
    target's full model, from the full and leave-one-parent-out residual norms.

    Returns:
        ``R^2``, ``k`` (rank the parent adds) and ``p`` (rank without it), each ``[L]``;
        ``R^2`` is NaN where the model without the parent leaves no residual.
    """
    den_l = fit.r_pairs.square().sum(0).numpy()
    full = den[des.design[fit.pairs]]
    ok = den_l > _REL_RESID_TOL * ynorm[des.dst[fit.pairs]].numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ok, np.clip(1.0 - full / den_l, 0.0, 1.0), np.nan)
    reduced = fit.rank_pairs.numpy()
    return r2, fit.full_rank_pairs.numpy() - reduced, reduced


def _partial_f_pvalues(r2: np.ndarray, k: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    """Partial-F survival ``F.sf((r2 / k) / ((1 - r2) / df2); k, df2)``, ``df2 = n-1-p-k``.

    NaN where ``r2`` is NaN, ``k == 0`` or ``df2 <= 0``; ``r2 = 1`` gives ``p = 0``.
    """
    df2 = n - 1.0 - p - k
    ok = np.isfinite(r2) & (k > 0) & (df2 > 0)
    out = np.full(r2.shape, np.nan)
    with np.errstate(divide="ignore"):
        f = (r2[ok] / k[ok]) / (np.maximum(1.0 - r2[ok], 0.0) / df2[ok])
    out[ok] = stats.f.sf(f, k[ok], df2[ok])
    return out


# --------------------------------------------------------------------------- public
def observed_baseline(
    graph: GraphInput,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    ridge: float = 1e-6,
    degree: int = 3,
    steps: int = 3,
    index_degree: int = 3,
) -> ObservedBaseline:
    """Score every function -> function pair with the observed-node regression baseline.

    See the module docstring for the model, the scores and the p-values. All numeric work
    is batched: one SVD per group of equal-width designs (and of equal-size stand-ins), one
    Gram matrix of the pool columns against the stand-ins' bases, and the forward
    selection over whole chunks of targets at once.

    Args:
        graph: a :class:`~gsnn_edges.graph.GSNNGraph` or anything
            :func:`~gsnn_edges.graph.as_graph` accepts.
        X: input observations, columns in the graph's input order (float32 is fine; the
            work is float64).
        Y: output observations, columns in the graph's output order.
        ridge: ridge penalty of the known edges' fits, relative to the mean eigenvalue of
            each design's Gram matrix (``0`` gives least squares, up to a ``1e-10`` floor
            that keeps the leave-one-out downdate defined); candidates are tested by
            exact least squares.
        degree: stand-ins and input-parent design columns also enter as their z-scored
            powers ``2..degree`` (the target signal stays linear), so a monotone
            nonlinear mechanism is not mistaken for a missing parent. ``1``: linear. The
            default, cubic, beat linear on the simulated families
            (``benchmarks/README.md``, "Edge scorers").
        steps: candidates selected into each target's model before the rest are scored
            (``0``: every candidate tested against the target's known model alone). The
            default 3 was measured against 0-4 (``benchmarks/README.md``, "Edge scorers").
        index_degree: the powers ``2..index_degree`` of each target's fitted value join
            the model its candidates are tested against (``1``: none). The default 3 was
            measured against 1, 2, 4 and 5 (``benchmarks/README.md``, "The fitted
            value's powers").

    Returns:
        An :class:`ObservedBaseline`.

    Shapes:
        X: ``[S, n_input]``; Y: ``[S, n_output]``; scores, p_values: ``[N, N]`` with
        ``N = n_function``; observed_target, has_features: ``[N]``.

    Raises:
        ValueError: wrong shapes, non-finite values, a negative ``ridge`` or ``steps``, a
            ``degree`` or ``index_degree`` below 1.
    """
    g = as_graph(graph)
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must be [S, *] with equal S, got {X.shape} and {Y.shape}")
    if X.shape[1] != g.n_input or Y.shape[1] != g.n_output:
        raise ValueError(
            f"X must have {g.n_input} columns and Y {g.n_output} (the graph's inputs and "
            f"outputs), got {X.shape[1]} and {Y.shape[1]}"
        )
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("X and Y must be finite")
    if not (ridge >= 0 and np.isfinite(ridge)):
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if index_degree < 1:
        raise ValueError(f"index_degree must be >= 1, got {index_degree}")
    n, n_f = X.shape[0], g.n_function
    eid = dict(g.edge_index_dict)  # the degree > 1 branch rebinds the input edges
    (zx, live_x), (zy, live_y) = _zscore(X), _zscore(Y)
    Z, live = torch.cat([zx, zy], dim=1), torch.cat([live_x, live_y])  # pool [S, n_in + n_out]

    feat_node, feat_col, obs = _stand_ins(eid, n_f, g.n_input)
    if degree > 1:
        # Powers of every observed column stand in beside it (the mechanisms are monotone
        # nonlinearities): pool column c + q * width is z(z_c^(q+1)).
        width = Z.shape[1]
        powers = [_zscore(Z.numpy() ** q) for q in range(2, degree + 1)]
        Z = torch.cat([Z, *(z for z, _ in powers)], dim=1)
        live = torch.cat([live, *(ok & live for _, ok in powers)])
        offsets = np.arange(degree) * width
        order = np.argsort(np.repeat(feat_node, degree), kind="stable")
        feat_node = np.repeat(feat_node, degree)[order]
        feat_col = (feat_col[:, None] + offsets).ravel()[order]
        fi = eid[_IF]
        eid[_IF] = np.concatenate([fi + np.array([[o], [0]]) for o in offsets], axis=1)
    f_count = np.bincount(feat_node, minlength=n_f)
    f_start = _starts(f_count)
    targets = np.flatnonzero(obs)
    # Target signal: mean of each node's z-scored output columns (already centred).
    fo = torch.from_numpy(eid[_FO])
    ysig = torch.zeros(n, n_f, dtype=torch.float64).index_add_(1, fo[0], Z[:, g.n_input + fo[1]])
    ysig = ysig / torch.bincount(fo[0], minlength=n_f).clamp_min(1)

    st = _stand_in_bases(Z, feat_col, f_count, f_start)
    des = _designs(eid, feat_col, f_start, f_count, obs, live.numpy())
    n_t = targets.size
    ynorm = ysig.square().sum(0)
    # Every stand-in column against every pool column (one zero row and column of
    # padding): the inner products the forward selection needs, computed once.
    ZQ = torch.cat([Z, torch.zeros(n, 1, dtype=Z.dtype)], 1).T @ st.Q
    # Candidates: sources with a stand-in, other than the target and its known parents
    # (a parent without a stand-in has no pair in the designs, nor is it a candidate).
    cand = np.broadcast_to(st.slot_valid.any(1).numpy(), (n_t, n_f)).copy()
    cand[des.design, des.src] = False
    cand[np.arange(n_t), targets] = False
    # An observed node downstream of the target stands in by outputs that carry the
    # target's own value, its noise included, through the known path: its partial
    # correlation measures that path, not a missing edge (module docstring).
    cand &= ~(function_descendants(g)[targets] & obs[None, :])

    def rows_of(i: Tensor) -> Tensor:  # Q_i^T Q for each target's chosen source
        return st.coef[i].mT @ ZQ[st.slot_pool[i]]

    R2, K, P, M = (np.full((n_f, n_f), np.nan) for _ in range(4))
    den = np.zeros(n_t)
    kmax, width = st.slots.shape[1], st.Q.shape[1]
    n_pow = index_degree - 1
    # A direction the design already spans leaves a pivot of rounding size, which in this
    # Gram form grows with the design's conditioning: up to 1e-10 (float64) with cubic
    # powers in the suite's small graph, machine-dependent, against 1e-4 for the smallest
    # new direction there. sqrt(eps) sits between; a column with less than that share of
    # its variance outside the design adds nothing a test could detect.
    pivot_tol = float(torch.finfo(Z.dtype).eps) ** 0.5

    def extra(w: int) -> int:  # the powers' temporaries; C, forward_select's copy of it,
        rows = 2 * (w + n_pow) + steps * kmax  # C per slot, H, L
        return 5 * n * n_pow + rows * width + (w + kmax) * n_f * kmax + 6 * n_f * kmax * kmax

    fits = _fits(Z, ysig[:, targets], des, ridge, kmax, extra)
    for fit in fits:
        d = fit.targets
        den[d] = fit.r.square().sum(0).numpy()
        # The candidates' reduced model: the design, then the fitted value's powers.
        C, r, rank = fit.coef.mT @ ZQ[fit.cols], fit.r_ls, fit.rank
        if n_pow:
            fitted = ysig[:, targets[d]] - fit.r_ls
            E = torch.stack([_zscore(fitted**q)[0] for q in range(2, index_degree + 1)], 2)
            q, q_rank = outside_basis(fit.basis, E.permute(1, 0, 2) / n**0.5, pivot_tol)
            r = r - torch.einsum("gse,ge->sg", q, torch.einsum("gse,sg->ge", q, r))
            # One [G e, S] x [S, M] product: a broadcast batched matmul took 10x longer.
            qQ = (q.mT.reshape(-1, n) @ st.Q).view(len(d), n_pow, -1)
            C, rank = torch.cat([C, qQ], dim=1), rank + q_rank
        sel = forward_select(
            C=C,
            b=(st.Q.T @ r).T,
            rr=r.square().sum(0),
            candidate=torch.from_numpy(cand[d]),
            slots=st.slots,
            slot_valid=st.slot_valid,
            rows_of=rows_of,
            steps=steps,
            floor=_REL_RESID_TOL * ynorm[targets[d]],
            pivot_tol=pivot_tol,
        )
        cols = targets[d]
        R2[:, cols], K[:, cols] = sel.r2.T.numpy(), sel.k.T.numpy()
        P[:, cols] = (rank[:, None] + sel.added).T.numpy()
        M[:, cols] = sel.tested.T.numpy()
        src, dst = des.src[fit.pairs], des.dst[fit.pairs]
        R2[src, dst], K[src, dst], P[src, dst] = _known_pair_tests(fit, des, den, ynorm)
        M[src, dst] = 1
    np.fill_diagonal(R2, np.nan)
    R2[K <= 0] = np.nan
    p_values = _partial_f_pvalues(R2, K, P, n)
    # A selected pair won against M - 1 others: Sidak-adjusted for that choice.
    with np.errstate(divide="ignore"):  # p = 1 stays 1
        p_values = -np.expm1(M * np.log1p(-np.minimum(p_values, 1.0)))
    return ObservedBaseline(
        scores=np.sqrt(R2),
        p_values=p_values,
        observed_target=obs,
        has_features=f_count > 0,
    )
