"""Post-hoc edge inference from magnitude correlations (SPEC section 5).

The baseline the online :class:`MagnitudeEdgeRegressor` must beat: after training, run
extra forward/backward passes over a GSNN in eval mode, stream the moments of the
activation magnitudes of block ``l-1`` and the gradient magnitudes of block ``l`` for every
adjacent block pair, and score ``i -> j`` by their (partial) correlation.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
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
    check_aggregators,
    check_probe_model,
    node_magnitudes,
    probe_batches,
    uniform_group_size,
)
from gsnn_edges.inference.moments import (
    LAYER_AGGS,
    PairMoments,
    combine_pairs,
    fisher_z_pvalues,
)

SCORES = ("corr", "partial")


class MagnitudeEdgeInferer(HeldOutPairEvaluation):
    """Score candidate function -> function edges of a trained GSNN post hoc.

    For adjacent blocks ``(l-1, l)``, ``l = 1..L-1``, features are the activation
    magnitudes ``x^{l-1}`` (``aggregator`` over each node's channels of the pre-norm
    activation ``z``, or of the post-nonlinearity activation when ``use_pre_norm=False``)
    and targets the gradient magnitudes ``y^l = sum |dL/dz^l|`` (always of ``z``). The
    score of ``i -> j`` is

    - ``'corr'``: the Pearson correlation of ``x_i^{l-1}`` with ``y_j^l``;
    - ``'partial'``: their partial correlation given ``x_{S_j \\ {i}}^{l-1}``, the
      activations of ``j``'s function parents in ``data`` (ridge on their block);

    combined over the pairs by ``layer_agg`` (``'mean'`` / ``'max'`` over the pairs where
    it is defined; 0 where no pair defines it, e.g. for a node whose activation is
    constant). p-values: one-sided Fisher-z test of a positive association,
    ``z = atanh(r) sqrt(n - 3 - |S_j \\ {i}|)``, ``p = 1 - Phi(z)``; BH q-values.

    Args:
        model: a trained :class:`~gsnn_edges.nn.GSNN` (at least 2 layers, no checkpointing).
        data: the graph the model was built on (``node_names_dict``, ``edge_index_dict``).
        aggregator: ``'sum'``, ``'max'``, ``'mean'`` or ``'l2'``.
        use_pre_norm: take activation magnitudes from ``z`` (else from the activation
            after norm/nonlinearity).
        score: ``'corr'`` or ``'partial'``.
        layer_agg: ``'mean'`` or ``'max'``.
        ridge: added to the diagonal of the parents' correlation block (``'partial'``).
        device: where batches are moved and statistics kept (default: the model's
            device; the model itself is not moved).

    Shapes:
        score_matrix(): ``[N, N]``, ``S[i, j]`` scores ``function_i -> function_j``.

    Raises:
        ValueError: unknown ``aggregator`` / ``score`` / ``layer_agg``, negative
            ``ridge``, a model with ``checkpoint=True`` or fewer than 2 layers, or a graph
            whose function-node count differs from the model's.
    """

    def __init__(
        self,
        model: nn.Module,
        data: GraphData,
        *,
        aggregator: str = "sum",
        use_pre_norm: bool = True,
        score: str = "corr",
        layer_agg: str = "mean",
        ridge: float = 1e-6,
        device: torch.device | str | None = None,
    ) -> None:
        self.aggregator = check_aggregators((aggregator,))[0]
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; choose from {SCORES}")
        if layer_agg not in LAYER_AGGS:
            raise ValueError(f"unknown layer_agg {layer_agg!r}; choose from {LAYER_AGGS}")
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        check_probe_model(model, data)
        self.names = list(data.node_names_dict["function"])
        n = model.n_function
        self._group_size = uniform_group_size(model.channel_groups, n)
        self.model, self.data = model, data
        self.use_pre_norm, self.score = use_pre_norm, score
        self.layer_agg, self.ridge = layer_agg, ridge
        self.device = torch.device(device) if device is not None else model_device(model)
        self.in_graph = function_edge_mask(data, n)
        self.moments = PairMoments(len(model.ResBlocks) - 1, n, full=score == "partial")
        self.moments.to(self.device)

    # ------------------------------------------------------------------ fitting
    def fit(
        self, loader: Iterable, loss_fn: LossFn = torch.nn.functional.mse_loss
    ) -> MagnitudeEdgeInferer:
        """Stream the magnitude moments over ``loader`` (statistics are reset first).

        Each batch runs one forward and one backward pass in eval mode
        (:func:`~gsnn_edges.inference.magnitudes.probe_batches`: per-sample gradients of
        the cached ``z`` only, parameters untouched).

        Args:
            loader: yields ``(x, y, ...)`` batches, ``x: [B, n_inputs]``, ``y: [B, n_outputs]``.
            loss_fn: the training loss ``loss_fn(yhat, y) -> scalar``.

        Returns:
            ``self``.

        Raises:
            ValueError: the loader yields no batch.
        """
        self.moments.reset()
        for acts, grads in probe_batches(
            self.model, loader, loss_fn, self.device, self.use_pre_norm
        ):
            self.moments.update(*self._batch_magnitudes(acts, grads))
        if float(self.moments.n) == 0:
            raise ValueError("loader yielded no batch; nothing to fit")
        return self

    def _batch_magnitudes(self, acts: list[Tensor], grads: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Features ``x^{l-1}`` and targets ``y^l`` of one batch, ``[P, B, N]`` each."""
        n, groups = self.model.n_function, self.model.channel_groups
        a, g = torch.stack(acts), torch.stack(grads)  # [P, B, C]
        size = self._group_size
        feats = node_magnitudes(a, groups, n, (self.aggregator,), group_size=size)[0]
        targets = node_magnitudes(g, groups, n, ("sum",), group_size=size)[0]
        return feats, targets

    # ------------------------------------------------------------------ scoring
    def _per_pair(self) -> tuple[Tensor, Tensor]:
        if float(self.moments.n) == 0:
            raise RuntimeError("call fit(loader) before scoring")
        parents = None
        if self.score == "partial":
            parents = torch.as_tensor(self.in_graph, device=self.device)
        return self.moments.compute(parents=parents, ridge=self.ridge)

    def score_matrix(self) -> Tensor:
        """Combined (partial) correlations, float64 ``[N, N]``; ``S[i, j]`` scores ``i -> j``.

        Raises:
            RuntimeError: before :meth:`fit`.
        """
        return combine_pairs(self._per_pair()[0], self.layer_agg)

    def p_values(self) -> Tensor:
        """One-sided Fisher-z p-values of the score matrix, ``[N, N]``."""
        r, k = self._per_pair()
        return fisher_z_pvalues(combine_pairs(r, self.layer_agg), float(self.moments.n), k)

    def evaluate(self, *, exclude_self: bool = True) -> pd.DataFrame:
        """All scored pairs sorted by score, descending.

        Returns:
            DataFrame with columns ``src_func, dst_func, src_idx, dst_idx, corr,
            has_edge, p_value, q_value`` (``N (N - 1)`` rows with ``exclude_self``).
        """
        r, k = self._per_pair()
        scores = combine_pairs(r, self.layer_agg)
        p = fisher_z_pvalues(scores, float(self.moments.n), k)
        return edge_table(
            scores.cpu().numpy(),
            self.names,
            self.in_graph,
            p.cpu().numpy(),
            exclude_self=exclude_self,
            score_col="corr",
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(nodes={len(self.names)}, "
            f"pairs={self.moments.n_pairs}, aggregator={self.aggregator!r}, "
            f"score={self.score!r}, layer_agg={self.layer_agg!r}, rows={int(self.moments.n)})"
        )


__all__ = ["SCORES", "MagnitudeEdgeInferer"]
