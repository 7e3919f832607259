"""gsnn-edges: discover missing function -> function edges with Graph Structured Neural
Networks and an online magnitude regressor.

``GSNN`` and ``MagnitudeEdgeRegressor`` are resolved lazily (PEP 562) so that importing
the package - e.g. from the API process or a Celery worker's parent - does not import
torch; a forked worker then never inherits torch (or CUDA) state.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "GSNN": "gsnn_edges.nn.gsnn",
    "MagnitudeEdgeRegressor": "gsnn_edges.inference.regressor",
    "MagnitudeEdgeInferer": "gsnn_edges.inference.inferer",
}

__all__ = ["GSNN", "MagnitudeEdgeInferer", "MagnitudeEdgeRegressor", "__version__"]

if TYPE_CHECKING:
    from gsnn_edges.inference.inferer import MagnitudeEdgeInferer
    from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor
    from gsnn_edges.nn.gsnn import GSNN


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gsnn_edges' has no attribute {name!r}")
