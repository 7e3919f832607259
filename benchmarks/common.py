"""Configurations and graph families shared by the recovery benchmarks."""

from __future__ import annotations

import json

from gsnn_edges.simulate import converging_tier_graph, random_layered_dag
from gsnn_edges.spec import TrainSpec

# The configuration the public reference reports on (SPEC section 6).
REFERENCE = {
    "model": {"channels": 8, "layers": 6, "norm": "none", "dropout": 0.2, "node_mlp": False},
    "regressor": {
        "aggregators": ["sum", "max"],
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "ridge": 1e-2,
        "dropout": 0.2,
        "lr_schedule": "constant",
    },
    "training": {"epochs": 30, "batch_size": 64, "lr": 1e-4, "test_fraction": 0.2},
}

# Named configurations: the reference one and the library defaults (``None``).
CONFIGS = {"reference": REFERENCE, "defaults": None}

# Graph families, each a function of the seed.
FAMILIES = {
    "benchmark": lambda seed: converging_tier_graph(25),
    "layered_many_obs": lambda seed: random_layered_dag(25, 5, 10, 10, edge_prob=0.1, seed=seed),
    "layered_few_obs": lambda seed: random_layered_dag(25, 5, 10, 3, edge_prob=0.1, seed=seed),
}


def make_spec(base: dict | None, patch: dict, seed: int) -> TrainSpec:
    """``base`` (None = the library defaults) with ``patch`` applied, for one seed on CPU."""
    d = json.loads(json.dumps(base or TrainSpec().to_dict()))
    d.pop("validation", None)
    for block, values in patch.items():
        d.setdefault(block, {}).update(values)
    spec = TrainSpec.from_dict(d)
    spec.training.seed, spec.training.device = seed, "cpu"
    return spec
