"""The online regressor's streaming statistics as functions: EMA standardisation, the
Gram / RSS accumulation behind its p-values, and the p-values. The regressor only holds
the state (buffers) they update."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr
from torch import Tensor

# The z-score's eps is relative: gradient magnitudes have per-node batch variances of
# 1e-8 to 2e-7 (SPEC section 4), so a fixed eps of 1e-5 left them scaled, not
# standardised. Relative to the term's mean variance, eps is negligible for any live
# column (1e-4 of the mean), while a constant column (whose float32 rounding leaves a
# variance ~1e-18) stays near 0 instead of being blown up to unit variance.
REL_EPS = 1e-4
ABS_EPS = 1e-30  # keeps rsqrt finite when a whole term is constant


def inv_std(var: Tensor) -> Tensor:
    """``1 / sqrt(var + eps)`` with ``eps = REL_EPS * mean(var over nodes) + ABS_EPS``.

    Shapes:
        var: ``[N, T, 1]`` -> ``[N, T, 1]``.
    """
    return torch.rsqrt(var + (var.mean(0, keepdim=True) * REL_EPS + ABS_EPS))


def standardize_update(
    v: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float, training: bool
) -> Tensor:
    """Z-score ``v`` per (node, term) over the batch and update the running statistics.

    The eps is relative to the term's mean variance (:func:`inv_std`).

    Training mode uses the batch statistics and moves the running ones towards them by
    ``momentum`` (in place); eval mode uses the running statistics.

    Shapes:
        v: ``[N, T, B]`` (feature-major); running_mean, running_var: ``[T, N]``.
    """
    if not training:
        mean, var = running_mean.t()[..., None], running_var.t()[..., None]
        return (v - mean) * inv_std(var)
    # two-pass centred variance: faster than torch.var_mean for many short rows on CPU
    # (benchmarks/README.md), and the centred values are needed for the output anyway
    mean = v.mean(-1, keepdim=True)
    centred = v - mean
    var = centred.square().mean(-1, keepdim=True)
    running_mean.lerp_(mean[..., 0].t(), momentum)
    running_var.lerp_(var[..., 0].t(), momentum)
    return centred.mul_(inv_std(var))


def gram_update_(gram: Tensor, n_rows: Tensor, rss: Tensor, X: Tensor, term_sums: Tensor) -> None:
    """Accumulate one step's design and residuals in place: ``gram += X X^T``,
    ``n_rows += T B`` (the stacked rows), ``rss += sum of squared residuals``.

    Shapes:
        gram: ``[N, N]``; X: ``[N, T B]`` (feature-major); term_sums: ``[T]``.
    """
    gram.addmm_(X, X.t())
    n_rows.add_(X.shape[1])
    rss.add_(term_sums.sum().double())


def gram_pvalues(W: Tensor, gram: Tensor, n_rows: int, rss: float, ridge: float) -> np.ndarray:
    """One-sided p-values for ``W_ij > 0``.

    .. math::
        G = \\mathrm{Gram}/n + (\\rho + 10^{-8}) I,\\quad
        \\sigma^2 = \\mathrm{RSS} / \\max(n_{res} - N, 1),\\quad
        se_i = \\sqrt{\\sigma^2 (G^{-1})_{ii}},\\quad p_{ij} = 1 - \\Phi(W_{ij} / se_i)

    ``n_res = N * n_rows`` counts residual entries (each row has one per target), so
    ``sigma^2`` is the mean squared residual per entry. The rows repeat across epochs, so
    the standard error deliberately carries no ``1/sqrt(n)`` factor: it is a per-row
    scale and the test is conservative.
    All ones while fewer than ``N + 2`` rows were seen.

    Shapes:
        W, gram: ``[N, N]`` -> ``[N, N]``.
    """
    n = W.shape[0]
    if n_rows < n + 2:
        return np.ones((n, n))
    G = gram.double().cpu() / n_rows + (ridge + 1e-8) * torch.eye(n, dtype=torch.float64)
    inv_diag = torch.linalg.inv(G).diagonal().clamp(min=0)
    sigma2 = rss / max(n * n_rows - n, 1)
    se = torch.sqrt(sigma2 * inv_diag).clamp(min=1e-12).numpy()
    return 1.0 - ndtr(W.double().cpu().numpy() / se[:, None])
