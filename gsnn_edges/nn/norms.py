"""Per-node normalisations in the feature-major layout ``[C, B]``.

Channels of function node ``i`` are rows ``i*channels .. (i+1)*channels-1``, so a
``[C, B]`` activation views as ``[N, channels, B]`` without a copy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gsnn_edges.nn.choices import NORMS


class NodeNorm(nn.Module):
    """Normalise each function node's channel group.

    Args:
        kind: ``'layer'`` (per sample, over the node's channels), ``'rms'`` (RMS over the
            node's channels), ``'batch'`` (per channel, over the batch), ``'groupbatch'``
            (per node, over its channels and the batch) or ``'none'``.
        n_nodes: number of function nodes ``N``.
        channels: channels per node.
        eps: numerical floor of the variance.
        momentum: running-statistics momentum for the batch variants.

    Shapes:
        z: ``[C, B]`` -> ``[C, B]`` with ``C = N * channels``.
    """

    def __init__(
        self, kind: str, n_nodes: int, channels: int, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
        self.kind, self.n_nodes, self.channels = kind, n_nodes, channels
        self.eps, self.momentum = eps, momentum
        c = n_nodes * channels
        self.weight = nn.Parameter(torch.ones(c, 1)) if kind != "none" else None
        self.bias = nn.Parameter(torch.zeros(c, 1)) if kind not in ("none", "rms") else None
        stat_size = {"batch": c, "groupbatch": n_nodes}.get(kind)
        if stat_size is not None:
            self.register_buffer("running_mean", torch.zeros(stat_size))
            self.register_buffer("running_var", torch.ones(stat_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if hasattr(self, "running_mean"):
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, z: Tensor) -> Tensor:
        if self.kind == "none":
            return z
        if self.kind == "batch":
            out = self._batch_stats(z, dims=(1,))
        else:
            g = z.reshape(self.n_nodes, self.channels, -1)
            if self.kind == "layer":
                var, mean = torch.var_mean(g, dim=1, unbiased=False, keepdim=True)
                out = (g - mean) * torch.rsqrt(var + self.eps)
            elif self.kind == "rms":
                out = g * torch.rsqrt(g.pow(2).mean(dim=1, keepdim=True) + self.eps)
            else:  # groupbatch
                out = self._batch_stats(g, dims=(1, 2))
            out = out.reshape(z.shape)
        out = out * self.weight
        return out + self.bias if self.bias is not None else out

    def _batch_stats(self, x: Tensor, dims: tuple[int, ...]) -> Tensor:
        shape = [-1] + [1] * (x.dim() - 1)
        if self.training:
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            with torch.no_grad():
                n = x.numel() // mean.numel()
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.lerp_(mean.flatten(), self.momentum)
                self.running_var.lerp_(unbiased.flatten(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)

    def extra_repr(self) -> str:
        return f"{self.kind}, nodes={self.n_nodes}, channels={self.channels}"
