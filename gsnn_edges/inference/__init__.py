"""Edge inference: the online regressor and the post-hoc magnitude-correlation baseline."""

from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor

__all__ = ["MagnitudeEdgeRegressor"]
