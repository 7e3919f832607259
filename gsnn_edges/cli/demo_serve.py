"""`gsnn-edges demo --serve`: the demo's benchmark trained by a served API and worker (the
embedded `gsnn-edges serve`), so that its result can be looked at in the dashboard.

Simulates the same graph and data as the local demo, starts `gsnn-edges serve` on
loopback without API keys, uploads the graph and the data with the Python client, submits
the job (validation edges included, so the job page draws ROC curves), prints the job's
dashboard URL at once and again when the job has finished, then keeps serving.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVER_START_SECONDS = 120


def _start_server(port: int, data_dir: Path, log: Path) -> subprocess.Popen:
    """`gsnn-edges serve` as a child process, in local mode (no API keys, loopback), its
    log lines written to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "GSNN_EDGES_API_KEYS"}
    argv = [sys.executable, "-m", "gsnn_edges.cli", "serve", "--port", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own handle
        return subprocess.Popen(
            [*argv, "--data-dir", str(data_dir)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_ready(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gsnn-edges serve exited with status {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"gsnn-edges serve did not answer on {url} in {SERVER_START_SECONDS} s")


def _submit(url: str, args: argparse.Namespace, spec: object) -> str:
    """Upload the demo's graph and data and submit its job; the job id."""
    from gsnn_edges.client import Client
    from gsnn_edges.experiment import experiment_inputs
    from gsnn_edges.simulate import converging_tier_graph

    bench = converging_tier_graph(args.width)
    data, _, _ = experiment_inputs(bench, spec, n_train=args.samples)  # sets validation
    blocks = spec.to_dict()
    with Client(url) as client:
        graph = bench.partial.to_json()
        name = f"demo: converging tier, width {args.width}"
        graph_id = client.create_graph(graph["nodes"], graph["edges"], name=name)["id"]
        dataset_id = client.upload_dataset(graph_id, data)["id"]
        keys = ("model", "regressor", "training", "validation", "confirm")
        job = client.submit_job(graph_id, dataset_id, **{k: blocks[k] for k in keys})
    return job["id"]


def run_served(args: argparse.Namespace, spec: object) -> int:
    """Train the demo's job on a served API; print its dashboard URL; serve on."""
    from gsnn_edges.client import Client, JobFailed

    url = f"http://127.0.0.1:{args.port}"
    out = Path(args.out).resolve()
    server = _start_server(args.port, out / "serve-data", out / "serve.log")
    print(
        f"gsnn-edges demo --serve: converging-tier benchmark, width {args.width}, "
        f"{args.samples} training samples, {spec.training.epochs} epochs, trained by "
        f"gsnn-edges serve on {url} (state in {out / 'serve-data'}, log in {out / 'serve.log'})",
        flush=True,
    )
    try:
        _wait_ready(server, url)
        job_id = _submit(url, args, spec)
        page = f"{url}/ui/jobs/{job_id}"
        print(f"dashboard: {page}  (training; the page follows it live)", flush=True)
        with Client(url) as client:
            try:
                job = client.wait(job_id, progress=True)
                print(f"\njob {job_id} {job['status']}: best epoch {job['progress']['best_epoch']}")
            except JobFailed as exc:
                print(f"\n{exc}", file=sys.stderr)
        print(f"dashboard: {page}", flush=True)
        if args.serve_seconds:
            time.sleep(args.serve_seconds)
        else:
            print("serving until Ctrl-C", flush=True)
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
    return 0
