"""gsnn-edges: discover missing function -> function edges with Graph Structured Neural
Networks and an online magnitude regressor."""

from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor
from gsnn_edges.nn.gsnn import GSNN

__version__ = "0.1.0"

__all__ = ["GSNN", "MagnitudeEdgeRegressor", "__version__"]
