"""Shared fixtures: small seeded graphs and models."""

from __future__ import annotations

import pytest
import torch

from gsnn_edges.simulate import converging_tier_graph


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def bench4():
    """SPEC section 6 benchmark graph at width 4 (8 function nodes)."""
    return converging_tier_graph(4)


@pytest.fixture
def small_model(bench4):
    from gsnn_edges.nn import GSNN

    g = bench4.partial
    return GSNN(g.edge_index_dict, g.node_names_dict, channels=3, layers=3, norm="none")
