"""One GSNN layer: edges -> channels -> norm/nonlinearity -> edges, plus a residual."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gsnn_edges.nn.dropout import Dropout
from gsnn_edges.nn.norms import NodeNorm
from gsnn_edges.nn.sparse import SparseLinear


class NodeMLP(nn.Module):
    """A small MLP shared by all function nodes, applied to each node's channel vector.

    Args:
        channels: channels per function node (the MLP's input and output width).
        hidden: hidden width.
        nonlin: nonlinearity class between the two linear layers.

    Shapes:
        h: ``[C, B]`` viewed as ``[N, channels, B]`` -> ``[C, B]``.
    """

    def __init__(self, channels: int, hidden: int, nonlin: type[nn.Module]) -> None:
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(nn.Linear(channels, hidden), nonlin(), nn.Linear(hidden, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        n_batch = h.shape[-1]
        g = h.reshape(-1, self.channels, n_batch).transpose(1, 2)  # [N, B, channels]
        return self.net(g).transpose(1, 2).reshape(h.shape)


class ResBlock(nn.Module):
    r"""A GSNN residual block (SPEC section 2).

    With the edge state :math:`x \in \mathbb{R}^{E}` (per sample), the channels
    :math:`c \in \mathrm{ch}(j)` of function node :math:`j` and the edges
    :math:`\mathrm{in}(j)` into / :math:`\mathrm{out}(j)` out of it:

    .. math::
        z_c &= \sum_{e \in \mathrm{in}(j)} A^{in}_{c e}\, x_e + b^{in}_c
            \qquad (c \in \mathrm{ch}(j)) \\
        h &= \mathrm{mlp}\big(\mathrm{dropout}(\sigma(\mathrm{norm}(z)))\big) \\
        x'_e &= \Big(\sum_{c \in \mathrm{ch}(\mathrm{src}(e))} A^{out}_{e c}\, h_c
            + b^{out}_e + \mathrm{relu}(\alpha)\, x_e\Big)\, m_e

    ``A^in`` (``lin_in``) and ``A^out`` (``lin_out``) are sparse: a node's channels only
    read its in-edges and only write its out-edges, so information moves along the graph
    one edge per block. ``z`` (plus ``z_shift`` when given) is the pre-norm activation,
    ``alpha`` the residual weight, ``m`` an optional edge mask.
    With ``_store_activations`` set, ``z`` and ``h`` are kept as
    ``_last_pre_norm_activation`` / ``_last_activation`` (``[B, C]`` views sharing storage
    with the feature-major tensors, so gradients retained on them are exact; with a
    ``z_shift``, ``z`` is the shifted copy).

    Args:
        lin_in: edges -> channels (:func:`~gsnn_edges.nn.sparse.edge_to_channel`).
        lin_out: channels -> edges (:func:`~gsnn_edges.nn.sparse.channel_to_edge`).
        norm: per-node normalisation of ``z``.
        nonlin: nonlinearity class (default ``nn.ELU``).
        dropout: dropout probability on the channels (default 0).
        residual: add ``relu(alpha) * x`` (default True; ``alpha`` starts at 1).
        node_mlp: optional per-node MLP after the nonlinearity (default None).

    Shapes:
        x: ``[E, B]`` (feature-major edge state) -> ``[E, B]``; edge_mask: ``[E, 1]`` or
        ``[E, B]``; z_shift: ``[B, C]``.
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
        self.dropout = Dropout(dropout)
        self.residual = residual
        self.node_mlp = node_mlp
        self.residual_weight = nn.Parameter(torch.ones(())) if residual else None
        self._store_activations = False
        self._last_pre_norm_activation: Tensor | None = None
        self._last_activation: Tensor | None = None
        # lin_in, lin_out and the node MLP arrive initialised by their own constructors
        # (and may be shared between blocks): construction sets what the block adds
        self.reset_parameters(linear=False)

    def reset_parameters(self, *, linear: bool = True) -> None:
        """Re-initialise the residual weight (to 1) and the norm; with ``linear`` also
        ``lin_in``, ``lin_out`` and the node MLP. A ``share_layers`` GSNN passes
        ``linear=False`` to every block but the first, so the shared layers reset once."""
        if self.residual_weight is not None:
            nn.init.ones_(self.residual_weight)
        self.norm.reset_parameters()
        if linear:
            self.lin_in.reset_parameters()
            self.lin_out.reset_parameters()
            if self.node_mlp is not None:
                self.node_mlp.reset_parameters()

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
