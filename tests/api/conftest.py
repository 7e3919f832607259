"""API test fixtures: a TestClient on SQLite with a recording job queue."""

from __future__ import annotations

import pytest

from apihelpers import KEYS, make_client, upload


@pytest.fixture
def queue() -> list[str]:
    return []


@pytest.fixture
def client_settings() -> dict:
    """Settings of ``client``'s app that a test changes (parametrize it)."""
    return {}


@pytest.fixture
def client(tmp_path, queue, client_settings):
    with make_client(tmp_path, queue, **client_settings) as c:
        yield c


@pytest.fixture
def auth_client(tmp_path, queue):
    keys = ",".join(f"{t}:{k}" for t, k in KEYS.items())
    with make_client(tmp_path, queue, api_keys=keys) as c:
        yield c


@pytest.fixture
def graph_id(client, bench) -> str:
    return client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]


@pytest.fixture
def dataset_id(client, graph_id, frame) -> str:
    return upload(client, graph_id, frame.to_csv(index=False).encode()).json()["id"]
