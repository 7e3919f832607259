"""Bearer auth and tenant scoping."""

from __future__ import annotations

from apihelpers import assert_problem, bearer, job_body, upload


def test_auth_missing_or_wrong_key_is_401(auth_client, bench):
    resp = auth_client.post("/v1/graphs", json=bench.partial.to_json())
    body = assert_problem(resp, 401, "missing API key")
    assert resp.headers["www-authenticate"] == "Bearer" and body["type"]
    wrong = {"Authorization": "Bearer nope"}
    assert_problem(auth_client.get("/v1/graphs", headers=wrong), 401, "unknown API key")
    assert auth_client.get("/v1/graphs", headers=bearer("a")).json()["total"] == 0


def test_auth_other_tenants_ids_are_404(auth_client, bench, frame):
    a, b = bearer("a"), bearer("b")
    gid = auth_client.post("/v1/graphs", json=bench.partial.to_json(), headers=a).json()["id"]
    did = upload(auth_client, gid, frame.to_csv(index=False).encode(), headers=a).json()["id"]
    job = auth_client.post("/v1/jobs", json=job_body(gid, did), headers=a).json()
    for path in (
        f"/v1/graphs/{gid}",
        f"/v1/datasets/{did}",
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/edges",
    ):
        assert_problem(auth_client.get(path, headers=b), 404, "not found")
    assert_problem(auth_client.post(f"/v1/jobs/{job['id']}/cancel", headers=b), 404, "not")
    assert auth_client.get("/v1/jobs", headers=b).json()["total"] == 0
    # b cannot use a's graph for its own dataset or job either
    resp = upload(auth_client, gid, frame.to_csv(index=False).encode(), headers=b)
    assert_problem(resp, 422, "not found")
    assert_problem(auth_client.post("/v1/jobs", json=job_body(gid, did), headers=b), 422, "not")
    assert auth_client.get("/v1/jobs", headers=a).json()["total"] == 1


def test_auth_unauthenticated_upload_is_refused_before_its_body_is_read(auth_client):
    """A 20 MB multipart upload without a valid key: 401 while at most one chunk of the
    body has been pulled (FastAPI alone would read and parse all of it first)."""
    pulled = []

    def body():
        for _ in range(20):
            pulled.append(1)
            yield b"x" * 2**20

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    for extra in ({}, {"Authorization": "Bearer nope"}):
        pulled.clear()
        resp = auth_client.post("/v1/datasets", content=body(), headers={**headers, **extra})
        assert_problem(resp, 401, "missing API key" if not extra else "unknown API key")
        assert resp.headers["www-authenticate"] == "Bearer"
        assert len(pulled) <= 1
    pulled.clear()
    ok = auth_client.post("/v1/datasets", content=body(), headers={**headers, **bearer("a")})
    assert ok.status_code in (400, 422) and len(pulled) == 20  # a valid key gets its body read


def test_auth_probes_answer_other_methods_405_not_401(auth_client):
    """Found by fuzzing: ``POST /healthz`` without a key was 401 (the body guard ran
    before routing), though the probes are public and no key would make it work."""
    for path in ("/healthz", "/readyz", "/metrics"):
        resp = auth_client.post(path)
        assert_problem(resp, 405, "allowed: GET")
        assert resp.headers["allow"] == "GET"
    assert_problem(auth_client.post("/v1/graphs", json={}), 401, "missing API key")


def test_unauthenticated_mode_serves_loopback_callers_only(tmp_path):
    """Without API keys, however the app is launched: a remote caller is 403, and so is a
    loopback caller whose Host is not a loopback name (a DNS-rebinding page)."""
    from fastapi.testclient import TestClient

    from apihelpers import make_app

    app = make_app(tmp_path / "data", [].append)
    cases = [
        ({"base_url": "http://127.0.0.1:8000", "client": ("127.0.0.1", 1)}, 200),
        ({"base_url": "http://localhost", "client": ("::1", 1)}, 200),
        ({"base_url": "http://[::1]:8000", "client": ("127.0.0.2", 1)}, 200),
        ({"base_url": "http://127.0.0.1", "client": ("10.0.0.5", 1)}, 403),
        ({"base_url": "http://rebind.example", "client": ("127.0.0.1", 1)}, 403),
        ({"base_url": "http://127.0.0.1.rebind.example", "client": ("127.0.0.1", 1)}, 403),
    ]
    for kwargs, status in cases:
        with TestClient(app, **kwargs) as c:
            resp = c.get("/v1/graphs")
            assert resp.status_code == status, (kwargs, resp.text)
            if status == 403:
                assert_problem(resp, 403, "loopback")


def test_authenticated_mode_serves_remote_callers(tmp_path):
    from fastapi.testclient import TestClient

    from apihelpers import make_app

    app = make_app(tmp_path / "data", [].append, api_keys="a:key-a")
    with TestClient(app, base_url="http://api.example", client=("10.0.0.5", 1)) as c:
        assert c.get("/v1/graphs", headers={"Authorization": "Bearer key-a"}).status_code == 200


def test_auth_key_is_checked_once_per_request(auth_client, bench, monkeypatch):
    """The observing and limiting middlewares, the auth-before-body check and the route
    dependency share one resolution of the bearer key per request, accepted or refused."""
    import api.deps

    calls = []
    check = api.deps.tenant_for
    monkeypatch.setattr(api.deps, "tenant_for", lambda *a: (calls.append(1), check(*a))[1])
    assert auth_client.post("/v1/graphs", json=bench.partial.to_json(), headers=bearer("a"))
    assert len(calls) == 1
    assert_problem(auth_client.post("/v1/graphs", json={}), 401, "missing API key")
    assert len(calls) == 2
