"""Health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import re

from apihelpers import KEYS, bearer
from patching import patched, set_existing


def test_ops_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and set(ready["checks"]) == {
        "database",
        "broker",
        "artifact_store",
    }
    client.get("/v1/graphs")
    text = client.get("/metrics").text
    assert 'gsnn_edges_http_requests_total{method="GET",route="/v1/graphs",status="200"}' in text
    assert 'gsnn_edges_jobs{status="queued"} 0.0' in text


def test_ops_readyz_names_the_failing_dependency_without_its_secrets(client, caplog):
    def broker_down() -> None:
        raise ConnectionError("redis://admin:hunter2@10.0.0.7:6379/0 refused")

    set_existing(client.app.state, "broker_ping", broker_down)
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["checks"] == {
        "database": "ok",
        "broker": "error: ConnectionError",
        "artifact_store": "ok",
    }
    assert "hunter2" not in resp.text and "10.0.0.7" not in resp.text
    assert "hunter2" in caplog.text  # the operator still finds the reason in the log


def test_ops_openapi_describes_fields_and_problem_responses(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name in ("ModelSpec", "TrainingSpec", "JobOut", "EdgeItem", "Problem"):
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
    post_jobs = doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert "application/problem+json" in post_jobs["422"]["content"]
    assert schemas["TrainingSpec"]["properties"]["epochs"]["default"] == 30


def test_ops_openapi_lists_the_problems_every_layer_can_answer(client):
    """Found by fuzzing: a malformed body to POST .../evaluate was an undocumented 400.
    Every operation lists what the app-wide layers answer (400/413 with a body;
    401/429/503 with a key), and every error is documented as problem+json (FastAPI's own
    HTTPValidationError, a body this API never sends, is gone)."""
    doc = client.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert "requestBody" not in op or {"400", "413"} <= codes, (method, path)
            if op.get("security"):
                assert {"401", "429", "503"} <= codes, (method, path)
                for code in codes - {"200", "201", "202"}:
                    assert "application/problem+json" in op["responses"][code]["content"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    evaluate = doc["paths"]["/v1/jobs/{job_id}/evaluate"]["post"]["responses"]
    assert evaluate["400"]["description"].startswith("Malformed request")


def test_ops_metrics_expose_no_tenant_and_no_resource_ids(auth_client, bench, frame):
    """Two tenants' graphs, datasets and jobs show up only as counts: /metrics (scraped
    without a key) names routes by template and jobs by status, never a tenant or an id."""
    from apihelpers import bearer, job_body, upload

    ids = []
    for tenant in ("a", "b"):
        gid = auth_client.post("/v1/graphs", json=bench.partial.to_json(), headers=bearer(tenant))
        gid = gid.json()["id"]
        did = upload(auth_client, gid, frame.to_csv(index=False).encode(), headers=bearer(tenant))
        did = did.json()["id"]
        job = auth_client.post("/v1/jobs", json=job_body(gid, did), headers=bearer(tenant))
        auth_client.get(f"/v1/jobs/{job.json()['id']}", headers=bearer(tenant))
        ids += [gid, did, job.json()["id"]]
    resp = auth_client.get("/metrics")
    assert resp.status_code == 200
    text = resp.text
    assert 'gsnn_edges_jobs{status="queued"} 2.0' in text
    assert 'route="/v1/jobs/{job_id}"' in text
    assert not [s for s in (*ids, *KEYS.values()) if s in text]
    labels = re.findall(r'(\w+)="([^"]*)"', text)
    assert {name for name, _ in labels} <= {"method", "route", "status", "le"}
    assert not {value for _, value in labels} & set(KEYS)  # no tenant name as a value


def test_ops_dependencies_take_no_thread_pool_hop(auth_client):
    """FastAPI runs a plain ``def`` dependency in the thread pool, a hop per dependency per
    request: ours (context, tenant, paging) are coroutines, so a status poll or a page of
    a list resolves them on the event loop and only the endpoint hops."""
    import fastapi.dependencies.utils as resolver

    hops = []
    pool = resolver.run_in_threadpool

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await pool(func, *args, **kwargs)

    with patched(resolver, run_in_threadpool=counted):
        for path in ("/v1/jobs/job_missing", "/v1/jobs?limit=5", "/v1/graphs", "/ui/config"):
            auth_client.get(path, headers=bearer("a"))
    assert hops == []
