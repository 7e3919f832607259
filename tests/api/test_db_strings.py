"""Values PostgreSQL refuses (NUL characters, strings longer than their column) are 422
problems that name the field, never 500s, and nothing is stored (issue 9, item 7)."""

from __future__ import annotations

import pytest

from apihelpers import assert_problem, make_client, upload


@pytest.fixture
def pg_client(tmp_path, pg_url):
    with make_client(tmp_path, [], database_url=pg_url) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("a\x00b", "NUL"), ("n" * 501, "at most 500")],
)
def test_graph_name_postgres_refuses_is_422(pg_client, bench, name, pattern):
    body = {**bench.partial.to_json(), "name": name}
    assert_problem(pg_client.post("/v1/graphs", json=body), 422, pattern)
    assert pg_client.get("/v1/graphs").json()["total"] == 0


def test_dataset_filename_longer_than_its_column_is_422(pg_client, bench, frame):
    gid = pg_client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
    resp = upload(pg_client, gid, frame.to_csv(index=False).encode(), name="d" * 600 + ".csv")
    body = assert_problem(resp, 422, "604 characters long; at most 500")
    assert body["errors"][0]["loc"][-1] == "filename"
    assert pg_client.get("/v1/datasets").json()["total"] == 0
    ok = upload(pg_client, gid, frame.to_csv(index=False).encode(), name="d.csv")
    assert ok.status_code == 201  # the same database still works
