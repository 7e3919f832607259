"""Dropout masks drawn as 16-bit uniforms, four per 64-bit random word.

On CPU, torch draws a Bernoulli variate (``bernoulli_``, behind ``nn.Dropout``) in about
9 ns and a float uniform in about 3 ns; a 16-bit lane of a 64-bit random word costs about
1 ns. The GSNN's channel dropout was half of a default training epoch and the regressor's
per-term masks on ``W`` most of its step (``benchmarks/README.md``, "Speed"). The keep
probability is resolved to ``1 / 65536``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LANES = 65536  # values of a 16-bit lane


def keep_cut(rate: float) -> int:
    """Lanes (of 65536) that keep their entry at dropout ``rate``; keep = ``cut / 65536``."""
    cut = round((1.0 - rate) * _LANES)
    if not 0 < cut <= _LANES:
        raise ValueError(f"dropout rate must be in [0, 1 - 1/{_LANES}], got {rate}")
    return cut


def keep_scale(rate: float) -> float:
    """One over the resolved keep probability: what a kept entry is multiplied by."""
    return _LANES / keep_cut(rate)


def draw_keep_mask(rate: float, out: Tensor, words: Tensor | None = None) -> Tensor:
    """Fill the float tensor ``out`` with independent ``1.0`` (keep) / ``0.0`` (drop) entries.

    Args:
        rate: dropout probability.
        out: float tensor to fill; its shape is the mask's.
        words: optional ``int64`` scratch of at least ``ceil(out.numel() / 4)`` entries
            (a caller drawing every step reuses it instead of allocating).
    """
    count = out.numel()
    if words is None:
        words = torch.empty((count + 3) // 4, dtype=torch.int64, device=out.device)
    words = words[: (count + 3) // 4]
    words.random_(-(2**63), 2**63 - 1)  # the bare random_() leaves the top bit 0
    lanes = words.view(torch.int16)[:count].view(out.shape)
    # comparing straight into floats: on CPU a bool mask costs several times more to cast
    # or to multiply by than a float one
    return torch.lt(lanes, keep_cut(rate) - _LANES // 2, out=out)


class Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``, with its CPU masks from :func:`draw_keep_mask`
    (2-6x faster per call there); on CUDA, torch's fused dropout kernel.

    Args:
        p: dropout probability.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        keep_cut(p)  # validates: 0 <= p <= 1 - 1/65536
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.is_cuda:
            return F.dropout(x, self.p, training=True)
        mask = draw_keep_mask(self.p, torch.empty_like(x)).mul_(keep_scale(self.p))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
