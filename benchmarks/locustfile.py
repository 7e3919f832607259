"""Locust users of the load benchmark; ``benchmarks/load.py`` starts the servers, the jobs
and a headless locust with this file (see its docstring).

- ``ApiUser``: status polls of the training job and edge pages of a finished one, at
  ``--per-user-rps`` each: 100 users x 2/s = 200 requests/s. Think times are exponential
  (Poisson arrivals): with fixed ones (``constant_throughput``) the users fire in step,
  and the server sees bursts of 100 requests every half second instead of a load.
- ``HealthUser`` (one): ``/healthz``, 10/s, Poisson as well.
- ``ExportUser`` (one, with ``load.py --heavy``): whole-table CSV exports back to back.

Every request's time after the first ``--warmup`` seconds (users spawning, first reads
of the files) goes to ``--samples-out`` as JSON when locust quits, so the runner computes
exact percentiles over the measured window (locust's own are rounded and include the
warm-up).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict

from locust import FastHttpUser, HttpUser, constant, events, task

SAMPLES: dict[str, list[float]] = defaultdict(list)
ERRORS: dict[str, int] = defaultdict(int)
CLOCK = {"measure_from": float("inf")}
EXPORTED_ROWS: list[int] = []  # rows of each finished CSV export


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--status-job", default="", help="Job id whose status is polled.")
    parser.add_argument("--edges-job", default="", help="Finished job whose edges are paged.")
    parser.add_argument("--edges-src", default="f1017", help="Node of the src-filter pages.")
    parser.add_argument("--per-user-rps", type=float, default=2.0)
    parser.add_argument("--samples-out", default="", help="JSON of every response time.")
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds not recorded.")


@events.test_start.add_listener
def _start(environment, **kwargs) -> None:
    CLOCK["measure_from"] = time.monotonic() + environment.parsed_options.warmup


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **kwargs):
    if time.monotonic() < CLOCK["measure_from"]:
        return
    SAMPLES[name].append(response_time)
    if exception is not None:
        ERRORS[name] += 1


@events.quitting.add_listener
def _dump(environment, **kwargs) -> None:
    path = environment.parsed_options.samples_out
    if path:
        failed_tasks = sum(e["occurrences"] for e in environment.runner.exceptions.values())
        payload = {"samples": SAMPLES, "errors": ERRORS, "task_exceptions": failed_tasks}
        with open(path, "w") as fh:
            json.dump({**payload, "exported_rows": EXPORTED_ROWS}, fh)


class ApiUser(FastHttpUser):
    """Half status polls, half edge pages (first, deep, one node's, q-value filtered)."""

    def wait_time(self) -> float:
        return random.expovariate(self.environment.parsed_options.per_user_rps)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.status_url = f"/v1/jobs/{opts.status_job}"
        self.edges_url = f"/v1/jobs/{opts.edges_job}/edges"
        self.src = opts.edges_src

    @task(10)
    def status(self) -> None:
        self.client.get(self.status_url, name="status")

    @task(4)
    def first_page(self) -> None:
        self.client.get(self.edges_url, name="edges: first page")

    @task(2)
    def deep_page(self) -> None:
        self.client.get(f"{self.edges_url}?offset=1000000", name="edges: offset 1,000,000")

    @task(2)
    def node_page(self) -> None:
        self.client.get(f"{self.edges_url}?src={self.src}", name="edges: src filter")

    @task(2)
    def q_page(self) -> None:
        self.client.get(f"{self.edges_url}?max_q_value=0.05", name="edges: max_q_value")


class HealthUser(FastHttpUser):
    fixed_count = 1

    def wait_time(self) -> float:
        return random.expovariate(10.0)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz", name="healthz")


class ExportUser(HttpUser):
    """Heavy requests: the whole edge table as CSV (4M rows, streamed), read and dropped."""

    fixed_count = 1
    wait_time = constant(0)

    @task
    def export(self) -> None:
        url = f"/v1/jobs/{self.environment.parsed_options.edges_job}/edges?format=csv"
        url += "&candidates_only=false"
        resp = self.client.get(url, name="edges: CSV export (to headers)", stream=True)
        try:
            rows = sum(chunk.count(b"\n") for chunk in resp.iter_content(1 << 20))
        finally:
            resp.close()
        EXPORTED_ROWS.append(rows - 1)
