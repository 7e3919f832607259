"""GSNN model, residual block, sparse edge <-> channel layers and per-node norms.

The exports are resolved lazily (PEP 562): importing :mod:`gsnn_edges.nn.choices` (from
the job spec, in the API process) must not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "GSNN": "gsnn_edges.nn.gsnn",
    "homogeneous_edges": "gsnn_edges.nn.gsnn",
    "NodeNorm": "gsnn_edges.nn.norms",
    "NodeMLP": "gsnn_edges.nn.resblock",
    "ResBlock": "gsnn_edges.nn.resblock",
    "SparseLinear": "gsnn_edges.nn.sparse",
    "channel_to_edge": "gsnn_edges.nn.sparse",
    "edge_to_channel": "gsnn_edges.nn.sparse",
}

__all__ = [
    "GSNN",
    "NodeMLP",
    "NodeNorm",
    "ResBlock",
    "SparseLinear",
    "channel_to_edge",
    "edge_to_channel",
    "homogeneous_edges",
]

if TYPE_CHECKING:
    from gsnn_edges.nn.gsnn import GSNN, homogeneous_edges
    from gsnn_edges.nn.norms import NodeNorm
    from gsnn_edges.nn.resblock import NodeMLP, ResBlock
    from gsnn_edges.nn.sparse import SparseLinear, channel_to_edge, edge_to_channel


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gsnn_edges.nn' has no attribute {name!r}")
