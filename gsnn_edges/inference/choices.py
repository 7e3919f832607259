"""The options edge inference implements: the regressor's magnitude aggregators
(:mod:`~gsnn_edges.inference.magnitudes`), score modes and learning-rate schedules
(:mod:`~gsnn_edges.inference.regressor`), and the edge table's scorers
(:mod:`~gsnn_edges.inference.scorers`).

A module of its own, free of torch, so that the job spec (and with it the API process)
can name the choices without importing the model.
"""

from typing import Literal, get_args

Aggregator = Literal["sum", "max", "mean", "l2"]
ScoreMode = Literal["abs", "relu", "signed"]
LrSchedule = Literal["cosine", "constant"]
Scorer = Literal["hybrid", "score_test", "observed_baseline", "magnitude"]

AGGREGATORS: tuple[str, ...] = get_args(Aggregator)
SCORE_MODES: tuple[str, ...] = get_args(ScoreMode)
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
SCORERS: tuple[str, ...] = get_args(Scorer)
