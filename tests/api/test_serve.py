"""`gsnn-edges serve` end to end: API + worker subprocess on SQLite + filesystem broker."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from proctools import ServiceProcess, free_port

pytestmark = pytest.mark.slow  # real `gsnn-edges serve` processes: ~15 s


@pytest.fixture
def served(tmp_path):
    port = free_port()
    server = ServiceProcess(
        ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        tmp_path / "serve.log",
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        server.wait_ready(f"http://127.0.0.1:{port}")
        yield client, server.log_path, server.proc
    finally:
        client.close()
        server.stop()


def test_serve_trains_job_end_to_end(served, bench, frame):
    client, log, _ = served
    assert client.get("/readyz").json()["status"] == "ok"
    gid = client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
    data = frame.to_csv(index=False).encode()
    did = client.post(
        "/v1/datasets", data={"graph_id": gid}, files={"file": ("d.csv", data)}
    ).json()["id"]
    body = {
        "graph_id": gid,
        "dataset_id": did,
        "model": {"channels": 4, "layers": 3},
        "training": {"epochs": 2},
    }
    job = client.post("/v1/jobs", json=body).json()
    deadline = time.monotonic() + 90
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    edges = client.get(f"/v1/jobs/{job['id']}/edges", params={"limit": 3}).json()
    assert edges["total"] > 0 and len(edges["items"]) == 3
    # the API's and the worker's logs are JSON lines tagged with what they belong to
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(
        line.get("logger") == "gsnn_edges.access"
        and line["route"] == "/v1/jobs/{job_id}"
        and len(line["request_id"]) == 32
        and line["tenant"] == "local"
        for line in lines
    )
    ran = [line for line in lines if line.get("job_id") == job["id"]]
    assert {line["message"] for line in ran} >= {f"job {job['id']} succeeded"}
    assert all(line["tenant"] == "local" for line in ran)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_serve_sigterm_stops_its_worker(served):
    """SIGTERM to `serve` alone (as a process manager sends it) must not orphan the worker."""
    _, _, proc = served
    workers = _children(proc.pid)
    assert workers, "serve started no worker subprocess"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=45)
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
