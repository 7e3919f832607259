"""gsnn_edges.client against the real app in process (jobs run inline by the real runner)."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from gsnn_edges.client import ApiError, Client, JobFailed
from gsnn_edges.service.runner import run_job

import references
from patching import set_existing
from proctools import make_app

SMALL = {"model": {"channels": 3, "layers": 3}, "training": {"epochs": 2}}


class Server:
    """The app in process; ``run_pending()`` trains queued jobs with the worker's runner."""

    def __init__(self, tmp_path) -> None:
        self.pending: list[str] = []
        self.app = make_app(tmp_path / "data", self.pending.append, api_keys="a:key-a,b:key-b")
        self.http = TestClient(self.app)

    def client(self, key: str | None = "key-a") -> Client:
        return Client("http://testserver", api_key=key, http=self.http)

    def run_pending(self) -> None:
        while self.pending:
            run_job(self.app.state.ctx, self.pending.pop(0))


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    with srv.http:
        yield srv


@pytest.fixture
def inputs(server, bench, frame) -> tuple[str, str]:
    c = server.client()
    g = bench.partial.to_json()
    gid = c.create_graph(g["nodes"], g["edges"], name="bench")["id"]
    return gid, c.upload_dataset(gid, frame)["id"]


@pytest.fixture
def done_job(server, inputs) -> str:
    job = server.client().submit_job(*inputs, **SMALL)
    server.run_pending()
    return job["id"]


def test_client_unknown_job_raises_api_error_404(server):
    with pytest.raises(ApiError, match=r"^404 Not Found: .*nope") as info:
        server.client().job("nope")
    err = info.value
    assert err.status == 404 and err.title == "Not Found" and err.type.endswith("not-found")
    assert err.method == "GET" and err.url.endswith("/v1/jobs/nope")


def test_client_bad_key_raises_401(server):
    with pytest.raises(ApiError, match="unknown API key") as info:
        server.client("wrong").jobs()
    assert info.value.status == 401
    with pytest.raises(ApiError, match="missing API key"):
        server.client(None).jobs()


def test_client_invalid_graph_error_carries_errors_list(server):
    with pytest.raises(ApiError) as info:
        server.client().create_graph({"input": ["a"], "function": ["f"]}, [["a", "f"]])
    err = info.value
    assert err.status == 422 and err.errors
    assert all({"loc", "msg"} <= set(e) for e in err.errors)
    text = str(err)
    assert text.startswith("422 ") and "\n  - " in text  # one readable line per problem


def test_client_results_before_success_raise_409(server, inputs):
    job = server.client().submit_job(*inputs, **SMALL)
    with pytest.raises(ApiError, match="is queued") as info:
        server.client().edges(job["id"])
    assert info.value.status == 409


def test_client_other_tenant_gets_404(server, done_job):
    with pytest.raises(ApiError) as info:
        server.client("key-b").metrics(done_job)
    assert info.value.status == 404


def test_client_upload_path_csv_parquet_and_dataframe_csv(server, inputs, frame, tmp_path):
    c, gid = server.client(), inputs[0]
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    for source in (tmp_path / "d.csv", str(tmp_path / "d.parquet")):
        assert c.upload_dataset(gid, source)["n_samples"] == len(frame)
    assert c.upload_dataset(gid, frame, format="csv")["n_samples"] == len(frame)
    with pytest.raises(ValueError, match="format must be 'csv' or 'parquet', got 'xls'"):
        c.upload_dataset(gid, frame, format="xls")
    with pytest.raises(ApiError, match="missing columns") as info:
        c.upload_dataset(gid, frame.drop(columns=frame.columns[0]))
    assert info.value.errors[0]["loc"] == ["file", "header"]


def test_client_idempotency_key_replays_the_same_job(server, inputs):
    c = server.client()
    first = c.submit_job(*inputs, **SMALL, idempotency_key="k1")
    again = c.submit_job(*inputs, **SMALL, idempotency_key="k1")
    assert first["id"] == again["id"] and c.jobs()["total"] == 1


def test_client_wait_cancelled_job_raises_job_failed(server, inputs):
    c = server.client()
    job = c.submit_job(*inputs, **SMALL)
    c.cancel(job["id"])
    with pytest.raises(JobFailed, match=f"job {job['id']} ended cancelled") as info:
        c.wait(job["id"], poll=0.01, timeout=5)
    assert info.value.status == "cancelled"
    assert c.jobs(status="cancelled")["total"] == 1


def test_client_wait_failed_job_carries_error(server, inputs):
    from gsnn_edges.service.models import Job

    job = server.client().submit_job(*inputs, **SMALL)
    with server.app.state.ctx.db.session() as s:  # a spec only a bad deploy could store
        row = s.get(Job, job["id"])
        set_existing(row, "spec", {**row.spec, "model": {"norm": "banana"}})
        s.commit()
    server.run_pending()
    with pytest.raises(JobFailed, match="SpecValidationError: .*banana") as info:
        server.client().wait(job["id"], poll=0.01)
    assert info.value.error["type"] == "SpecValidationError"


def test_client_wait_timeout_raises_timeout_error(server, inputs):
    job = server.client().submit_job(*inputs, **SMALL)
    with pytest.raises(TimeoutError, match="still queued after 0.2 s"):
        server.client().wait(job["id"], poll=0.05, timeout=0.2)


def test_client_wait_with_progress_bar_returns_succeeded_job(server, done_job, capsys):
    job = server.client().wait(done_job, poll=0.01, progress=True)
    assert job["status"] == "succeeded" and job["progress"]["epoch"] == 2
    assert "2/2" in capsys.readouterr().err


def test_client_edges_pages_concatenate_to_csv_and_single_page(server, done_job):
    c = server.client()
    paged = c.edges(done_job, page_size=7)
    csv = c.edges(done_job, format="csv")
    one = server.http.get(
        f"/v1/jobs/{done_job}/edges", params={"limit": 1000}, headers=_key("key-a")
    ).json()
    assert len(paged) == one["total"] == len(csv) > 7
    assert paged[["src", "dst"]].values.tolist() == [[i["src"], i["dst"]] for i in one["items"]]
    pd.testing.assert_frame_equal(paged, csv, check_dtype=False)
    assert not paged["has_edge"].any()
    assert len(c.edges(done_job, limit=5, page_size=2)) == 5
    src = paged["src"].iloc[0]
    assert (c.edges(done_job, src=src)["src"] == src).all()
    assert c.edges(done_job, candidates_only=False)["has_edge"].any()
    with pytest.raises(ValueError, match="page_size must be in 1..1000, got 0"):
        c.edges(done_job, page_size=0)


def test_client_weights_metrics_and_evaluate(server, done_job, bench):
    c = server.client()
    nodes, W = c.weights(done_job)
    as_json = server.http.get(f"/v1/jobs/{done_job}/weights", headers=_key("key-a")).json()
    assert nodes == as_json["nodes"] and W.shape == (len(nodes), len(nodes))
    np.testing.assert_allclose(W, np.asarray(as_json["weights"]), rtol=1e-6)
    assert len(c.metrics(done_job)["history"]) == 2
    result = c.evaluate(done_job, bench.held_out, top_k=(1, 2))
    every = c.edges(done_job, candidates_only=False)
    assert result["auc"] == pytest.approx(references.table_auc(every, bench.held_out))
    assert result["n_positives"] == len(bench.held_out) and "top@2" in result
    with pytest.raises(ApiError, match="nowhere") as info:
        c.evaluate(done_job, [("f0", "nowhere")])
    assert info.value.status == 422


def test_client_non_problem_error_body_keeps_text():
    request = httpx.Request("GET", "http://proxy/v1/jobs")
    err = ApiError.from_response(httpx.Response(502, text="upstream down", request=request))
    assert (err.status, err.title, err.detail, err.errors) == (
        502,
        "Bad Gateway",
        "upstream down",
        [],
    )
    assert str(err) == "502 Bad Gateway: upstream down (GET http://proxy/v1/jobs)"


def test_client_context_manager_closes_own_http():
    with Client("http://127.0.0.1:1/", api_key="k") as c:
        assert repr(c) == "Client('http://127.0.0.1:1', with key)"
    assert c._http.is_closed


def _key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_client_job_with_replicas_serves_the_combined_table(server, inputs):
    c = server.client()
    job = c.submit_job(*inputs, **SMALL, replicas=2)
    assert [r["status"] for r in job["replicas"]] == ["queued", "queued"]
    server.run_pending()  # both replicas, then the job the last one queued
    done = c.wait(job["id"], timeout=5)
    assert done["status"] == "succeeded"
    assert [r["status"] for r in done["replicas"]] == ["succeeded", "succeeded"]
    edges = c.edges(job["id"])
    assert edges["stability"].between(0, 1).all() and (edges["score_se"] >= 0).all()
    assert c.metrics(job["id"])["ensemble"]["replicas"] == 2
