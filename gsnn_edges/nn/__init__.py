"""GSNN model, residual block, sparse edge <-> channel layers and per-node norms."""

from gsnn_edges.nn.gsnn import GSNN, homogeneous_edges
from gsnn_edges.nn.norms import NodeNorm
from gsnn_edges.nn.resblock import NodeMLP, ResBlock
from gsnn_edges.nn.sparse import SparseLinear, channel_to_edge, edge_to_channel

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
