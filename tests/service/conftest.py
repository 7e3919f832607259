"""Fixtures for service-layer tests: settings in a temp dir, a context, tiny data."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.settings import Settings
from gsnn_edges.simulate import converging_tier_graph, simulate_frame

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=None,
        broker_url=None,
        api_keys="",
        stale_after_s=5,
        max_attempts=2,
    )


@pytest.fixture
def queue() -> list[str]:
    return []


@pytest.fixture
def ctx(settings, queue) -> ServiceContext:
    ctx = ServiceContext.from_settings(settings, enqueue=queue.append)
    yield ctx
    ctx.db.dispose()


@pytest.fixture(scope="session")
def bench():
    return converging_tier_graph(6)


@pytest.fixture(scope="session")
def frame(bench):
    return simulate_frame(bench.partial, 300, seed=0)


@pytest.fixture
def pg_url():
    """A throwaway PostgreSQL database, dropped afterwards."""
    name = f"gsnn_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
