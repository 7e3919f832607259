"""Helpers shared by the API tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from proctools import make_app

PROBLEM = "application/problem+json"
KEYS = {"a": "key-a", "b": "key-b"}


def bearer(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def assert_problem(resp, status: int, detail_pattern: str) -> dict:
    """Status, problem+json content type and a detail matching ``detail_pattern``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert re.search(detail_pattern, body["detail"]), body["detail"]
    return body


def upload(client, graph_id, data: bytes, name="d.csv", headers=None):
    return client.post(
        "/v1/datasets",
        data={"graph_id": graph_id},
        files={"file": (name, data, "text/csv")},
        headers=headers or {},
    )


def job_body(graph_id, dataset_id, **blocks) -> dict:
    body = {
        "graph_id": graph_id,
        "dataset_id": dataset_id,
        "model": {"channels": 4, "layers": 3},
        "training": {"epochs": 2},
    }
    body.update(blocks)
    return body


# Without API keys the app serves loopback callers with a loopback Host only.
LOCAL = {"base_url": "http://127.0.0.1", "client": ("127.0.0.1", 50000)}


def make_client(tmp_path, queue, **overrides) -> TestClient:
    return TestClient(make_app(tmp_path / "data", queue.append, **overrides), **LOCAL)
