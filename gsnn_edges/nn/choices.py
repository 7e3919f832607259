"""The normalisations :class:`~gsnn_edges.nn.norms.NodeNorm` implements.

A module of its own, free of torch, so that the job spec (and with it the API process)
can name the choices without importing the model.
"""

from typing import Literal, get_args

Norm = Literal["layer", "batch", "groupbatch", "rms", "none"]
NORMS: tuple[str, ...] = get_args(Norm)
