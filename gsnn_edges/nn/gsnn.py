"""Graph Structured Neural Network (SPEC section 2)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from gsnn_edges.graph import EDGE_TYPES, EdgeType
from gsnn_edges.nn.norms import NodeNorm
from gsnn_edges.nn.resblock import NodeMLP, ResBlock
from gsnn_edges.nn.sparse import SparseLinear, channel_to_edge, edge_to_channel

# per edge type, a [2, E] index (LongTensor or int array), as GSNNGraph and HeteroData hold it
EdgeIndexDict = Mapping[EdgeType, Any]
_IF, _FF, _FO = EDGE_TYPES


def homogeneous_edges(
    edge_index_dict: EdgeIndexDict,
    node_names_dict: Mapping[str, Sequence[str]],
    add_function_self_edges: bool,
) -> tuple[Tensor, Tensor]:
    """Concatenate typed edges into homogeneous ``(src, dst)`` indices.

    Numbering: function nodes ``0..F-1``, inputs ``F..F+I-1``, outputs after them. Edge
    order: input->function, function->function, function->output, then self edges.
    """
    n_f, n_i = len(node_names_dict["function"]), len(node_names_dict["input"])
    empty = torch.empty(2, 0, dtype=torch.long)
    e_if = torch.as_tensor(edge_index_dict.get(_IF, empty), dtype=torch.long)
    e_ff = torch.as_tensor(edge_index_dict.get(_FF, empty), dtype=torch.long)
    e_fo = torch.as_tensor(edge_index_dict.get(_FO, empty), dtype=torch.long)
    src = [e_if[0] + n_f, e_ff[0], e_fo[0]]
    dst = [e_if[1], e_ff[1], e_fo[1] + n_f + n_i]
    if add_function_self_edges:
        src.append(torch.arange(n_f))
        dst.append(torch.arange(n_f))
    return torch.cat(src), torch.cat(dst)


class GSNN(nn.Module):
    """A GSNN whose hidden state lives on the edges of a prior-knowledge graph.

    Args:
        edge_index_dict: typed edges, ``[2, E_type]`` per-type indices (LongTensor or
            int array, as :class:`~gsnn_edges.graph.GSNNGraph` holds them).
        node_names_dict: ``{'input': [...], 'function': [...], 'output': [...]}``.
        channels: hidden channels per function node.
        layers: number of residual blocks (:class:`~gsnn_edges.nn.resblock.ResBlock`,
            whose docstring gives the layer's equations).
        dropout: dropout on hidden channels (default 0).
        nonlin: nonlinearity class (default ``nn.ELU``).
        bias: learn biases in the sparse layers (default True).
        share_layers: all blocks share ``lin_in``/``lin_out`` (norms stay per block;
            default False).
        add_function_self_edges: add an ``i -> i`` edge to every function node (default
            True).
        norm: ``'layer'`` (default), ``'batch'``, ``'groupbatch'``, ``'rms'`` or ``'none'``.
        checkpoint: gradient checkpointing per block (saves memory; incompatible with
            the edge regressor, which needs the cached activations; default False).
        residual: residual edge-state update and ``1/sqrt(layers)`` output scaling
            (default True).
        node_mlp: apply a shared per-node MLP after the nonlinearity (default False).
        node_mlp_hidden: hidden width of that MLP (default ``2 * channels``).

    Shapes:
        x: ``[B, n_inputs]`` -> ``[B, n_outputs]``; edge state ``[E, B]`` internally;
        ``channel_groups``: ``[C]``.
    """

    def __init__(
        self,
        edge_index_dict: EdgeIndexDict,
        node_names_dict: Mapping[str, Sequence[str]],
        channels: int,
        layers: int,
        dropout: float = 0.0,
        nonlin: type[nn.Module] = nn.ELU,
        bias: bool = True,
        share_layers: bool = False,
        add_function_self_edges: bool = True,
        norm: str = "layer",
        checkpoint: bool = False,
        residual: bool = True,
        node_mlp: bool = False,
        node_mlp_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if channels < 1 or layers < 1:
            raise ValueError(f"channels and layers must be >= 1, got {channels} and {layers}")
        self.node_names_dict = {
            k: list(node_names_dict[k]) for k in ("input", "function", "output")
        }
        self.n_function = len(self.node_names_dict["function"])
        self.n_inputs = len(self.node_names_dict["input"])
        self.n_outputs = len(self.node_names_dict["output"])
        self.channels, self.layers, self.norm = channels, layers, norm
        self.share_layers, self.checkpoint, self.residual = share_layers, checkpoint, residual
        self.add_function_self_edges = add_function_self_edges
        src, dst = homogeneous_edges(edge_index_dict, node_names_dict, add_function_self_edges)
        self._register_structure(src, dst)
        self.ResBlocks = nn.ModuleList()
        for i in range(layers):
            block = self._make_block(dropout, nonlin, bias, node_mlp, node_mlp_hidden, i > 0)
            self.ResBlocks.append(block)
        self.reset_parameters()

    def _register_structure(self, src: Tensor, dst: Tensor) -> None:
        n_f, n_i, n_o = self.n_function, self.n_inputs, self.n_outputs
        n_total = n_f + n_i + n_o
        self.register_buffer("edge_src", src, persistent=False)
        self.register_buffer("edge_dst", dst, persistent=False)
        groups = torch.arange(n_f).repeat_interleave(self.channels)
        self.register_buffer("channel_groups", groups, persistent=False)
        kinds = torch.arange(n_total)
        self.register_buffer("input_node_mask", (kinds >= n_f) & (kinds < n_f + n_i), False)
        self.register_buffer("output_node_mask", kinds >= n_f + n_i, persistent=False)
        in_edges = torch.nonzero(self.input_node_mask[src]).flatten()
        self.register_buffer("input_edges", in_edges, persistent=False)
        self.register_buffer("input_edge_source", src[in_edges] - n_f, persistent=False)
        out_edges = torch.nonzero(self.output_node_mask[dst]).flatten()
        out_rows = dst[out_edges] - n_f - n_i
        in_degree = torch.bincount(out_rows, minlength=n_o).clamp(min=1).float()
        # Each output reads the sum of its in-edges divided by sqrt(in_degree).
        self.readout = SparseLinear(
            out_rows, out_edges, (n_o, src.numel()), bias=False, values=in_degree.rsqrt()[out_rows]
        )

    def _make_block(
        self,
        dropout: float,
        nonlin: type[nn.Module],
        bias: bool,
        node_mlp: bool,
        node_mlp_hidden: int | None,
        shared: bool,
    ) -> ResBlock:
        if shared and self.share_layers:
            lin_in, lin_out = self.ResBlocks[0].lin_in, self.ResBlocks[0].lin_out
            mlp = self.ResBlocks[0].node_mlp
        else:
            # Fan-uniform init (SPEC section 2): small enough that residual branches need no
            # extra depth scaling (mean |pre-norm activation| ~0.05 per layer at init).
            lin_in = edge_to_channel(self.edge_dst, self.n_function, self.channels, bias=bias)
            lin_out = channel_to_edge(self.edge_src, self.n_function, self.channels, bias=bias)
            hidden = node_mlp_hidden or 2 * self.channels
            mlp = NodeMLP(self.channels, hidden, nonlin) if node_mlp else None
        norm = NodeNorm(self.norm, self.n_function, self.channels)
        return ResBlock(
            lin_in,
            lin_out,
            norm,
            nonlin=nonlin,
            dropout=dropout,
            residual=self.residual,
            node_mlp=mlp,
        )

    def reset_parameters(self) -> None:
        """Re-initialise every block (layers shared by ``share_layers`` once) and the
        readout."""
        for i, block in enumerate(self.ResBlocks):
            block.reset_parameters(linear=i == 0 or not self.share_layers)
        self.readout.reset_parameters()

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.numel())

    @property
    def _store_activations(self) -> bool:
        return any(block._store_activations for block in self.ResBlocks)

    @_store_activations.setter
    def _store_activations(self, value: bool) -> None:
        for block in self.ResBlocks:
            block._store_activations = bool(value)
            if not value:
                block.clear_activations()

    def edge_state(self, x: Tensor) -> Tensor:
        """Initial edge state: input values on their out-edges, zero elsewhere.

        Shapes:
            x: ``[B, n_inputs]`` -> ``[E, B]``.
        """
        state = x.new_zeros(self.n_edges, x.shape[0])
        return state.index_copy(0, self.input_edges, x.t().index_select(0, self.input_edge_source))

    def forward(
        self,
        x: Tensor,
        edge_mask: Tensor | None = None,
        pre_norm_shift: Callable[[int], Tensor | None] | None = None,
    ) -> Tensor:
        """Predict outputs from inputs.

        Args:
            x: ``[B, n_inputs]``.
            edge_mask: optional ``[E]`` or ``[B, E]`` multiplier applied after each block.
            pre_norm_shift: optional ``shift(l)`` called before block ``l`` runs, returning
                ``None`` or a ``[B, C]`` term added to that block's pre-norm activation
                (how :mod:`gsnn_edges.inference.confirm` adds a candidate edge without
                rebuilding the model; it reads earlier blocks' cached activations).

        Returns:
            ``[B, n_outputs]``.
        """
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"x must have shape [B, {self.n_inputs}], got {list(x.shape)}")
        state = self.edge_state(x)
        mask = None
        if edge_mask is not None:
            mask = edge_mask[:, None] if edge_mask.dim() == 1 else edge_mask.t()
        for layer, block in enumerate(self.ResBlocks):
            shift = pre_norm_shift(layer) if pre_norm_shift is not None else None
            if self.checkpoint and self.training:
                state = torch_checkpoint(block, state, mask, shift, use_reentrant=False)
            else:
                state = block(state, mask, shift)
        if self.residual:
            state = state / math.sqrt(self.layers)
        return self.readout(state).t()

    def extra_repr(self) -> str:
        return (
            f"inputs={self.n_inputs}, function={self.n_function}, outputs={self.n_outputs}, "
            f"edges={self.n_edges}, channels={self.channels}, layers={self.layers}, "
            f"norm={self.norm!r}, share_layers={self.share_layers}"
        )
