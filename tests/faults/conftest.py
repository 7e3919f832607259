"""A production stack per test - `gsnn-edges api` and workers as real processes on a
PostgreSQL and a Redis of their own - so faults can be injected into each part without
touching the servers the rest of the suite (or the machine) uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gsnn_edges.simulate import converging_tier_graph, simulate_frame

from backends import BackendUnavailable, DisposablePostgres, DisposableRedis, pg_bindir
from faultstack import Stack


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[DisposableRedis, DisposablePostgres]]:
    bindir = pg_bindir()
    try:
        redis_server = DisposableRedis()
    except (BackendUnavailable, FileNotFoundError) as exc:
        pytest.skip(f"fault tests start their own Redis: {exc}")
    try:
        if bindir is None:
            pytest.skip("fault tests start their own PostgreSQL: initdb not installed")
        postgres = DisposablePostgres(bindir)
    except BaseException:
        redis_server.stop()
        raise
    yield redis_server, postgres
    postgres.stop()
    redis_server.stop()


@pytest.fixture
def stack(tmp_path, servers) -> Iterator[Stack]:
    stack = Stack(tmp_path, *servers)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def long_inputs() -> tuple[dict, bytes]:
    """The demo's benchmark (50 function nodes) and 2,000 samples, as uploads."""
    bench = converging_tier_graph(25)
    frame = simulate_frame(bench.full, 2000, seed=0)
    return bench.partial.to_json(), frame.to_csv(index=False).encode()
