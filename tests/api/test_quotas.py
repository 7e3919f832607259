"""Greedy tenants: a request rate per key and a cap on active jobs per tenant, each
answered 429 with Retry-After without touching other tenants."""

from __future__ import annotations

from api.limits import TokenBuckets

from apihelpers import KEYS, assert_problem, bearer, job_body, make_client, upload

ALL_KEYS = ",".join(f"{t}:{k}" for t, k in KEYS.items())


def test_quotas_token_buckets_refill_at_the_rate_and_stay_bounded():
    buckets = TokenBuckets(rate=2.0, burst=3, max_callers=10)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == 0.5  # the next token in 1 / rate seconds
    assert buckets.take("a", now=0.5) == 0.0  # ... and there it is
    assert buckets.take("b", now=0.5) == 0.0  # callers do not share buckets
    for i in range(100):  # a flood of distinct callers, each refilled a second later
        buckets.take(f"ip{i}", now=1.0 + i)
    assert len(buckets._buckets) <= 11


def test_quotas_rate_limit_per_key_is_429_with_retry_after(tmp_path):
    queue: list[str] = []
    limits = {"rate_limit_per_s": 0.5, "rate_limit_burst": 3, "api_keys": ALL_KEYS}
    with make_client(tmp_path, queue, **limits) as client:
        got = [client.get("/v1/jobs", headers=bearer("a")).status_code for _ in range(4)]
        assert got == [200, 200, 200, 429]
        body = assert_problem(client.get("/v1/jobs", headers=bearer("a")), 429, "requests per")
        assert body["type"] == "/problems/too-many-requests"
        limited = client.get("/v1/jobs", headers=bearer("a"))
        assert limited.headers["retry-after"] == "2"  # one token every 2 s
        assert client.get("/v1/jobs", headers=bearer("b")).status_code == 200  # other key
        assert client.get("/healthz").status_code == 200  # probes are never limited
        # no key: limited per client address, before the 401
        codes = [client.get("/v1/jobs").status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]


def test_quotas_active_jobs_per_tenant_is_429_and_frees_up(tmp_path, bench, frame):
    queue: list[str] = []
    with make_client(tmp_path, queue, max_active_jobs=2, api_keys=ALL_KEYS) as client:
        ids = {}
        for tenant in ("a", "b"):
            gid = client.post("/v1/graphs", json=bench.partial.to_json(), headers=bearer(tenant))
            gid = gid.json()["id"]
            data = frame.to_csv(index=False).encode()
            ids[tenant] = (gid, upload(client, gid, data, headers=bearer(tenant)).json()["id"])
        a = bearer("a")
        first = client.post("/v1/jobs", json=job_body(*ids["a"]), headers=a).json()
        keyed = {**a, "Idempotency-Key": "k1"}
        assert client.post("/v1/jobs", json=job_body(*ids["a"]), headers=keyed).status_code == 202
        over = client.post("/v1/jobs", json=job_body(*ids["a"]), headers=a)
        body = assert_problem(over, 429, "2 queued or running jobs.*GSNN_EDGES_MAX_ACTIVE_JOBS")
        assert (
            body["type"] == "/problems/too-many-requests" and int(over.headers["retry-after"]) > 0
        )
        assert len(queue) == 2 and client.get("/v1/jobs", headers=a).json()["total"] == 2
        # a replay creates nothing, so it is answered at the cap
        assert client.post("/v1/jobs", json=job_body(*ids["a"]), headers=keyed).status_code == 200
        b = bearer("b")
        assert client.post("/v1/jobs", json=job_body(*ids["b"]), headers=b).status_code == 202
        client.post(f"/v1/jobs/{first['id']}/cancel", headers=a)  # frees one slot
        assert client.post("/v1/jobs", json=job_body(*ids["a"]), headers=a).status_code == 202
