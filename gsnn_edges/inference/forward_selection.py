"""Forward selection of missing parents: the observed baseline's candidates, scored so
that one missing parent explains away its relatives.

A source correlates with a target's residual not only when it is a missing parent but
also when it is a relative of one (a sibling, an ancestor, a child of the target): the
residual carries the missing parent's signal, and the relatives carry parts of it. So,
per target, the candidate with the largest partial ``R^2`` joins the target's model, every
other candidate is re-tested given it, and so on for ``steps`` rounds. A pair's score is
its partial ``R^2`` when it was selected, or given all ``steps`` selections if it never
was. On simulated layered graphs (every function node observed) this lifted the test AUC
from 0.93 to 0.97 (``benchmarks/README.md``, "observed baseline").

The partial ``R^2`` is exact (the textbook partial F test of adding ``i``'s columns to the
current design), from inner products alone. With ``U`` an orthonormal basis of the
current design, ``Q_i`` one of ``i``'s stand-in and ``r ⊥ U`` the target's residual:

    b = Q_i^T r,  C = U^T Q_i,  H = I - C^T C  (the Gram of Q_i's part outside U),
    R^2 = b^T H^+ b / ||r||^2,  k = rank(H).

Selecting ``i`` appends ``q = (Q_i - U C) T`` to ``U`` (``T = L^-T`` from the Cholesky
factor ``H = L L^T``, columns with a null pivot dropped), which updates every other
candidate's ``b``, ``C`` and ``H`` through ``q^T Q = T^T (Q_i^T Q - C_i^T C)``: no new
regression, no ``[S, ...]`` work per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Selection", "forward_select", "outside_basis"]


@dataclass
class Selection:
    """Partial tests of every candidate pair of a chunk of targets.

    Attributes:
        r2: ``[G, N]`` partial ``R^2`` (NaN where not a candidate or not testable).
        k: ``[G, N]`` numerator degrees of freedom (the rank the source adds).
        added: ``[G, N]`` rank added to the target's design by selections made before the
            pair's test (its reduced model is the target's design plus these).
        tested: ``[G, N]`` candidates the pair competed with when it was selected (itself
            included), 1 for a pair never selected.
    """

    r2: Tensor
    k: Tensor
    added: Tensor
    tested: Tensor


def _cholesky(H: Tensor, b: Tensor, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Cholesky ``H = L L^T`` of many small PSD matrices at once, dropping a column whose
    pivot (its squared norm outside the design and the columns before it, in ``[0, 1]``)
    is at most ``tol``: a direction the design already spans; and
    ``b^T H^+ b = ||L^-1 b||^2`` over the kept columns.

    A loop over the ``k`` columns, each step vectorized over all pairs: LAPACK's batched
    routines cost microseconds per matrix, too slow for ``N^2`` tiny ones.

    Shapes:
        H: ``[..., k, k]``; b: ``[..., k]`` -> num, rank ``[...]``; L ``[..., k, k]`` (a
        dropped column is zero, diagonal included).
    """
    k = H.shape[-1]
    L, y = torch.zeros_like(H), torch.zeros_like(b)
    rank = torch.zeros(H.shape[:-2], dtype=torch.long)
    for c in range(k):
        pivot = H[..., c, c] - L[..., c, :c].square().sum(-1)
        ok = pivot > tol
        root = torch.where(ok, pivot, 1.0).sqrt()
        L[..., c, c] = torch.where(ok, root, 0.0)
        below = H[..., c + 1 :, c] - (L[..., c + 1 :, :c] * L[..., c, None, :c]).sum(-1)
        L[..., c + 1 :, c] = torch.where(ok[..., None], below / root[..., None], 0.0)
        y[..., c] = torch.where(ok, (b[..., c] - (L[..., c, :c] * y[..., :c]).sum(-1)) / root, 0.0)
        rank += ok
    return y.square().sum(-1), rank, L


def _orthonormalizer(L: Tensor) -> Tensor:
    """``T`` with ``T^T H T = I`` on the kept columns (``T = L^-T``, dropped columns zero).

    Shapes:
        L: ``[G, k, k]`` from :func:`_cholesky` -> ``[G, k, k]``.
    """
    kept = L.diagonal(dim1=-2, dim2=-1) > 0
    eye = torch.eye(L.shape[-1], dtype=L.dtype)
    # A dropped column has L[c, c] = 0 and zeros below it: an identity row keeps L
    # invertible without mixing that column into the kept ones.
    L = torch.where(kept[..., :, None], L, eye)
    inv = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False)
    return (inv * kept[..., :, None]).mT


def outside_basis(U: Tensor, E: Tensor, pivot_tol: float) -> tuple[Tensor, Tensor]:
    """Orthonormal columns spanning the part of ``E`` outside each design basis ``U``:
    ``q = (E - U C) T`` with ``C = U^T E`` and ``T`` from the Cholesky of ``E^T E - C^T C``
    (columns in their given order, one whose pivot is at most ``pivot_tol`` dropped), the
    same construction a selection appends.

    Args:
        U: orthonormal design bases (dropped directions zero).
        E: columns to add, each of unit norm (or zero).
        pivot_tol: as :func:`forward_select`'s.

    Returns:
        ``q`` (a dropped direction is a zero column) and the rank each adds.

    Shapes:
        U: ``[G, S, w]``; E: ``[G, S, e]`` -> q ``[G, S, e]``, rank ``[G]``.
    """
    C = U.mT @ E
    H = E.mT @ E - C.mT @ C
    _, rank, L = _cholesky(H, H.new_zeros(H.shape[:-1]), pivot_tol)
    return (E - U @ C) @ _orthonormalizer(L), rank


def forward_select(
    C: Tensor,
    b: Tensor,
    rr: Tensor,
    candidate: Tensor,
    slots: Tensor,
    slot_valid: Tensor,
    rows_of: Callable[[Tensor], Tensor],
    steps: int,
    floor: Tensor,
    pivot_tol: float,
) -> Selection:
    """Score a chunk of targets' candidates by forward selection (module docstring).

    Args:
        C: ``U_j^T Q`` of each target's design basis against every stand-in column.
        b: ``Q^T r_j``, with ``r_j`` orthogonal to the design.
        rr: ``||r_j||^2``.
        candidate: which (target, source) pairs are candidates.
        slots: each source's stand-in columns (indices into ``Q``'s columns), padded with
            a column that is all zeros.
        slot_valid: the slots that hold a non-zero (orthonormal) column.
        rows_of: ``rows_of(src)`` gives ``Q_src^T Q`` for a source per target,
            ``[G] -> [G, k, M]`` (rows in slot order).
        steps: selections per target.
        floor: a residual norm at or below ``floor`` counts as zero: the target is
            explained, and its candidates still open are left unscored (NaN).
        pivot_tol: a stand-in direction whose squared norm outside the current design
            is at most this adds nothing (the Gram-level counterpart of
            ``matrix_rank``'s tolerance; the caller's choice is explained where it is set).

    Returns:
        A :class:`Selection`.

    Shapes:
        C: ``[G, w, M]``; b: ``[G, M]``; rr, floor: ``[G]``; candidate: ``[G, N]``;
        slots, slot_valid: ``[N, k]``.
    """
    G, N = candidate.shape
    k = slots.shape[1]
    valid = slot_valid.to(C.dtype)
    w = C.shape[1]
    # Room for the rows each selection appends (``q^T Q``), filled in place.
    C = torch.cat([C, C.new_zeros(G, steps * k, C.shape[2])], dim=1)
    Cs = C[:, :w, slots]  # [G, w, N, k]
    H = torch.diag_embed(valid).expand(G, N, k, k) - torch.einsum("gwnk,gwnl->gnkl", Cs, Cs)
    del Cs
    out = Selection(
        r2=torch.full((G, N), float("nan"), dtype=C.dtype),
        k=torch.zeros(G, N, dtype=torch.long),
        added=torch.zeros(G, N, dtype=torch.long),
        tested=torch.ones(G, N, dtype=torch.long),
    )
    open_ = candidate.clone()
    added = torch.zeros(G, dtype=torch.long)
    b, rr = b.clone(), rr.clone()
    for step in range(steps + 1):
        num, rank, L = _cholesky(H, b[:, slots] * valid, pivot_tol)
        usable = open_ & (rank > 0) & (rr > floor)[:, None]
        r2 = (num / rr.clamp_min(torch.finfo(rr.dtype).tiny)[:, None]).clamp(0.0, 1.0)
        if step == steps:
            g, i = usable.nonzero(as_tuple=True)
            out.r2[g, i], out.k[g, i], out.added[g, i] = r2[g, i], rank[g, i], added[g]
            break
        g = usable.any(1).nonzero()[:, 0]
        if not g.numel():
            break
        i = r2[g].masked_fill(~usable[g], -1.0).argmax(1)
        out.r2[g, i], out.k[g, i], out.added[g, i] = r2[g, i], rank[g, i], added[g]
        out.tested[g, i] = usable[g].sum(1)
        open_[g, i] = False
        added[g] += rank[g, i]
        # The chosen source's new directions, orthonormal: q = (Q_i - U C_i) T.
        T = _orthonormalizer(L[g, i])  # [g, k, k]
        Cg = C[g, :w]  # [g, w, M]: the design's rows and those appended so far
        Ci = torch.take_along_dim(Cg, slots[i][:, None, :].expand(-1, w, -1), dim=2)
        q_Q = T.mT @ (rows_of(i) - Ci.mT @ Cg)  # [g, k, M]
        beta = (T.mT @ (b[g[:, None], slots[i]] * valid[i])[..., None])[..., 0]  # q^T r
        C[g, w : w + k] = q_Q
        w += k
        b[g] -= (q_Q.mT @ beta[..., None])[..., 0]
        rr[g] = (rr[g] - beta.square().sum(1)).clamp_min(0.0)
        qs = q_Q[:, :, slots]  # [g, k, N, k]
        H[g] -= torch.einsum("gank,ganl->gnkl", qs, qs)
    return out
