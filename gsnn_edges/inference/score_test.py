"""Rao's score test for a missing function -> function edge (the "grow" criterion).

Adding an edge ``i -> j`` between adjacent blocks ``(l-1, l)`` adds a block ``A`` from
``i``'s activation channels ``h_i^{l-1}`` (after the nonlinearity, what ``lin_out`` reads)
to ``j``'s pre-norm channels ``z_j^l``. At ``A = 0`` the loss is unchanged and

.. math::
    \\frac{\\partial L}{\\partial A} = \\sum_b g_j^{l}[b] \\, h_i^{l-1}[b]^\\top,
    \\qquad g_j^l = \\partial L / \\partial z_j^l,

the first-order loss decrease from adding the edge. Channel-reduced to one scalar per
pair (``A`` restricted to a multiple of the all-ones block, so ``[N, N]`` per block pair
instead of ``[N K, N K]``; ``benchmarks/README.md`` gives the measured cost of the
reduction) with ``t_i = sum_c h_i[c]`` and ``s_j = sum_c g_j[c]`` per sample:

.. math::
    U_{ij} = \\sum_b t_i[b] s_j[b], \\quad V_{ij} = \\sum_b t_i[b]^2 s_j[b]^2, \\quad
    Q_{ij} = \\sum_{p} U_{ij,p}^2 / V_{ij,p}

``U / sqrt(V)`` is asymptotically standard normal when the edge adds nothing at a fitted
model (per-sample contributions of mean zero), so ``Q`` is referred to a chi-square with
``P = L - 1`` degrees of freedom (one per block pair; adjacent pairs are correlated, so
this p-value is approximate). Everything is streamed as ``[P, N, N]`` matmuls; no
per-sample data is stored.

The test is only valid at one fixed model: fit it with one pass over the training rows
at the chosen checkpoint (``train_joint`` does), never on gradients of a model that is
still changing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
from scipy.stats import chi2
from torch import Tensor, nn

from gsnn_edges.device import model_device
from gsnn_edges.graph import GraphData
from gsnn_edges.inference.edge_table import (
    HeldOutPairEvaluation,
    edge_table,
    function_edge_mask,
)
from gsnn_edges.inference.magnitudes import (
    LossFn,
    check_probe_model,
    node_sums,
    probe_batches,
    uniform_group_size,
)

__all__ = ["ScoreTestScorer"]


class ScoreTestScorer(HeldOutPairEvaluation):
    """Score every function -> function pair of a fitted GSNN by the score statistic.

    Args:
        model: a trained :class:`~gsnn_edges.nn.GSNN` (at least 2 layers, no checkpointing).
        data: the graph the model was built on.
        device: where batches go and statistics are kept (default: the model's device).

    Shapes:
        score_matrix(): ``[N, N]`` statistic ``Q``, ``Q[i, j]`` scores ``i -> j``.

    Raises:
        ValueError: a model the magnitudes cannot be read from (see
            :func:`~gsnn_edges.inference.magnitudes.check_probe_model`).
    """

    def __init__(
        self, model: nn.Module, data: GraphData, *, device: torch.device | str | None = None
    ) -> None:
        check_probe_model(model, data)
        self.model, self.names = model, list(data.node_names_dict["function"])
        n, p = model.n_function, len(model.ResBlocks) - 1
        self.device = torch.device(device) if device is not None else model_device(model)
        self._group_size = uniform_group_size(model.channel_groups, n)
        self.in_graph = function_edge_mask(data, n)
        self.n_pairs = p
        self.U = torch.zeros(p, n, n, dtype=torch.float64, device=self.device)
        self.V = torch.zeros_like(self.U)
        self.n_rows = 0

    def fit(
        self, loader: Iterable, loss_fn: LossFn = torch.nn.functional.mse_loss
    ) -> ScoreTestScorer:
        """Accumulate ``U`` and ``V`` over ``loader`` (``(x, y, ...)`` batches, as
        :meth:`MagnitudeEdgeInferer.fit <gsnn_edges.inference.inferer.MagnitudeEdgeInferer.fit>`
        takes them, with the training ``loss_fn``) at the current, fixed model: one eval-mode
        pass of :func:`~gsnn_edges.inference.magnitudes.probe_batches`, parameters untouched.
        Returns ``self``; raises ``ValueError`` when the loader yields no rows.
        """
        self.U.zero_()
        self.V.zero_()
        self.n_rows = 0
        # lin_out reads the activation after the nonlinearity: what a new edge would carry
        for acts, grads in probe_batches(self.model, loader, loss_fn, self.device, False):
            self._accumulate(acts, grads)
        if self.n_rows == 0:
            raise ValueError("loader yielded no rows; nothing to fit")
        return self

    def _accumulate(self, acts: list[Tensor], grads: list[Tensor]) -> None:
        groups, n, size = self.model.channel_groups, self.model.n_function, self._group_size
        t = node_sums(torch.stack(acts), groups, n, size).double().transpose(1, 2)  # [P, N, B]
        s = node_sums(torch.stack(grads), groups, n, size).double()  # [P, B, N]
        self.U.baddbmm_(t, s)
        self.V.baddbmm_(t.square(), s.square())
        self.n_rows += s.shape[1]

    # ------------------------------------------------------------------ scoring
    def score_matrix(self) -> Tensor:
        """The statistic ``Q`` ``[N, N]`` (float64; 0 where ``V`` is 0).

        Raises:
            RuntimeError: before :meth:`fit`.
        """
        if self.n_rows == 0:
            raise RuntimeError("call fit(loader) before scoring")
        ok = self.V > 0
        ratio = self.U.square() / torch.where(ok, self.V, torch.ones_like(self.V))
        return torch.where(ok, ratio, torch.zeros_like(ratio)).sum(0)

    def statistic_and_pvalues(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q`` and its asymptotic p-values ``P(chi2_P > Q)``, numpy ``[N, N]`` each."""
        q = self.score_matrix().cpu().numpy()
        return q, chi2.sf(q, self.n_pairs)

    def p_values(self) -> np.ndarray:
        """Asymptotic p-values ``P(chi2_P > Q)`` ``[N, N]``."""
        return self.statistic_and_pvalues()[1]

    def evaluate(self, *, exclude_self: bool = True) -> pd.DataFrame:
        """All scored pairs, score (``Q``) descending, in the regressor's columns."""
        q, p = self.statistic_and_pvalues()
        return edge_table(q, self.names, self.in_graph, p, exclude_self=exclude_self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(nodes={len(self.names)}, pairs={self.n_pairs}, "
            f"rows={self.n_rows})"
        )
