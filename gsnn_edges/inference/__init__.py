"""Edge inference: the online regressor, the score test, the observed-node baseline, the
post-hoc inferer and confirmation by refitting.

The exports are resolved lazily (PEP 562): importing
:mod:`gsnn_edges.inference.choices` (from the job spec, in the API process) must not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {"MagnitudeEdgeRegressor": "gsnn_edges.inference.regressor"}

__all__ = ["MagnitudeEdgeRegressor"]

if TYPE_CHECKING:
    from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gsnn_edges.inference' has no attribute {name!r}")
