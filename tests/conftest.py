"""Shared fixtures: benchmark graphs and data, Redis and throwaway PostgreSQL databases.

Tests that need Redis or PostgreSQL ask for ``redis_url``, ``pg_url`` or
``pg_url_module``; collection marks them ``services``, and when any such test is
selected the session finds the servers or starts disposable ones (tests/backends.py).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import psycopg
import pytest
import torch
from sqlalchemy import make_url

from gsnn_edges.simulate import converging_tier_graph, simulate_frame

from backends import Backends, BackendUnavailable

SERVICE_FIXTURES = frozenset({"redis_url", "pg_admin_url"})
_BACKENDS = pytest.StashKey[Backends]()


# ----------------------------------------------------------------- session set-up
@pytest.fixture(scope="session", autouse=True)
def _no_developer_settings() -> Iterator[None]:
    """Settings built in process see no ``GSNN_EDGES_*`` of the developer's shell."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("GSNN_EDGES_")]:
            mp.delenv(name)
        yield


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reaches Redis or PostgreSQL through a fixture is a services test."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find or start the servers once, before any test runs, if a selected test needs them."""
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("services") for item in session.items):
        return
    backends = Backends()
    session.config.add_cleanup(backends.stop)
    try:
        backends.ensure()
    except BackendUnavailable as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    session.config.stash[_BACKENDS] = backends
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(backends.describe())


def _backends(request: pytest.FixtureRequest) -> Backends:
    try:
        return request.config.stash[_BACKENDS]
    except KeyError:
        pytest.fail("Redis/PostgreSQL were not set up for this session")


# ----------------------------------------------------------------- Redis, PostgreSQL
@pytest.fixture(scope="session")
def redis_url(request) -> str:
    """Base URL of the Redis server (append ``/<db>``)."""
    return _backends(request).redis_url


@pytest.fixture(scope="session")
def pg_admin_url(request) -> str:
    """A PostgreSQL connection allowed to create and drop databases."""
    return _backends(request).pg_url


@contextmanager
def throwaway_pg_database(admin_url: str, prefix: str = "gsnn_test") -> Iterator[str]:
    """Create a fresh database on the server of ``admin_url``; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    # the admin URL with the new database: its password, socket or options kept
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin_url) -> Iterator[str]:
    """A throwaway PostgreSQL database for one test."""
    with throwaway_pg_database(pg_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def pg_url_module(pg_admin_url) -> Iterator[str]:
    """A throwaway PostgreSQL database shared by one test module."""
    with throwaway_pg_database(pg_admin_url) as url:
        yield url


# ----------------------------------------------------------------- benchmark data
class Benchmarks:
    """SPEC section 6 benchmark graphs and simulated data, each built once per session."""

    @functools.cache  # noqa: B019 - one instance per session, kept for the session
    def graph(self, width: int):
        """``converging_tier_graph(width)``: ``2 * width`` function nodes."""
        return converging_tier_graph(width)

    @functools.cache  # noqa: B019
    def frame(
        self, width: int, n_samples: int, truth: str = "partial", seed: int = 0
    ) -> pd.DataFrame:
        """``n_samples`` rows simulated on the ``truth`` (``partial``/``full``) graph.

        Shared by every test that asks for the same arguments: copy before changing it.
        """
        return simulate_frame(getattr(self.graph(width), truth), n_samples, seed=seed)


@pytest.fixture(scope="session")
def benchmarks() -> Benchmarks:
    """The factory every benchmark fixture and test draws its graphs and data from."""
    return Benchmarks()


@pytest.fixture(scope="session")
def bench(benchmarks):
    """The default benchmark: width 6 (12 function nodes); a module may override it."""
    return benchmarks.graph(6)


@pytest.fixture(scope="session")
def frame(benchmarks) -> pd.DataFrame:
    """300 samples simulated on the training graph of the default ``bench``."""
    return benchmarks.frame(6, 300)
