"""Shared fixtures: small seeded graphs, models, data and throwaway PostgreSQL databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import torch

from gsnn_edges.simulate import converging_tier_graph, simulate_frame

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def throwaway_pg_database(prefix: str = "gsnn_test") -> Iterator[str]:
    """Create a fresh PostgreSQL database on 127.0.0.1:5432; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for one test."""
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_url_module() -> Iterator[str]:
    """A throwaway PostgreSQL database shared by one test module."""
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def bench():
    """SPEC section 6 benchmark graph at width 6 (12 function nodes)."""
    return converging_tier_graph(6)


@pytest.fixture(scope="session")
def frame(bench):
    """300 samples simulated on the training graph of ``bench``."""
    return simulate_frame(bench.partial, 300, seed=0)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def bench4():
    """SPEC section 6 benchmark graph at width 4 (8 function nodes)."""
    return converging_tier_graph(4)


@pytest.fixture(scope="session")
def frame4(bench4):
    """200 samples simulated on the ground-truth graph of ``bench4``."""
    return simulate_frame(bench4.full, 200, seed=0)
