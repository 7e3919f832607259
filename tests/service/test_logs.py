"""Structured logs: the bound request/job context on every line, from any thread."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from gsnn_edges.service import logs

from proctools import make_app


@pytest.fixture
def lines():
    """JSON log lines emitted at INFO and above while the test runs (the handler
    configure_logging installs, writing to a list)."""
    captured: list[str] = []

    class ToList(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(self.format(record))

    handler = ToList()
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in captured]
    root.removeHandler(handler)
    root.setLevel(level)


def test_logs_lines_carry_the_bound_context_extra_fields_and_tracebacks(lines):
    log = logging.getLogger("gsnn_edges.test")
    with logs.bound(request_id="r1", tenant="acme"):
        log.info("hello %s", "world", extra={"ms": 1.5})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.warning("outside")
    first, failed, outside = lines()
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert first["request_id"] == "r1" and first["tenant"] == "acme" and first["ms"] == 1.5
    assert first["logger"] == "gsnn_edges.test" and first["ts"].endswith("+00:00")
    assert "ValueError: boom" in failed["exc"] and failed["tenant"] == "acme"
    assert "request_id" not in outside and "tenant" not in outside


def test_logs_bound_context_reaches_threads_started_in_a_copy_and_resets(lines):
    """A thread started in a copy of the context (as the heartbeat is) keeps the tags;
    leaving the block restores what was bound before, also across a nested bind."""
    import contextvars

    log = logging.getLogger("gsnn_edges.test")
    with logs.bound(job_id="job_1", tenant=None):
        logs.bind(tenant="acme")
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(log.info, "from a thread"))
        worker.start()
        worker.join()
    assert logs.CONTEXT["tenant"].get() is None and logs.CONTEXT["job_id"].get() is None
    (line,) = lines()
    assert line["job_id"] == "job_1" and line["tenant"] == "acme"


def test_logs_text_format_has_the_same_fields():
    record = logging.LogRecord("gsnn_edges.x", logging.INFO, __file__, 1, "hi %d", (3,), None)
    record.tenant = "acme"
    text = logs.TextFormatter().format(record)
    assert text.endswith("INFO gsnn_edges.x: hi 3 tenant=acme")


def test_logs_api_request_id_and_tenant_on_access_and_service_lines(tmp_path, bench, frame, lines):
    """Every line a request causes - the service's own error log and the access line -
    carries its request id (the caller's when it is a short token, echoed back) and the
    tenant of its key."""
    from fastapi.testclient import TestClient

    def broken_queue(job_id: str) -> None:
        raise RuntimeError("broker down")

    app = make_app(tmp_path / "d", broken_queue, api_keys="acme:key-a")
    auth = {"Authorization": "Bearer key-a"}
    with TestClient(app) as client:
        gid = client.post("/v1/graphs", json=bench.partial.to_json(), headers=auth).json()["id"]
        files = {"file": ("d.csv", frame.to_csv(index=False).encode(), "text/csv")}
        did = client.post("/v1/datasets", data={"graph_id": gid}, files=files, headers=auth)
        body = {"graph_id": gid, "dataset_id": did.json()["id"]}
        resp = client.post("/v1/jobs", json=body, headers={**auth, "X-Request-ID": "req-42"})
        assert resp.status_code == 503 and resp.headers["x-request-id"] == "req-42"
        odd = client.get("/v1/jobs", headers={**auth, "X-Request-ID": "no spaces allowed"})
        anonymous = client.get("/v1/jobs")
    tagged = [line for line in lines() if line.get("request_id") == "req-42"]
    enqueue_error = next(line for line in tagged if line["logger"] == "gsnn_edges.service.jobs")
    assert "broker down" in enqueue_error["exc"] and enqueue_error["tenant"] == "acme"
    access = next(line for line in tagged if line["logger"] == "gsnn_edges.access")
    assert access["route"] == "/v1/jobs" and access["status"] == 503 and access["ms"] > 0
    assert access["tenant"] == "acme" and access["message"] == "POST /v1/jobs 503"
    generated = odd.headers["x-request-id"]
    assert generated != "no spaces allowed" and len(generated) == 32
    assert anonymous.status_code == 401 and len(anonymous.headers["x-request-id"]) == 32
    unknown = [line for line in lines() if line.get("status") == 401]
    assert unknown and "tenant" not in unknown[0]


def test_logs_worker_lines_carry_job_id_and_tenant(tmp_path, bench, frame, lines):
    from gsnn_edges.service.context import ServiceContext
    from gsnn_edges.service.datasets import create_dataset
    from gsnn_edges.service.graphs import create_graph
    from gsnn_edges.service.jobs import submit_job
    from gsnn_edges.service.runner import run_job
    from gsnn_edges.service.settings import Settings

    queue: list[str] = []
    ctx = ServiceContext.from_settings(Settings(data_dir=tmp_path / "d"), enqueue=queue.append)
    graph = create_graph(ctx, "acme", "g", bench.partial.to_json())
    dataset = create_dataset(ctx, "acme", graph.id, frame.to_csv(index=False).encode(), "d.csv")
    spec = {"model": {"channels": 2, "layers": 2}, "training": {"epochs": 1}}
    job = submit_job(ctx, "acme", graph.id, dataset.id, spec).job
    assert run_job(ctx, job.id) == "succeeded"
    ctx.db.dispose()
    mine = [line for line in lines() if line.get("job_id") == job.id]
    assert [line["message"] for line in mine] == [
        f"job {job.id} started",
        f"job {job.id} succeeded",
    ]
    assert all(line["tenant"] == "acme" for line in mine)
    assert logs.CONTEXT["job_id"].get() is None and logs.CONTEXT["tenant"].get() is None
