"""The production stack of a fault test (API and workers as real processes) and the
polling helpers the fault tests share."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis

from gsnn_edges.service.settings import Settings

from backends import DisposablePostgres, DisposableRedis
from proctools import ServiceProcess, free_port

TERMINAL = ("succeeded", "failed", "cancelled")
# A job long enough to hit mid-run (~0.2 s per epoch on 2 CPU cores).
LONG = {"model": {"channels": 8, "layers": 6}, "training": {"epochs": 40}}


class Stack:
    """Settings shared by the API and the workers of one test, and their processes."""

    def __init__(self, tmp: Path, redis_server: DisposableRedis, postgres: DisposablePostgres):
        self.tmp, self.redis, self.postgres = tmp, redis_server, postgres
        database = f"faults_{uuid.uuid4().hex[:8]}"  # a database of its own per test
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        base = postgres.url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        self.settings = Settings(
            data_dir=tmp / "data",
            database_url=f"{base}/{database}",
            broker_url=f"{redis_server.url}/0",
            api_keys="",
            queue_name=f"faults_{uuid.uuid4().hex[:8]}",
            heartbeat_interval_s=0.5,
            stale_after_s=2.0,
            reaper_interval_s=0.5,
            max_attempts=3,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[ServiceProcess] = []

    def _env(self, **extra: object) -> dict[str, object]:
        s = self.settings
        keys = ("data_dir", "database_url", "broker_url", "api_keys", "queue_name")
        keys += ("heartbeat_interval_s", "stale_after_s", "reaper_interval_s", "max_attempts")
        return {**{k: getattr(s, k) for k in keys}, **extra}

    def start_api(self, readiness: str = "/readyz", **extra: object) -> ServiceProcess:
        """``gsnn-edges api``, once ``readiness`` answers 200 (``/healthz`` for an API
        whose broker is meant to be unreachable)."""
        log = self.tmp / f"api-{len(self.processes)}.log"
        api = ServiceProcess(["api", "--port", str(self.port)], log, **self._env(**extra))
        self.processes.append(api)
        api.wait_ready(self.url, path=readiness)
        return api

    def start_worker(self, name: str = "worker", **extra: object) -> ServiceProcess:
        worker = ServiceProcess(
            ["worker", "--loglevel", "info"], self.tmp / f"{name}.log", **self._env(**extra)
        )
        self.processes.append(worker)
        return worker

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.broker_url)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.tail(3000)}" for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.proc.poll() is None:
                os.killpg(process.proc.pid, signal.SIGCONT)  # a stopped group cannot end
            process.stop()


def upload(client: httpx.Client, graph: dict, data: bytes) -> tuple[str, str]:
    gid = client.post("/v1/graphs", json=graph).json()["id"]
    files = {"file": ("d.csv", data, "text/csv")}
    did = client.post("/v1/datasets", data={"graph_id": gid}, files=files).json()["id"]
    return gid, did


def wait_for(client: httpx.Client, job_id: str, until, stack: Stack, timeout: float = 120.0):
    """Poll the job until ``until(job)``; fail with every process's log on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if until(job):
                return job
        except (httpx.TransportError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id}: condition not met in {timeout} s\n{stack.logs()}")
        time.sleep(0.25)


def finished(job: dict) -> bool:
    return job.get("status") in TERMINAL


def running_epoch(n: int):
    return lambda job: (
        job.get("status") == "running" and ((job.get("progress") or {}).get("epoch") or 0) >= n
    )
