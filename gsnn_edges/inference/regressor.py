"""Online auxiliary linear regressor scoring function -> function edges (SPEC section 4)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from gsnn_edges import metrics
from gsnn_edges.device import adamw, model_device
from gsnn_edges.graph import GraphData
from gsnn_edges.inference.choices import LR_SCHEDULES, SCORE_MODES
from gsnn_edges.inference.edge_table import edge_table, function_edge_mask
from gsnn_edges.inference.magnitudes import (
    block_tensors,
    check_aggregators,
    check_probe_model,
    node_magnitudes,
    reduce_channels,
    uniform_group_size,
)
from gsnn_edges.inference.regressor_stats import gram_pvalues, gram_update_, standardize_update
from gsnn_edges.nn.dropout import draw_keep_mask, keep_cut, keep_scale

_POST_NORM_OK = ("batch", "groupbatch", "none")
_MASK_CHUNK = 1 << 22  # dropout-mask entries per batched product (16 MiB in float32)


class MagnitudeEdgeRegressor(nn.Module):
    """Online auxiliary linear regressor for function -> function edge inference.

    For every adjacent block pair ``p = (l-1, l)`` and source aggregator ``k`` the
    activation magnitudes ``X = x^{l-1,k}`` predict the gradient magnitudes
    ``Y = y^{l}`` through one shared matrix:

    .. math::
        \\hat Y_{t} = \\tilde X_{t} \\, \\mathrm{dropout}(W), \\qquad
        L = \\sum_{t=(p,k)} \\mathrm{mean}\\big((\\hat Y_t - \\tilde Y_p)^2\\big)
            + \\rho \\lVert W \\rVert^2

    with ``~`` the (EMA) z-score. All ``T = P*K`` terms are stacked into one
    ``[T*B, N] @ [N, N]`` product; the gradient of ``L`` with respect to ``W`` is formed
    in closed form and handed to AdamW, so no autograd graph is built.

    Args:
        model: the GSNN being trained (``checkpoint=False``).
        data: graph container with ``node_names_dict`` and ``edge_index_dict``.
        aggregators: source reductions over a node's channels (``sum``, ``max``,
            ``mean``, ``l2``); targets always use L1.
        use_pre_norm: use post-``lin_in`` pre-norm activations (default) rather than the
            post-nonlinearity activations.
        standardize: EMA z-score features per (pair, aggregator) and targets per pair.
        lr: AdamW learning rate for ``W``.
        weight_decay: AdamW decoupled weight decay for ``W``.
        ridge: extra L2 penalty ``ridge * ||W||^2`` in the loss.
        score_mode: ``'abs'`` -> ``|W|``, ``'relu'`` -> ``max(W, 0)``, ``'signed'`` -> ``W``.
        ema_momentum: weight of the newest batch in the running mean/variance.
        dropout: dropout rate on the entries of ``W`` in training mode.

    Shapes:
        W: ``[N, N]``, ``W[i, j]`` scores ``function_i -> function_j``;
        X, Y (per term): ``[B, N]``.
    """

    def __init__(
        self,
        model: nn.Module,
        data: GraphData,
        aggregators: Sequence[str] = ("sum", "max"),
        use_pre_norm: bool = True,
        standardize: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        ridge: float = 1e-2,
        score_mode: str = "abs",
        ema_momentum: float = 0.1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self._validate(model, data, use_pre_norm, score_mode, dropout)
        self.aggregators = check_aggregators(aggregators)
        self._gsnn = [model]  # a list keeps the GSNN out of this module's parameters/state
        self.node_names = list(data.node_names_dict["function"])
        self.use_pre_norm, self.standardize = use_pre_norm, standardize
        self.lr, self.weight_decay, self.ridge = lr, weight_decay, ridge
        self.score_mode, self.ema_momentum, self.dropout = score_mode, ema_momentum, dropout
        n, n_pairs, n_terms = (
            self.n_nodes,
            model.layers - 1,
            (model.layers - 1) * len(self.aggregators),
        )
        self.n_pairs, self.n_terms = n_pairs, n_terms
        self._group_size = uniform_group_size(model.channel_groups, n)  # None: irregular
        self.register_buffer("in_graph", torch.from_numpy(function_edge_mask(data, n)), False)
        self.W = nn.Parameter(torch.empty(n, n))
        self.register_buffer("x_mean", torch.zeros(n_terms, n))
        self.register_buffer("x_var", torch.ones(n_terms, n))
        self.register_buffer("y_mean", torch.zeros(n_pairs, n))
        self.register_buffer("y_var", torch.ones(n_pairs, n))
        self.register_buffer("gram", torch.zeros(n, n))
        self.register_buffer("n_rows", torch.zeros((), dtype=torch.long))
        self.register_buffer("rss", torch.zeros((), dtype=torch.float64))
        self.to(model_device(model))
        self.reset_parameters()
        self._stage = "idle"
        self._scratch_buffers: dict[str, Tensor] = {}
        self._best_state: dict[str, Tensor] | None = None
        self.best_metric: float | None = None

    @staticmethod
    def _validate(
        model: nn.Module, data: GraphData, use_pre_norm: bool, score_mode: str, dropout: float
    ) -> None:
        check_probe_model(model, data)
        if not use_pre_norm and getattr(model, "norm", "none") not in _POST_NORM_OK:
            raise ValueError(
                f"use_pre_norm=False needs norm in {_POST_NORM_OK}, got norm={model.norm!r}: "
                "a per-sample norm erases the activation magnitudes"
            )
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
        keep_cut(dropout)  # validates: 0 <= dropout <= 1 - 1/65536 (the masks' resolution)

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.W, gain=0.1)
        for name in ("x_mean", "y_mean", "gram", "n_rows", "rss"):
            getattr(self, name).zero_()
        self.x_var.fill_(1.0)
        self.y_var.fill_(1.0)
        self.optimizer = adamw([self.W], lr=self.lr, weight_decay=self.weight_decay)

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    @property
    def model(self) -> nn.Module:
        """The GSNN being trained (not a submodule: its state is not ours to save)."""
        return self._gsnn[0]

    # ----------------------------------------------------------------- call protocol
    def pre_forward(self) -> None:
        """Ask every ResBlock to cache its activations for the coming forward pass."""
        self.model._store_activations = True
        self._stage = "forward"

    def arm_retained_grads(self) -> None:
        """Retain gradients on the cached activations; call after the forward pass."""
        if self._stage != "forward":
            raise RuntimeError(
                "arm_retained_grads() called before pre_forward(): call "
                "pre_forward(), then model(x), then arm_retained_grads()"
            )
        cached = block_tensors(self.model, self.use_pre_norm)
        if any(t is None or not t.requires_grad for t in cached):
            raise RuntimeError(
                "no cached activations with gradients: run yhat = model(x) "
                "(with grad enabled) between pre_forward() and "
                "arm_retained_grads()"
            )
        for t in cached:
            t.retain_grad()
        self._stage = "armed"

    def aux_step(self) -> dict[str, float]:
        """Update ``W`` from the cached activations and their gradients.

        Must follow ``loss.backward()``. Features are detached: nothing flows back into
        the GSNN. The cached activations are released afterwards, also on error.

        Returns:
            ``{'aux_loss': mean loss over the P*K terms, 'n_terms': P*K}``.
        """
        try:
            if self._stage != "armed":
                missing = "pre_forward()" if self._stage == "idle" else "arm_retained_grads()"
                raise RuntimeError(
                    f"aux_step() called out of order: {missing} is missing; "
                    "order is pre_forward -> model(x) -> arm_retained_grads "
                    "-> loss.backward() -> aux_step"
                )
            X, Y = self._magnitudes()
            return self._step(X, Y)
        finally:
            self._stage = "idle"
            self.model._store_activations = False

    def _magnitudes(self) -> tuple[Tensor, Tensor]:
        """Features ``[N, T, B]`` (term ``t = p*K + k``) and targets ``[N, P, B]``."""
        cached = block_tensors(self.model, self.use_pre_norm)
        grads = [t.grad for t in cached[1:]]
        if any(g is None for g in grads):
            raise RuntimeError(
                "activation gradients missing: call loss.backward() after "
                "arm_retained_grads() and before aux_step()"
            )
        n = self.n_nodes
        X = self._node_magnitudes([t.detach() for t in cached[:-1]], self.aggregators)
        Y = self._node_magnitudes(grads, ("sum",))[:, :, 0]  # [N, P, B]
        return X.reshape(n, self.n_terms, -1), Y

    def _node_magnitudes(self, tensors: list[Tensor], aggs: tuple[str, ...]) -> Tensor:
        """Per-node magnitudes ``[N, P, K, B]`` (contiguous) of ``P`` cached ``[B, C]`` tensors.

        ``|.|`` is written straight into one stacked buffer in whichever layout the
        tensors are stored (our GSNN caches activations as views of feature-major
        ``[C, B]`` storage; retained gradients arrive batch-major), then one reduction
        per aggregator covers every node and layer.
        """
        n, p = self.n_nodes, len(tensors)
        if self._group_size is not None and all(t.t().is_contiguous() for t in tensors):
            c, b = tensors[0].shape[1], tensors[0].shape[0]
            buf = tensors[0].new_empty(c, p, b)
            for i, t in enumerate(tensors):  # loop over layers, not nodes
                torch.abs(t.t(), out=buf[:, i])
            g = buf.view(n, -1, p, b)  # [N, channels, P, B]
            return torch.stack([reduce_channels(g, k, 1) for k in aggs], dim=2)
        if self._group_size is not None and all(t.is_contiguous() for t in tensors):
            b, c = tensors[0].shape
            buf = tensors[0].new_empty(p, b, c)
            for i, t in enumerate(tensors):
                torch.abs(t, out=buf[i])
            g = buf.view(p, b, n, -1)  # [P, B, N, channels]
            out = torch.stack([reduce_channels(g, k, 3) for k in aggs], dim=2)  # [P, B, K, N]
            return out.permute(3, 0, 2, 1).contiguous()
        groups, size = self.model.channel_groups, self._group_size
        out = node_magnitudes(torch.stack(tensors), groups, n, aggs, group_size=size)
        return out.permute(3, 1, 0, 2).contiguous()  # [K, P, B, N] -> [N, P, K, B]

    @torch.no_grad()
    def _step(self, X: Tensor, Y: Tensor) -> dict[str, float]:
        """One AdamW step on ``W`` in the feature-major layout (all matmuls see views).

        Shapes:
            X: ``[N, T, B]``, Y: ``[N, P, B]``; internally ``X_f, R: [N, T*B]``.
        """
        n, t, b = X.shape
        k = len(self.aggregators)
        if self.standardize:
            X = standardize_update(X, self.x_mean, self.x_var, self.ema_momentum, self.training)
            Y = standardize_update(Y, self.y_mean, self.y_var, self.ema_momentum, self.training)
        Xf = X.reshape(n, t * b)
        Yf = Y[:, :, None, :].expand(n, self.n_pairs, k, b).reshape(n, t * b)
        alpha = 2.0 / (b * n)  # dL/dW = 2/(B N) sum_t X_t^T r_t + 2 ridge W
        if self.training and self.dropout > 0:
            grad, term_sums = self._masked_terms(X, Yf.view(n, t, b), alpha)
        else:
            # residual^T = W^T X^T - Y^T for all P*K terms in one product
            resid = torch.addmm(Yf, self.W.t(), Xf, beta=-1)
            term_sums = resid.square().view(n, t, b).sum((0, 2))  # [T]
            grad = torch.addmm(self.W, Xf, resid.t(), beta=2.0 * self.ridge, alpha=alpha)
        self.W.grad = grad
        self.optimizer.step()
        self.W.grad = None
        gram_update_(self.gram, self.n_rows, self.rss, Xf, term_sums)
        return {"aux_loss": float(term_sums.mean()) / (b * n), "n_terms": self.n_terms}

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """A buffer of ``shape`` kept across steps (not state): the masked step's
        ``[t, N, N]`` temporaries, reused instead of freshly allocated (and page-faulted)
        every step; ``benchmarks/README.md``, "Speed"."""
        count = math.prod(shape)
        buf = self._scratch_buffers.get(name)
        if buf is None or buf.numel() < count or buf.dtype != dtype or buf.device != self.W.device:
            buf = self._scratch_buffers[name] = torch.empty(
                count, dtype=dtype, device=self.W.device
            )
        return buf[:count].view(shape)

    def _keep_masks(self, t: int, n: int) -> Tensor:
        """``t`` independent dropout masks ``[t, N, N]`` of ``1.0`` (keep) or ``0.0``, in a
        scratch buffer that the next draw overwrites; a kept entry is scaled by
        ``keep_scale(dropout)``."""
        count = t * n * n
        words = self._scratch("mask_words", ((count + 3) // 4,), torch.int64)
        return draw_keep_mask(self.dropout, self._scratch("keep", (t, n, n), self.W.dtype), words)

    def _masked_terms(self, X: Tensor, Y: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
        """Loss gradient (ridge term included) and per-term residual sums with an
        independent dropout mask on
        ``W`` for every term ``t`` (the reference's semantics: one mask shared by all terms
        multiplies W's gradient noise by about ``sqrt(T)``).

        Terms go through batched products in chunks of at most ``_MASK_CHUNK`` mask
        entries, so memory stays ``O(N^2)`` at large ``N``. The masks are 0/1: ``W`` is
        scaled by ``1 / keep`` once, and the gradient's ``1 / keep`` folds into ``alpha``.

        Shapes:
            X, Y: ``[N, T, B]`` -> gradient ``[N, N]``, term sums ``[T]``.
        """
        n, t, b = X.shape
        W = self.W.detach()
        scale = keep_scale(self.dropout)
        W_kept = W * scale
        grad = W.mul(2.0 * self.ridge)
        term_sums = X.new_empty(t)
        step = max(1, _MASK_CHUNK // (n * n))
        for lo in range(0, t, step):  # a loop over chunks of terms, never nodes
            hi = min(lo + step, t)
            keep = self._keep_masks(hi - lo, n)  # [t', N, N]
            square = self._scratch("square", (hi - lo, n, n), W.dtype)  # W o M_t, then dL/dW_t
            Xt = X[:, lo:hi].permute(1, 0, 2)  # [t', N, B]
            # residual_t^T = (W o M_t)^T X_t^T - Y_t^T
            torch.mul(W_kept, keep, out=square)
            resid = torch.baddbmm(
                Y[:, lo:hi].permute(1, 0, 2),
                square.transpose(1, 2),
                Xt,
                beta=-1,
                out=self._scratch("resid", (hi - lo, n, b), W.dtype),
            )
            term_sums[lo:hi] = resid.square().sum((1, 2))
            torch.bmm(Xt, resid.transpose(1, 2), out=square)
            masked = square.mul_(keep)
            # a chunk of one term (each one from about 1,450 nodes up) adds it as is: sum(0)
            # would copy N^2 floats
            grad.add_(masked[0] if hi == lo + 1 else masked.sum(0), alpha=alpha * scale)
        return grad, term_sums

    # ----------------------------------------------------------------------- scoring
    def score_matrix(self) -> Tensor:
        """Edge scores ``[N, N]`` from ``W`` according to ``score_mode``."""
        W = self.W.detach()
        if self.score_mode == "abs":
            return W.abs()
        return W.clamp(min=0) if self.score_mode == "relu" else W.clone()

    def p_values(self) -> np.ndarray:
        """One-sided p-values of ``W_ij > 0`` from the Gram-based standard errors ``[N, N]``."""
        return gram_pvalues(
            self.W.detach(),
            self.gram,
            int(self.n_rows),
            float(self.rss),
            self.ridge,
        )

    def evaluate(self, *, exclude_self: bool = True) -> pd.DataFrame:
        """Every candidate pair with score, graph membership, p- and BH q-value.

        Returns:
            DataFrame sorted by score descending with columns ``src_func, dst_func,
            src_idx, dst_idx, score, has_edge, p_value, q_value``.
        """
        scores = self.score_matrix().cpu().numpy()
        return edge_table(
            scores,
            self.node_names,
            self.in_graph.cpu().numpy(),
            self.p_values(),
            exclude_self=exclude_self,
        )

    def evaluate_against(
        self,
        positive_edges: Iterable[tuple[str, str]],
        *,
        top_k: tuple[int, ...] = (1, 3, 5),
        exclude: Iterable[tuple[str, str]] | None = None,
    ) -> dict[str, float]:
        """Rank held-out ``positive_edges`` against non-edges with the current ``W``.

        Args:
            positive_edges: held-out true edges ``(src, dst)`` by function-node name.
            top_k: cut-offs for ``top@k`` / ``filtered_top@k``.
            exclude: pairs to leave out entirely (e.g. the other held-out split).

        Returns:
            ``auc``, ``mrr``, ``top@k``, ``filtered_mrr``, ``filtered_top@k``,
            ``n_positives``.
        """
        return metrics.named_pair_metrics(
            self.score_matrix().cpu().numpy(),
            self.in_graph.cpu().numpy(),
            self.node_names,
            positive_edges,
            exclude=exclude,
            top_k=top_k,
        )

    @staticmethod
    def evaluate_target_ranking(
        res: pd.DataFrame,
        positive_edges: Iterable[tuple[str, str]],
        score_col: str = "score",
        top_k: tuple[int, ...] = (1, 3, 5),
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """Per-positive target rankings and summary metrics from an edge table."""
        return metrics.edge_table_metrics(res, positive_edges, score_col=score_col, top_k=top_k)

    # ------------------------------------------------------------- checkpointing
    def maybe_save_best(self, metric: float, mode: str = "max") -> bool:
        """Keep a copy of the regressor state when ``metric`` improves; NaN never does."""
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if metric is None or not np.isfinite(metric):
            return False
        best = self.best_metric
        if best is not None and not (metric > best if mode == "max" else metric < best):
            return False
        self.best_metric = float(metric)
        self._best_state = copy.deepcopy(self.state_dict())
        return True

    def load_best(self) -> None:
        """Restore the state saved by the last improving :meth:`maybe_save_best`."""
        if self._best_state is None:
            raise RuntimeError("load_best(): no checkpoint saved yet; call maybe_save_best()")
        self.load_state_dict(self._best_state)

    def extra_repr(self) -> str:
        return (
            f"N={self.n_nodes}, pairs={self.n_pairs}, aggregators={self.aggregators}, "
            f"score_mode={self.score_mode!r}, ridge={self.ridge}, dropout={self.dropout}"
        )


# the regressor's learning rate ends the run at this share of its initial value
LR_FLOOR = 0.05


def regressor_lr_schedule(
    reg: MagnitudeEdgeRegressor, total_steps: int, kind: str = "cosine"
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """Per-step schedule of the regressor's AdamW rate (``None`` for ``'constant'``).

    ``'cosine'``: ``lr * (f + (1 - f) * (1 + cos(pi * step / total_steps)) / 2)`` with
    ``f = LR_FLOOR``. Call ``.step()`` after every ``reg.aux_step()``. Attach it to your
    own loop in the seed's call order the same way.
    """
    if kind not in LR_SCHEDULES:
        raise ValueError(f"kind must be one of {LR_SCHEDULES}, got {kind!r}")
    if kind == "constant":
        return None
    total = max(int(total_steps), 1)

    def factor(step: int) -> float:
        return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    return torch.optim.lr_scheduler.LambdaLR(reg.optimizer, factor)
