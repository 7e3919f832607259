"""Faults injected into a running production stack (API, workers, Redis, PostgreSQL as
real processes; the servers are this module's own). Each test ends with the job in the
state a user must see, within a deadline."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import psycopg
import pytest

from faultstack import LONG, finished, running_epoch, upload, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.timeout(300)]

SHORT = {"model": {"channels": 4, "layers": 3}, "training": {"epochs": 3}}


def _results(stack, job_id: str) -> dict[str, bytes]:
    """The published result files of a job, as bytes."""
    job_dir = stack.settings.data_dir / "artifacts" / "jobs" / job_id
    with httpx.Client(base_url=stack.url) as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        edges = client.get(f"/v1/jobs/{job_id}/edges", params={"format": "csv"}).content
        weights = client.get(f"/v1/jobs/{job_id}/weights", params={"format": "npy"}).content
    return {"edges.csv": edges, "W.npy": weights, "attempts": str(sorted(os.listdir(job_dir)))}


def _long_job_running(client: httpx.Client, stack, long_inputs) -> str:
    """Upload the inputs, submit the long job and wait until it has trained 2 epochs."""
    gid, did = upload(client, *long_inputs)
    body = {"graph_id": gid, "dataset_id": did, **LONG}
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    wait_for(client, job_id, running_epoch(2), stack)
    return job_id


def test_faults_redis_flushed_with_a_job_queued_the_job_still_succeeds(stack, long_inputs):
    """The queue loses the job's message (FLUSHALL before any worker took it): the API's
    reaper sends it again and the job runs."""
    stack.start_api()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        gid, did = upload(client, *long_inputs)
        job = client.post("/v1/jobs", json={"graph_id": gid, "dataset_id": did, **SHORT})
        assert job.status_code == 202
        stack.redis_client().flushall()
        stack.start_worker()
        done = wait_for(client, job.json()["id"], finished, stack)
    assert done["status"] == "succeeded", done["error"]


def test_faults_redis_restart_mid_job_succeeds_once(stack, long_inputs):
    """Redis goes down and comes back empty while a job trains: the job still ends
    succeeded, from its one attempt (no second run, no second set of results)."""
    stack.start_api()
    stack.start_worker()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        job_id = _long_job_running(client, stack, long_inputs)
        stack.redis.halt()
        time.sleep(1.0)
        stack.redis.start()
        done = wait_for(client, job_id, finished, stack)
    assert done["status"] == "succeeded" and done["attempts"] == 1, (done, stack.logs())
    assert len(os.listdir(stack.settings.data_dir / "artifacts" / "jobs" / job_id)) == 1


def test_faults_postgres_restart_mid_job_is_503_then_recovers(stack, long_inputs):
    """PostgreSQL goes down while a job trains: the API answers 503 with Retry-After (not
    500) while it is down, answers again once it is back without a restart, and the job
    ends succeeded or failed with a reason."""
    stack.start_api()
    stack.start_worker()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        job_id = _long_job_running(client, stack, long_inputs)
        stack.postgres.halt()
        down = client.get(f"/v1/jobs/{job_id}")
        assert down.status_code == 503 and int(down.headers["retry-after"]) > 0, down.text
        assert down.headers["content-type"].startswith("application/problem+json")
        time.sleep(2.0)
        stack.postgres.start()
        done = wait_for(client, job_id, finished, stack, timeout=180)
    assert done["status"] == "succeeded" or done["error"]["message"], (done, stack.logs())


def test_faults_api_killed_between_commit_and_enqueue_the_job_runs(stack, long_inputs):
    """The API commits a job and dies (SIGKILL) before its message reaches the queue:
    here its broker is a socket that accepts and never answers, so the submit hangs in
    the enqueue after the commit until the kill. Once an API and a worker run again,
    the job runs: the reaper sends the message that was never sent."""
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)  # the handshake completes; nothing is ever read or answered
    try:
        stuck = stack.start_api(
            readiness="/healthz", broker_url=f"redis://127.0.0.1:{black_hole.getsockname()[1]}/0"
        )
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            gid, did = upload(client, *long_inputs)
        body = {"graph_id": gid, "dataset_id": did, **SHORT}
        submit = threading.Thread(target=_post_quietly, args=(stack.url, body), daemon=True)
        submit.start()
        with psycopg.connect(stack.settings.database_url.replace("+psycopg", "")) as conn:
            deadline = time.monotonic() + 30
            while not conn.execute("SELECT id FROM jobs").fetchall():
                assert time.monotonic() < deadline, stack.logs()
                time.sleep(0.1)
            (job_id,) = conn.execute("SELECT id FROM jobs").fetchone()
        time.sleep(0.5)  # in the enqueue
        stuck.kill()
    finally:
        black_hole.close()
    stack.start_api()
    stack.start_worker()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        done = wait_for(client, job_id, finished, stack)
    assert done["status"] == "succeeded", done["error"]


def _post_quietly(url: str, body: dict) -> None:
    try:
        httpx.post(f"{url}/v1/jobs", json=body, timeout=60)
    except httpx.TransportError:
        pass  # the API was killed mid-request


def test_faults_worker_paused_past_the_stale_timeout_cannot_touch_the_rerun(stack, long_inputs):
    """Worker A is stopped (SIGSTOP) mid-job past the stale timeout; the job is re-run by
    worker B and succeeds; A is then continued (SIGCONT): it finds its claim gone and
    writes nothing, so the published results stay byte-identical."""
    stack.start_api()
    first = stack.start_worker("worker-a")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        job_id = _long_job_running(client, stack, long_inputs)
        os.killpg(first.proc.pid, signal.SIGSTOP)
        stack.start_worker("worker-b")
        done = wait_for(client, job_id, finished, stack, timeout=180)
        assert done["status"] == "succeeded" and done["attempts"] == 2, (done, stack.logs())
        published = _results(stack, job_id)
        os.killpg(first.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while "claim lost" not in first.tail(20000):
            assert time.monotonic() < deadline, stack.logs()
            time.sleep(0.25)
        assert _results(stack, job_id) == published
        assert client.get(f"/v1/jobs/{job_id}").json()["attempts"] == 2


def test_faults_worker_out_of_memory_fails_once(stack, long_inputs):
    """A job that passes the API's memory estimate but outgrows its worker's memory
    (GSNN_EDGES_WORKER_MEMORY_MB set low on the worker) ends failed, "out of memory",
    after one attempt."""
    stack.start_api()
    stack.start_worker(worker_memory_mb=900)
    big = {"model": {"channels": 64, "layers": 6}, "training": {"batch_size": 2000}}
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        gid, did = upload(client, *long_inputs)
        body = {"graph_id": gid, "dataset_id": did, **big}
        body["training"] = {**big["training"], "device": "cpu"}
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        done = wait_for(client, job_id, finished, stack)
        time.sleep(3 * stack.settings.stale_after_s)  # the reaper leaves it alone
        done = client.get(f"/v1/jobs/{job_id}").json()
    assert done["status"] == "failed" and done["attempts"] == 1, (done, stack.logs())
    assert done["error"]["type"] == "OutOfMemory"
    assert done["error"]["message"].startswith("out of memory")
