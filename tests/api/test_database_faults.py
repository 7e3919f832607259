"""No 500s from the database (issue 9, item 7): values PostgreSQL refuses (NUL
characters, strings longer than their column) are 422 problems that name the field with
nothing stored, and an unreachable database is a 503 with Retry-After."""

from __future__ import annotations

import pytest

from apihelpers import assert_problem, make_client, upload
from patching import patched


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


def test_database_outage_is_503_with_retry_after(pg_client, bench):
    """PostgreSQL unreachable mid-life (the app's engine pointed at a closed port): data
    routes answer 503 problem+json with Retry-After, liveness stays up, readiness says
    which dependency is down; once the database is back, so is the API."""
    from sqlalchemy.orm import sessionmaker

    from gsnn_edges.service.db import make_engine

    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    maker = sessionmaker(down, expire_on_commit=False)
    try:
        with patched(pg_client.app.state.ctx.db, engine=down, sessionmaker=maker):
            for resp in (
                pg_client.get("/v1/graphs"),
                pg_client.post("/v1/graphs", json=bench.partial.to_json()),
            ):
                assert_problem(resp, 503, "database is unavailable")
                assert resp.headers["retry-after"] == "5"
            assert pg_client.get("/healthz").status_code == 200
            ready = pg_client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("error")
    finally:
        down.dispose()
    assert pg_client.get("/v1/graphs").status_code == 200
