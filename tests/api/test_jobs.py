"""POST/GET /v1/jobs: validation, idempotency, cancel, results before success."""

from __future__ import annotations

import pytest

from apihelpers import LOCAL, assert_problem, job_body, make_client, upload
from patching import set_existing


def test_jobs_submit_is_202_with_location_and_defaults(client, queue, graph_id, dataset_id):
    resp = client.post("/v1/jobs", json=job_body(graph_id, dataset_id))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["location"] == f"/v1/jobs/{job['id']}" and queue == [job["id"]]
    assert job["status"] == "queued" and job["spec"]["regressor"]["aggregators"] == ["sum", "max"]
    assert job["spec"]["model"]["channels"] == 4 and job["spec"]["training"]["batch_size"] == 64
    assert job["spec"]["regressor"]["lr_schedule"] == "cosine"


def test_jobs_with_replicas_queue_each_replica_and_show_them(client, queue, graph_id, dataset_id):
    body = job_body(graph_id, dataset_id)
    key = {"Idempotency-Key": "replicated"}
    resp = client.post("/v1/jobs", json={**body, "replicas": 3}, headers=key)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    replay = client.post("/v1/jobs", json={**body, "replicas": 3}, headers=key)
    assert replay.status_code == 200 and replay.json()["replicas"] == job["replicas"]
    assert [r["replica"] for r in job["replicas"]] == [0, 1, 2] and len(queue) == 3
    assert all(r["status"] == "queued" and r["progress"] is None for r in job["replicas"])
    assert job["id"] not in queue and job["spec"]["replicas"] == 3
    listed = client.get("/v1/jobs").json()
    assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["total"] == 1
    for replica_id in queue:  # replicas are served inside their job only
        assert client.get(f"/v1/jobs/{replica_id}").status_code == 404
    single = client.post("/v1/jobs", json=body).json()
    assert single["replicas"] is None
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert [r["status"] for r in cancelled["replicas"]] == ["cancelled"] * 3
    too_many = client.post("/v1/jobs", json={**body, "replicas": 17})
    assert_problem(too_many, 422, "replicas")


def test_jobs_idempotency_key_twice_gives_one_job(client, queue, graph_id, dataset_id):
    body, hdr = job_body(graph_id, dataset_id), {"Idempotency-Key": "abc"}
    first = client.post("/v1/jobs", json=body, headers=hdr)
    second = client.post("/v1/jobs", json=body, headers=hdr)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"] and len(queue) == 1
    other = dict(body, training={"epochs": 5})
    assert_problem(client.post("/v1/jobs", json=other, headers=hdr), 422, "different request")
    assert client.get("/v1/jobs").json()["total"] == 1


CASES = [
    ({"graph_id": "gr_nope"}, "graph 'gr_nope' not found"),
    ({"dataset_id": "ds_nope"}, "dataset 'ds_nope' not found"),
    ({"training": {"epochs": -1}}, "training.epochs"),
    ({"model": {"norm": "banana"}}, "model.norm"),
    ({"regressor": {"aggregators": ["median"]}}, "aggregators"),
    ({"regressor": {"lr_schedule": "step"}}, "regressor.lr_schedule"),
    ({"validation": {"edges": [["f0", "f6"]]}}, "f0.*f6|already"),
    ({"validation": {"edges": [["f0", "zzz"]]}}, "zzz"),
    ({"validation": {"edges": [["f0", "f7"]], "holdout_fraction": 0.1}}, "not both"),
    ({"extra_field": 1}, "extra_field"),
    ({"confirm": {"top": -1}}, "confirm.top"),
    ({"confirm": {"top": 5}, "training": {"test_fraction": 0}}, "test_fraction > 0"),
]


@pytest.mark.parametrize(("change", "pattern"), CASES)
def test_jobs_bad_submit_is_422_and_not_stored(
    client, queue, graph_id, dataset_id, change, pattern
):
    body = {**job_body(graph_id, dataset_id), **change}
    assert_problem(client.post("/v1/jobs", json=body), 422, pattern)
    assert client.get("/v1/jobs").json()["total"] == 0 and queue == []


def test_jobs_cancel_queued_job(client, graph_id, dataset_id):
    job = client.post("/v1/jobs", json=job_body(graph_id, dataset_id)).json()
    resp = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
    assert client.get("/v1/jobs", params={"status": "cancelled"}).json()["total"] == 1
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 0


@pytest.mark.parametrize("what", ["edges", "weights", "metrics"])
def test_jobs_results_before_success_are_409(client, graph_id, dataset_id, what):
    job = client.post("/v1/jobs", json=job_body(graph_id, dataset_id)).json()
    assert_problem(client.get(f"/v1/jobs/{job['id']}/{what}"), 409, "queued.*succeeded")


def test_jobs_evaluate_before_success_is_409(client, graph_id, dataset_id):
    job = client.post("/v1/jobs", json=job_body(graph_id, dataset_id)).json()
    body = {"positive_edges": [["f1", "f7"]]}
    assert_problem(client.post(f"/v1/jobs/{job['id']}/evaluate", json=body), 409, "queued")


@pytest.mark.parametrize(
    "path", ["/v1/jobs/job_x", "/v1/jobs/job_x/edges", "/v1/datasets/ds_x", "/v1/graphs/gr_x"]
)
def test_jobs_unknown_ids_are_404(client, path):
    assert_problem(client.get(path), 404, "not found")


def test_jobs_cancel_of_an_id_that_cannot_be_a_header_is_404(client):
    """Found by fuzzing: the path id went into ``Location`` before the lookup, and one
    outside latin-1 made the header, hence the request, fail (a 500)."""
    assert_problem(client.post("/v1/jobs/\u0100/cancel"), 404, "not found")


def test_jobs_broker_down_is_503_and_job_failed(tmp_path, bench, frame):
    from fastapi.testclient import TestClient

    from gsnn_edges.cli.server import celery_app
    from gsnn_edges.service.settings import Settings

    dead = Settings(data_dir=tmp_path / "d", broker_url="redis://127.0.0.1:1/0", api_keys="")
    with TestClient(celery_app(dead, run_reaper=False), **LOCAL) as client:
        gid = client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        did = upload(client, gid, frame.to_csv(index=False).encode()).json()["id"]
        resp = client.post("/v1/jobs", json=job_body(gid, did))
        assert_problem(resp, 503, "job queue is unavailable")
        jobs = client.get("/v1/jobs").json()["items"]
        assert [j["status"] for j in jobs] == ["failed"]
        assert jobs[0]["error"]["type"] == "BrokerUnavailable"


def test_jobs_retry_after_a_failed_enqueue_creates_a_working_job(tmp_path, bench, frame):
    """The same Idempotency-Key after a 503 (broker down) makes a new, queued job once the
    broker is back, instead of replaying the failed one; a third call replays that one."""
    sent: list[str] = []
    broker_up = False

    def enqueue(job_id: str) -> None:
        if not broker_up:
            raise ConnectionError("broker down")
        sent.append(job_id)

    from fastapi.testclient import TestClient

    from apihelpers import make_app

    with TestClient(make_app(tmp_path / "data", enqueue), **LOCAL) as c:
        gid = c.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        did = upload(c, gid, frame.to_csv(index=False).encode()).json()["id"]
        hdr = {"Idempotency-Key": "retry-me"}
        assert_problem(c.post("/v1/jobs", json=job_body(gid, did), headers=hdr), 503, "queue")
        broker_up = True
        second = c.post("/v1/jobs", json=job_body(gid, did), headers=hdr)
        assert second.status_code == 202 and second.json()["status"] == "queued"
        assert sent == [second.json()["id"]]
        third = c.post("/v1/jobs", json=job_body(gid, did), headers=hdr)
        assert third.status_code == 200 and third.json()["id"] == second.json()["id"]
        statuses = sorted(j["status"] for j in c.get("/v1/jobs").json()["items"])
        assert statuses == ["failed", "queued"] and len(sent) == 1


def test_jobs_over_the_worker_memory_budget_are_422_at_submit(tmp_path, bench, frame):
    """The estimate grows with the square of the function nodes; a job over
    GSNN_EDGES_WORKER_MEMORY_MB is refused before anything is queued."""
    from api.schemas.jobs import JobCreate
    from gsnn_edges.train_validation import estimate_job_bytes

    need = estimate_job_bytes(bench.partial, JobCreate(**job_body("g", "d")).spec(), len(frame))
    queue: list[str] = []
    budget_mb = (need - 2**20) / 2**20  # one MiB short
    with make_client(tmp_path, queue, worker_memory_mb=budget_mb) as c:
        gid = c.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        did = upload(c, gid, frame.to_csv(index=False).encode()).json()["id"]
        resp = c.post("/v1/jobs", json=job_body(gid, did))
        assert_problem(resp, 422, r"needs about .* GiB .*GSNN_EDGES_WORKER_MEMORY_MB")
        assert c.get("/v1/jobs").json()["total"] == 0 and queue == []
    with make_client(tmp_path / "2", queue, worker_memory_mb=budget_mb + 2) as c:
        gid = c.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        did = upload(c, gid, frame.to_csv(index=False).encode()).json()["id"]
        assert c.post("/v1/jobs", json=job_body(gid, did)).status_code == 202


def test_estimate_job_bytes_grows_with_the_square_of_function_nodes():
    from gsnn_edges.simulate import random_layered_dag
    from gsnn_edges.spec import TrainSpec
    from gsnn_edges.train_validation import PAIR_BYTES, estimate_job_bytes

    small = random_layered_dag(10, 4, 10, edge_prob=0.1, seed=0).partial  # 40 nodes
    large = random_layered_dag(10, 4, 40, edge_prob=0.1, seed=0).partial  # 160 nodes
    spec = TrainSpec()
    grow = estimate_job_bytes(large, spec, 100) - estimate_job_bytes(small, spec, 100)
    assert grow >= PAIR_BYTES * (160**2 - 40**2)
    spec.confirm.top = 10
    assert estimate_job_bytes(small, spec, 100) > estimate_job_bytes(small, TrainSpec(), 100)


def test_jobs_epochs_are_served_while_training_and_restart_with_an_attempt(
    client, queue, graph_id, dataset_id
):
    from gsnn_edges.service import repository as repo

    ctx = client.app.state.ctx
    job_id = client.post("/v1/jobs", json=job_body(graph_id, dataset_id)).json()["id"]
    with ctx.db.session() as s:
        assert repo.claim_job(s, job_id, "a", "cpu")
        for epoch in (1, 2, 3):
            record = {"epoch": epoch, "epochs": 5, "train_loss": 1.0 / epoch, "stage": "training"}
            assert repo.save_progress(s, job_id, "a", record)
        assert repo.save_progress(s, job_id, "a", {**record, "stage": "scoring"})
        assert not repo.save_progress(s, job_id, "b", {**record, "epoch": 4})  # fenced out
    got = client.get(f"/v1/jobs/{job_id}/epochs").json()
    assert got["replica"] is None
    assert [(i["epoch"], i["train_loss"]) for i in got["items"]] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    newer = client.get(f"/v1/jobs/{job_id}/epochs", params={"since": 2, "limit": 5}).json()
    assert [i["epoch"] for i in newer["items"]] == [3]
    assert_problem(client.get(f"/v1/jobs/{job_id}/epochs?replica=1"), 422, "no replicas")
    with ctx.db.session() as s:  # the worker is lost; the next attempt starts a new curve
        set_existing(repo.load_job(s, job_id), "claim_token", None)
        s.commit()
        assert repo.claim_job(s, job_id, "b", "cpu")
    assert client.get(f"/v1/jobs/{job_id}/epochs").json()["items"] == []
    assert client.get("/v1/jobs/nope/epochs").status_code == 404


def test_jobs_status_poll_reads_replicas_only_for_jobs_that_have_them(client, graph_id, dataset_id):
    """The hot path: GET of a job without replicas is one query; with replicas, two."""
    from sqlalchemy import event

    engine = client.app.state.ctx.db.engine
    body = job_body(graph_id, dataset_id)
    plain = client.post("/v1/jobs", json=body).json()["id"]
    replicated = client.post("/v1/jobs", json={**body, "replicas": 2}).json()["id"]
    statements: list[str] = []
    listen = lambda conn, cursor, sql, *rest: statements.append(sql)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        counts = []
        for job_id in (plain, replicated):
            statements.clear()
            assert client.get(f"/v1/jobs/{job_id}").status_code == 200
            counts.append(sum(s.lstrip().upper().startswith("SELECT") for s in statements))
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert counts == [1, 2]
