"""One GSNN layer: edges -> channels -> norm/nonlinearity -> edges, plus a residual."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gsnn_edges.nn.norms import NodeNorm
from gsnn_edges.nn.sparse import SparseLinear


class NodeMLP(nn.Module):
    """A small MLP shared by all function nodes, applied to each node's channel vector.

    Shapes:
        h: ``[C, B]`` viewed as ``[N, channels, B]`` -> ``[C, B]``.
    """

    def __init__(self, channels: int, hidden: int, nonlin: type[nn.Module]) -> None:
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(nn.Linear(channels, hidden), nonlin(), nn.Linear(hidden, channels))

    def forward(self, h: Tensor) -> Tensor:
        n_batch = h.shape[-1]
        g = h.reshape(-1, self.channels, n_batch).transpose(1, 2)  # [N, B, channels]
        return self.net(g).transpose(1, 2).reshape(h.shape)


class ResBlock(nn.Module):
    """A GSNN residual block (SPEC section 2).

    ``z = lin_in(x)`` (plus ``z_shift`` when given) is the pre-norm activation;
    ``h = mlp(dropout(nonlin(norm(z))))``; the new edge state is
    ``lin_out(h) + relu(residual_weight) * x``, optionally multiplied by an edge mask.
    With ``_store_activations`` set, ``z`` and ``h`` are kept as
    ``_last_pre_norm_activation`` / ``_last_activation`` (``[B, C]`` views sharing storage
    with the feature-major tensors, so gradients retained on them are exact; with a
    ``z_shift``, ``z`` is the shifted copy).

    Shapes:
        x: ``[E, B]`` (feature-major edge state) -> ``[E, B]``.
    """

    def __init__(
        self,
        lin_in: SparseLinear,
        lin_out: SparseLinear,
        norm: NodeNorm,
        *,
        nonlin: type[nn.Module] = nn.ELU,
        dropout: float = 0.0,
        residual: bool = True,
        node_mlp: NodeMLP | None = None,
    ) -> None:
        super().__init__()
        self.lin_in, self.lin_out, self.norm = lin_in, lin_out, norm
        self.nonlin = nonlin()
        self.dropout = nn.Dropout(dropout)
        self.residual = residual
        self.node_mlp = node_mlp
        self.residual_weight = nn.Parameter(torch.ones(())) if residual else None
        self._store_activations = False
        self._last_pre_norm_activation: Tensor | None = None
        self._last_activation: Tensor | None = None

    def reset_parameters(self) -> None:
        if self.residual_weight is not None:
            nn.init.ones_(self.residual_weight)

    def clear_activations(self) -> None:
        self._last_pre_norm_activation = None
        self._last_activation = None

    def forward(
        self, x: Tensor, edge_mask: Tensor | None = None, z_shift: Tensor | None = None
    ) -> Tensor:
        z = self.lin_in(x).t()  # [B, C] view of the [C, B] product
        if z_shift is not None:  # an added input to the pre-norm activation, [B, C]
            z = z + z_shift
        h = self.dropout(self.nonlin(self.norm(z.t())))
        if self.node_mlp is not None:
            h = self.node_mlp(h)
        h = h.t()
        if self._store_activations:
            self._last_pre_norm_activation = z
            self._last_activation = h
        out = self.lin_out(h.t())
        if self.residual_weight is not None:
            out = out + torch.relu(self.residual_weight) * x
        if edge_mask is not None:
            out = out * edge_mask
        return out

    def extra_repr(self) -> str:
        return f"residual={self.residual}"
