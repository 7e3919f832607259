"""POST/GET /v1/graphs: creation, bad graphs as problem+json, nothing stored on error."""

from __future__ import annotations

import pytest

from apihelpers import assert_problem

GOOD = {
    "nodes": {"input": ["i1"], "function": ["f1", "f2"], "output": ["o1"]},
    "edges": [["i1", "f1"], ["f1", "f2"], ["f2", "o1"]],
}


def test_graphs_create_returns_counts_and_location(client) -> None:
    resp = client.post("/v1/graphs", json={"name": "tiny", **GOOD})
    assert resp.status_code == 201
    body = resp.json()
    assert resp.headers["location"] == f"/v1/graphs/{body['id']}"
    assert body["counts"] == {
        "input": 1,
        "function": 2,
        "output": 1,
        "edges": {"input_function": 1, "function_function": 1, "function_output": 1},
    }
    got = client.get(f"/v1/graphs/{body['id']}", params={"include": "content"}).json()
    assert got["content"]["edges"] == GOOD["edges"]
    assert client.get("/v1/graphs").json()["total"] == 1


def _with(nodes=None, edges=None) -> dict:
    return {"nodes": {**GOOD["nodes"], **(nodes or {})}, "edges": edges or GOOD["edges"]}


@pytest.mark.parametrize(
    ("body", "status", "pattern"),
    [
        (_with(edges=[["i1", "f1"], ["f1", "nope"]]), 422, "unknown endpoint 'nope'"),
        (_with(edges=[["i1", "o1"]]), 422, "input -> output"),
        (_with(nodes={"output": ["f1"]}), 422, "f1"),
        (_with(nodes={"function": []}), 422, "nodes.function"),
        ({"nodes": GOOD["nodes"]}, 422, "edges"),
    ],
    ids=["unknown_node", "input_to_output", "duplicate_name", "empty_function", "no_edges"],
)
def test_graphs_bad_graph_is_problem_and_not_stored(client, body, status, pattern) -> None:
    body = assert_problem(client.post("/v1/graphs", json=body), status, pattern)
    assert body["errors"]
    assert client.get("/v1/graphs").json()["total"] == 0


def test_graphs_malformed_json_is_400(client) -> None:
    resp = client.post(
        "/v1/graphs", content=b'{"nodes": ', headers={"content-type": "application/json"}
    )
    assert_problem(resp, 400, "not valid JSON")
    assert client.get("/v1/graphs").json()["total"] == 0


def test_graphs_unknown_id_is_404(client) -> None:
    assert_problem(client.get("/v1/graphs/gr_missing"), 404, "gr_missing")


def test_graphs_pagination_limits(client) -> None:
    for _ in range(3):
        client.post("/v1/graphs", json=GOOD)
    page = client.get("/v1/graphs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert_problem(client.get("/v1/graphs", params={"limit": 1001}), 422, "limit")


def test_graphs_offset_past_the_database_integer_range_is_422(client) -> None:
    """Found by fuzzing: ``offset=2**63`` overflowed SQLite's INTEGER (a 500)."""
    assert_problem(client.get("/v1/graphs", params={"offset": 2**63}), 422, "offset.*2147483647")
    assert client.get("/v1/graphs", params={"offset": 2**31 - 1}).json()["items"] == []


def test_graphs_unsupported_method_is_405_allowing_every_served_method(client) -> None:
    """Found by fuzzing: Starlette's 405 named only the first route of the path
    (``Allow: POST`` on /v1/graphs, which serves GET too)."""
    resp = client.request("OPTIONS", "/v1/graphs")
    assert_problem(resp, 405, "OPTIONS is not allowed on /v1/graphs; allowed: GET, POST")
    assert resp.headers["allow"] == "GET, POST"
    assert client.delete("/v1/graphs/gr_x").headers["allow"] == "GET"
