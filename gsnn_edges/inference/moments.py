"""Streaming moments for correlation scores between adjacent-block magnitudes.

The torchmetrics split: :func:`moments_init` / :func:`moments_update` /
:func:`moments_compute` are pure functions over a :class:`MomentState`; :class:`PairMoments`
holds the same state in registered buffers (so ``.to()``, ``state_dict()`` and ``reset()``
stay consistent) and delegates to them.

For every adjacent block pair ``p`` the state holds, over all rows ``b`` seen so far
(float64 accumulators):

- ``n`` rows, ``sx = sum_b X[p, b]``, ``sy = sum_b Y[p, b]``;
- ``sxx = sum_b X[p, b]^2``, ``syy = sum_b Y[p, b]^2`` (elementwise);
- ``sxy = sum_b X[p, b]^T Y[p, b]`` (outer products, ``[N, N]``);
- optionally ``sxx_full = sum_b X[p, b]^T X[p, b]``, needed for partial correlations.

From these, :func:`moments_compute` gives the Pearson correlation ``r[p, i, j]`` of
``X[:, i]`` with ``Y[:, j]``, or the partial correlation given the ``X`` columns of ``j``'s
parents ``S_j`` (minus ``i`` itself). A column whose variance is zero (relative to its
second moment) has no defined correlation: its entries are NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

LAYER_AGGS = ("mean", "max")
# A column counts as constant when var <= _REL_VAR_TOL * E[x^2] (float rounding level).
_REL_VAR_TOL = 1e-10
# Entries of the [P, J, N, K] gather in one chunk of target nodes (bounds memory).
_CHUNK_ENTRIES = 1 << 25


class MomentState(NamedTuple):
    """Sufficient statistics for per-pair correlations (float64).

    Shapes:
        n: ``[]``; sx, sy, sxx, syy: ``[P, N]``; sxy, sxx_full: ``[P, N, N]``
        (``sxx_full`` is None when partial correlations are not needed).
    """

    n: Tensor
    sx: Tensor
    sy: Tensor
    sxx: Tensor
    syy: Tensor
    sxy: Tensor
    sxx_full: Tensor | None


def moments_init(
    n_pairs: int,
    n_nodes: int,
    *,
    full: bool = False,
    device: torch.device | str | None = None,
) -> MomentState:
    """An empty state for ``n_pairs`` block pairs of ``n_nodes`` nodes each.

    Args:
        n_pairs: ``P``.
        n_nodes: ``N``.
        full: also accumulate ``sxx_full = X^T X`` (needed by partial correlations).
        device: where the accumulators live.
    """
    kw = {"dtype": torch.float64, "device": device}
    vec = lambda: torch.zeros(n_pairs, n_nodes, **kw)
    mat = lambda: torch.zeros(n_pairs, n_nodes, n_nodes, **kw)
    return MomentState(
        torch.zeros((), **kw), vec(), vec(), vec(), vec(), mat(), mat() if full else None
    )


def moments_update(state: MomentState, X: Tensor, Y: Tensor) -> MomentState:
    """Add a batch of rows; returns the new state (the input state is not modified).

    Shapes:
        X, Y: ``[P, B, N]`` (features of block ``l-1`` and targets of block ``l``).
    """
    return moments_accumulate_(
        MomentState(*(None if t is None else t.clone() for t in state)), X, Y
    )


def moments_accumulate_(state: MomentState, X: Tensor, Y: Tensor) -> MomentState:
    """:func:`moments_update` in place: adds into ``state``'s tensors and returns it.

    All pairs at once: two batched matmuls over ``P``, no loop over nodes, and no new
    ``[P, N, N]`` accumulators per batch (at N = 2,000 each is 160 MB in float64).
    """
    if X.shape != Y.shape or X.dim() != 3 or X.shape[::2] != state.sx.shape:
        raise ValueError(
            f"X and Y must both have shape [P, B, N] = [{state.sx.shape[0]}, B, "
            f"{state.sx.shape[1]}], got {list(X.shape)} and {list(Y.shape)}"
        )
    X = X.detach().to(state.sx)
    Y = Y.detach().to(state.sx)
    Xt = X.transpose(1, 2)
    state.n.add_(X.shape[1])
    state.sx.add_(X.sum(1))
    state.sy.add_(Y.sum(1))
    state.sxx.add_(X.square().sum(1))
    state.syy.add_(Y.square().sum(1))
    state.sxy.baddbmm_(Xt, Y)
    if state.sxx_full is not None:
        state.sxx_full.baddbmm_(Xt, X)
    return state


def _inv_std(second: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    """``1 / std`` (0 for constant columns) and the mask of non-constant columns."""
    var = second - mean.square()
    ok = var > _REL_VAR_TOL * second
    return torch.where(ok, var.clamp_min(1e-300).rsqrt(), torch.zeros_like(var)), ok


def _standardized(state: MomentState) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Correlation blocks ``Rxy [P, N, N]``, ``Rxx [P, N, N]`` (or None) and validity masks.

    ``Rxy[p, i, j] = corr(X_i, Y_j)``; constant columns give 0 off the diagonal of
    ``Rxx`` and 1 on it, so they act as isolated unit-variance variables.
    """
    n = state.n
    mx, my = state.sx / n, state.sy / n
    dx, okx = _inv_std(state.sxx / n, mx)
    dy, oky = _inv_std(state.syy / n, my)
    cxy = state.sxy / n - mx[:, :, None] * my[:, None, :]
    rxy = (cxy * dx[:, :, None] * dy[:, None, :]).clamp(-1.0, 1.0)
    rxx = None
    if state.sxx_full is not None:
        cxx = state.sxx_full / n - mx[:, :, None] * mx[:, None, :]
        rxx = (cxx * dx[:, :, None] * dx[:, None, :]).clamp(-1.0, 1.0)
        eye = torch.eye(rxx.shape[-1], dtype=torch.bool, device=rxx.device)
        rxx = rxx.masked_fill(eye, 1.0)
    return rxy, rxx, okx, oky


def padded_parents(parents: Tensor) -> tuple[Tensor, Tensor]:
    """Each target's parent indices, padded to the maximum in-degree ``K``.

    The first ``deg[j]`` entries of row ``j`` are ``j``'s parents (ascending); the padding
    entries are distinct non-parents, so scattering into them never clobbers a parent.

    Shapes:
        parents: bool ``[N, N]`` (``parents[i, j]``: ``i`` is a parent of ``j``) ->
        idx: long ``[N, K]``, valid: bool ``[N, K]``.
    """
    cols = parents.t()
    deg = cols.sum(1)
    k = int(deg.max()) if deg.numel() else 0
    idx = torch.argsort((~cols).to(torch.int8), dim=1, stable=True)[:, :k]
    valid = torch.arange(k, device=parents.device) < deg[:, None]
    return idx, valid


def _partial_chunk(
    rxy: Tensor, rxx: Tensor, idx: Tensor, valid: Tensor, js: Tensor, ridge: float
) -> Tensor:
    """Partial correlations ``[P, J, N]`` (target-major) for the targets ``js``.

    With ``S = S_j`` (padded to ``K``, padding replaced by identity), ``A = R_SS + ridge I``,
    ``r_S = R_{S, y_j}``, for a non-parent source ``i``:
    ``c = R_{i y} - R_{iS} A^-1 r_S``, ``v_x = 1 - R_{iS} A^-1 R_{Si}``,
    ``v_y = 1 - r_S^T A^-1 r_S``, ``r = c / sqrt(v_x v_y)``. For a parent ``i = S_k`` the
    conditioning set is ``S \\ {i}``: with ``Omega = inv([[A, r_S], [r_S^T, 1]])``,
    ``r = -Omega[k, K] / sqrt(Omega[k, k] Omega[K, K])``.
    """
    n_p, k = rxy.shape[0], idx.shape[1]
    sj, vj = idx[js], valid[js]  # [J, K]
    vm = vj[:, :, None] & vj[:, None, :]
    eye = torch.eye(k, dtype=rxy.dtype, device=rxy.device)
    a = torch.where(vm, rxx[:, sj[:, :, None], sj[:, None, :]], eye) + ridge * eye
    rs = torch.where(vj, rxy[:, sj, js[:, None]], 0.0)  # [P, J, K]
    ainv = torch.linalg.inv(a) * vm
    w = (ainv @ rs[..., None]).squeeze(-1)  # A^-1 r_S, zero on the padding: [P, J, K]
    ris = rxx[:, :, sj].permute(0, 2, 1, 3)  # [P, J, N, K]; padding columns meet zeros
    vx = 1.0 - ((ris @ ainv) * ris).sum(-1)
    c = rxy[:, :, js].transpose(1, 2) - (ris @ w[..., None]).squeeze(-1)
    vy = 1.0 - (rs * w).sum(-1, keepdim=True)  # [P, J, 1]
    r = c / (vx.clamp_min(1e-12) * vy.clamp_min(1e-12)).sqrt()
    # Parents: partial correlation given the other parents, from the joint precision.
    top = torch.cat([a, rs[..., None]], -1)  # [P, J, K, K + 1]
    bottom = torch.cat([rs, torch.ones_like(rs[..., :1])], -1)[:, :, None]  # [P, J, 1, K + 1]
    om = torch.linalg.inv(torch.cat([top, bottom], -2))
    d = torch.diagonal(om, dim1=-2, dim2=-1).clamp_min(1e-300)
    rp = -om[..., :k, k] / (d[..., :k] * d[..., k:]).sqrt()
    rp_full = torch.zeros_like(r).scatter_(-1, sj.expand(n_p, -1, -1), torch.where(vj, rp, 0.0))
    is_parent = torch.zeros_like(r, dtype=torch.bool)[0].scatter_(-1, sj, vj)
    return torch.where(is_parent, rp_full, r).clamp(-1.0, 1.0)


def _partial(rxy: Tensor, rxx: Tensor, parents: Tensor, ridge: float) -> Tensor:
    """Partial correlations ``[P, N, N]`` (source-major), chunked over targets."""
    idx, valid = padded_parents(parents)
    n_p, n = rxy.shape[:2]
    if idx.shape[1] == 0:
        return rxy
    step = max(1, _CHUNK_ENTRIES // max(n_p * n * idx.shape[1], 1))
    out = torch.empty_like(rxy)
    for start in range(0, n, step):  # chunks of targets bound memory; one chunk when small
        js = torch.arange(start, min(start + step, n), device=rxy.device)
        out[:, :, js] = _partial_chunk(rxy, rxx, idx, valid, js, ridge).transpose(1, 2)
    return out


def moments_compute(
    state: MomentState, *, parents: Tensor | None = None, ridge: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Per-pair (partial) correlations of ``X_i`` with ``Y_j``.

    Pearson (``parents=None``): ``r = cov(X_i, Y_j) / sqrt(var X_i var Y_j)``.
    Partial: the correlation of the residuals of ``X_i`` and ``Y_j`` after a linear
    regression (with intercept) on ``X_{S_j \\ {i}}``, ``S_j = {k: parents[k, j]}``,
    computed from the correlation matrices with ``ridge`` added to the diagonal of the
    ``[S_j, S_j]`` block (see :func:`_partial_chunk`).

    Args:
        state: accumulated moments; ``sxx_full`` is required when ``parents`` is given.
        parents: bool ``[N, N]``, ``parents[k, j]``: ``k`` is a parent of ``j``.
        ridge: ridge on the parents' correlation block.

    Returns:
        ``r [P, N, N]`` (``r[p, i, j]``; NaN where ``X_i`` or ``Y_j`` is constant) and the
        conditioning-set sizes ``k [N, N]`` (``|S_j \\ {i}|``; zeros for Pearson).

    Raises:
        RuntimeError: fewer than 2 rows, or ``parents`` without ``sxx_full``.
    """
    if float(state.n) < 2:
        raise RuntimeError(f"need at least 2 rows to compute correlations, got {int(state.n)}")
    rxy, rxx, okx, oky = _standardized(state)
    n = rxy.shape[-1]
    k = torch.zeros(n, n, dtype=torch.long, device=rxy.device)
    if parents is not None:
        if rxx is None:
            raise RuntimeError("partial correlations need a state built with full=True")
        parents = parents.to(device=rxy.device, dtype=torch.bool)
        parents = parents & ~torch.eye(n, dtype=torch.bool, device=rxy.device)
        rxy = _partial(rxy, rxx, parents, ridge)
        k = parents.sum(0, keepdim=True) - parents.long()
    undefined = ~(okx[:, :, None] & oky[:, None, :])
    return rxy.masked_fill(undefined, float("nan")), k


def combine_pairs(r: Tensor, layer_agg: str) -> Tensor:
    """Combine per-pair correlations over ``P``, ignoring undefined (NaN) entries.

    ``'mean'``: mean over the pairs where ``r`` is defined; ``'max'``: their maximum.
    Entries undefined for every pair become 0.

    Shapes:
        r: ``[P, N, N]`` -> ``[N, N]``.
    """
    if layer_agg not in LAYER_AGGS:
        raise ValueError(f"unknown layer_agg {layer_agg!r}; choose from {LAYER_AGGS}")
    ok = ~torch.isnan(r)
    count = ok.sum(0)
    if layer_agg == "mean":
        out = torch.where(ok, r, 0.0).sum(0) / count.clamp_min(1)
    else:
        out = torch.where(ok, r, float("-inf")).amax(0)
    return torch.where(count > 0, out, 0.0)


def fisher_z_pvalues(r: Tensor, n: float, k: Tensor | int = 0) -> Tensor:
    """One-sided p-values for ``r > 0`` with the Fisher z transform.

    ``z = atanh(r) sqrt(df)``, ``df = n - 3 - k``, ``p = 1 - Phi(z)``; ``p = 1`` where
    ``df <= 0``.

    Shapes:
        r: ``[...]``; k: broadcastable to ``r`` (conditioning-set sizes) -> ``[...]``.
    """
    r = r.to(torch.float64)
    df = n - 3 - torch.as_tensor(k, dtype=torch.float64, device=r.device)
    z = torch.atanh(r.clamp(-1 + 1e-15, 1 - 1e-15)) * df.clamp_min(0).sqrt()
    return torch.where(df > 0, torch.special.ndtr(-z), 1.0)


class PairMoments(nn.Module):
    """:class:`MomentState` in registered buffers, with update/compute/reset.

    Args:
        n_pairs: number of adjacent block pairs ``P``.
        n_nodes: number of function nodes ``N``.
        full: also accumulate ``X^T X`` (needed for ``compute(parents=...)``).

    Shapes:
        update: X, Y ``[P, B, N]``; compute: ``[P, N, N]`` and ``[N, N]``.
    """

    def __init__(self, n_pairs: int, n_nodes: int, *, full: bool = False) -> None:
        super().__init__()
        self.n_pairs, self.n_nodes, self.full = n_pairs, n_nodes, full
        for name, value in moments_init(n_pairs, n_nodes, full=full)._asdict().items():
            self.register_buffer(name, value)

    @property
    def state(self) -> MomentState:
        return MomentState(*(getattr(self, f) for f in MomentState._fields))

    def _assign(self, state: MomentState) -> None:
        for name, value in state._asdict().items():
            setattr(self, name, value)

    def reset(self) -> None:
        device = self.sx.device
        self._assign(moments_init(self.n_pairs, self.n_nodes, full=self.full, device=device))

    def update(self, X: Tensor, Y: Tensor) -> None:
        moments_accumulate_(self.state, X, Y)

    def compute(
        self, *, parents: Tensor | None = None, ridge: float = 1e-6
    ) -> tuple[Tensor, Tensor]:
        return moments_compute(self.state, parents=parents, ridge=ridge)

    def extra_repr(self) -> str:
        return f"pairs={self.n_pairs}, nodes={self.n_nodes}, full={self.full}"
