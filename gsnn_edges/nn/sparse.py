"""Sparse linear maps between edge states and function-node channels.

A GSNN layer is a pair of very sparse linear maps (edges -> channels and channels ->
edges). We store each as a CSR matrix whose non-zero *pattern* is fixed by the graph and
whose *values* are the learned parameters, and apply it to a feature-major activation
``[n_cols, B]``. The CSR product shares one index structure across the whole batch: no
index tensor is ever replicated per sample. Why CSR (against gather + index_add and a
COO ``torch.sparse.mm``): ``benchmarks/README.md``, "Implementation choices".
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """A CSR matrix view (no copy, no invariant check). torch flags CSR support as beta;
    the ops used here (CSR @ dense, sampled addmm) are stable, so that one warning is
    silenced here, around the constructor, not in the importing program's filters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _crow_indices(rows: Tensor, n_rows: int) -> Tensor:
    counts = torch.bincount(rows, minlength=n_rows)
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(counts, 0)
    return crow


class _CSRMatMul(torch.autograd.Function):
    """``A @ x`` for a CSR matrix ``A`` whose values carry gradients.

    Backward: ``dx = A^T @ g`` (a second CSR product with the transposed pattern) and
    ``dA_k = <g[row_k], x[col_k]>`` for every stored entry ``k`` (a sampled dense-dense
    product over the batch).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, values: Tensor, x: Tensor, layer: SparseLinear
    ) -> Tensor:
        ctx.layer = layer
        ctx.save_for_backward(values, x)
        a = _csr(layer.crow, layer.col, values, layer.shape)
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        values, x = ctx.saved_tensors
        layer: SparseLinear = ctx.layer
        grad = grad.contiguous()
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            a_t = _csr(layer.crow_t, layer.col_t, values[layer.perm_t], layer.shape[::-1])
            grad_x = torch.sparse.mm(a_t, grad)
        if ctx.needs_input_grad[0]:
            # sampled dense-dense product (SDDMM): (grad @ x^T) at the stored entries only,
            # faster than gathering both operands per entry (benchmarks/README.md)
            pattern = _csr(layer.crow, layer.col, layer.zero_values, layer.shape)
            grad_values = torch.sparse.sampled_addmm(pattern, grad, x.t(), beta=0.0).values()
        return grad_values, grad_x, None


class SparseLinear(nn.Module):
    """``y = A x + b`` with a fixed sparsity pattern and learned non-zero values.

    Args:
        rows: row (output) index of each non-zero, LongTensor ``[nnz]``.
        cols: column (input) index of each non-zero, LongTensor ``[nnz]``.
        shape: ``(n_rows, n_cols)``.
        bias: learn one bias per row (``bias_mask`` zeroes rows that must stay bias-free).
        fan: per-non-zero ``fan_in * fan_out`` of the block it belongs to; entries start
            at ``U(-1, 1) / sqrt(fan)`` (the reference initialisation, SPEC section 2).
        bias_mask: optional bool ``[n_rows]``; rows where it is False get no bias.
        values: fixed (non-learned) values ``[nnz]``; stored as a buffer, never reset.

    Shapes:
        x: ``[n_cols, B]`` (feature-major) -> ``[n_rows, B]``.
    """

    def __init__(
        self,
        rows: Tensor,
        cols: Tensor,
        shape: tuple[int, int],
        *,
        bias: bool = True,
        fan: Tensor | None = None,
        bias_mask: Tensor | None = None,
        values: Tensor | None = None,
    ) -> None:
        super().__init__()
        n_rows, n_cols = shape
        if rows.numel() and (int(rows.max()) >= n_rows or int(cols.max()) >= n_cols):
            raise ValueError(f"SparseLinear: index out of range for shape {shape}")
        self.shape = (int(n_rows), int(n_cols))
        order = torch.argsort(rows * n_cols + cols)
        rows, cols = rows[order], cols[order]
        self.register_buffer("row", rows, persistent=False)
        self.register_buffer("col", cols, persistent=False)
        self.register_buffer("crow", _crow_indices(rows, n_rows), persistent=False)
        order_t = torch.argsort(cols * n_rows + rows)
        self.register_buffer("perm_t", order_t, persistent=False)
        self.register_buffer("col_t", rows[order_t], persistent=False)
        self.register_buffer("crow_t", _crow_indices(cols, n_cols), persistent=False)
        # read-only values of the SDDMM output pattern in backward (beta=0 ignores them)
        self.register_buffer("zero_values", torch.zeros(rows.numel()), persistent=False)
        fan = fan[order].float() if fan is not None else torch.ones(rows.numel())
        self.register_buffer("init_bound", fan.clamp(min=1).rsqrt(), persistent=False)
        self.fixed = values is not None
        if self.fixed:
            self.register_buffer("weight", values[order].float(), persistent=False)
        else:
            self.weight = nn.Parameter(torch.empty(rows.numel()))
        self.bias = nn.Parameter(torch.empty(n_rows)) if bias else None
        mask = bias_mask.float()[:, None] if bias_mask is not None else None
        self.register_buffer("bias_mask", mask, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if not self.fixed:
                self.weight.uniform_(-1.0, 1.0).mul_(self.init_bound)
            if self.bias is not None:
                self.bias.zero_()

    @property
    def nnz(self) -> int:
        return self.weight.numel()

    def forward(self, x: Tensor) -> Tensor:
        out = _CSRMatMul.apply(self.weight, x.contiguous(), self)
        if self.bias is not None:
            bias = self.bias[:, None]
            out = out + (bias * self.bias_mask if self.bias_mask is not None else bias)
        return out

    def to_dense(self) -> Tensor:
        """Dense ``[n_rows, n_cols]`` copy of ``A`` (for tests and debugging)."""
        dense = torch.zeros(self.shape, dtype=self.weight.dtype, device=self.weight.device)
        dense[self.row, self.col] = self.weight.detach()
        return dense

    def extra_repr(self) -> str:
        return f"shape={self.shape}, nnz={self.nnz}, bias={self.bias is not None}"


def edge_to_channel(edge_dst: Tensor, n_function: int, channels: int, **kwargs) -> SparseLinear:
    """``lin_in``: each edge whose destination is a function node feeds that node's channels.

    The block of node ``j`` maps its ``d_in(j)`` in-edges to its ``channels`` channels, so
    an entry starts at ``U(-1, 1) / sqrt(d_in(j) * channels)`` (SPEC section 2).

    Args:
        edge_dst: homogeneous destination of every edge ``[E]`` (function nodes are
            ``0..n_function-1``).
    """
    edges = torch.nonzero(edge_dst < n_function).flatten()
    ch = torch.arange(channels, device=edge_dst.device)
    rows = (edge_dst[edges, None] * channels + ch).flatten()
    cols = edges.repeat_interleave(channels)
    in_degree = torch.bincount(edge_dst[edges], minlength=n_function)
    fan = in_degree[edge_dst[edges]].repeat_interleave(channels) * channels
    shape = (n_function * channels, edge_dst.numel())
    return SparseLinear(rows, cols, shape, fan=fan, **kwargs)


def channel_to_edge(edge_src: Tensor, n_function: int, channels: int, **kwargs) -> SparseLinear:
    """``lin_out``: a function node's channels write only onto its out-edges.

    The block of node ``i`` maps its ``channels`` channels to its ``d_out(i)`` out-edges:
    entries start at ``U(-1, 1) / sqrt(channels * d_out(i))`` (SPEC section 2).
    """
    edges = torch.nonzero(edge_src < n_function).flatten()
    ch = torch.arange(channels, device=edge_src.device)
    rows = edges.repeat_interleave(channels)
    cols = (edge_src[edges, None] * channels + ch).flatten()
    out_degree = torch.bincount(edge_src[edges], minlength=n_function)
    fan = out_degree[edge_src[edges]].repeat_interleave(channels) * channels
    shape = (edge_src.numel(), n_function * channels)
    bias_mask = edge_src < n_function
    return SparseLinear(rows, cols, shape, fan=fan, bias_mask=bias_mask, **kwargs)
