"""Load: status polls and edge pages at 200 requests/s for 60 s while a job trains (locust).

Starts ``gsnn-edges serve`` (one uvicorn API process plus the Celery worker, SQLite and the
filesystem broker) on a free port in a temporary data dir, then:

1. a finished job with a 2,000-function-node edge table: a tiny job trained for real, its
   published edge table replaced by ``edge_pages.realistic_edges(2000)`` written the way
   ``store_results`` writes it (``ArtifactStore.write_edges``);
2. a job that trains through the whole run (the benchmark graph, 2,000 samples, 100,000
   epochs, ``--worker-threads`` torch threads; cancelled afterwards); ``--idle``: none;
3. locust, headless (``benchmarks/locustfile.py``): 100 ``ApiUser`` at 2 requests/s each
   (half status polls of the training job, half edge pages of the finished one), one
   ``HealthUser`` (``/healthz``, 10/s) and, with ``--heavy``, one ``ExportUser``
   streaming whole-table CSV exports back to back; ``--warmup`` seconds of load first
   (not measured), then ``--seconds`` measured.

Prints p50/p95/p99/max and errors per request name, the CPU share the API process and
the worker used, and writes JSON.

    pip install -e '.[load]'
    python benchmarks/load.py                 # 60 s, 200 requests/s, a job training
    python benchmarks/load.py --idle          # the same, nothing training
    python benchmarks/load.py --heavy         # plus CSV exports
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from common import write_json
from edge_pages import machine_note, realistic_edges

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path, threads: int) -> subprocess.Popen:
    """``gsnn-edges serve`` in its own process group, none of our GSNN_EDGES_* settings,
    ``threads`` OpenMP threads (the training job's torch threads)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSNN_EDGES_")}
    env["OMP_NUM_THREADS"] = str(threads)
    argv = [sys.executable, "-m", "gsnn_edges.cli", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--data-dir", str(data_dir)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_for(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def submit(client: httpx.Client, bench, n_samples: int, epochs: int) -> str:
    """Graph, dataset and job of ``bench``; the job's id."""
    from gsnn_edges.simulate import simulate_frame

    gid = client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
    csv = simulate_frame(bench.partial, n_samples, seed=0).to_csv(index=False).encode()
    files = {"file": ("d.csv", csv, "text/csv")}
    did = client.post("/v1/datasets", data={"graph_id": gid}, files=files).json()["id"]
    body = {"graph_id": gid, "dataset_id": did, "training": {"epochs": epochs}}
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def finished_job(client: httpx.Client, data_dir: Path, nodes: int) -> str:
    """A succeeded job whose published edge table is ``realistic_edges(nodes)``."""
    from gsnn_edges.service.artifacts import ArtifactStore
    from gsnn_edges.simulate import converging_tier_graph

    job_id = submit(client, converging_tier_graph(3), 100, epochs=1)
    status = lambda: client.get(f"/v1/jobs/{job_id}").json()["status"]
    wait_for(lambda: status() == "succeeded", "the small job")
    (attempt,) = {p.parent.name for p in data_dir.glob(f"artifacts/jobs/{job_id}/*/edges.parquet")}
    ArtifactStore(data_dir / "artifacts").write_edges(job_id, realistic_edges(nodes), attempt)
    return job_id


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds so far of the API process (``serve`` runs uvicorn in its own process)
    and of its children (the Celery worker and the job it runs)."""
    import psutil  # a dependency of locust

    api = psutil.Process(pid)
    children = api.children(recursive=True)
    busy = lambda p: sum(p.cpu_times()[:2])
    return {"api": busy(api), "worker": sum(busy(c) for c in children if c.is_running())}


def run_locust(args: argparse.Namespace, url: str, jobs: dict, samples: Path) -> int:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
    users = ["ApiUser", "HealthUser", *(["ExportUser"] if args.heavy else [])]
    argv = [
        locust,
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--only-summary",
        "-u",
        str(args.users + len(users) - 1),
        "-r",
        str(args.users),
        "-t",
        f"{args.seconds + args.warmup}s",
        "--warmup",
        str(args.warmup),
        "--host",
        url,
        "--status-job",
        jobs["training"],
        "--edges-job",
        jobs["finished"],
        "--per-user-rps",
        str(args.rps / args.users),
        "--samples-out",
        str(samples),
        *users,
    ]
    return subprocess.run(argv, cwd=HERE).returncode


def summarise(samples: dict, errors: dict, seconds: float) -> dict:
    out = {}
    for name, times in sorted(samples.items()):
        ms = np.asarray(times)
        out[name] = {
            "requests": len(ms),
            "per_s": len(ms) / seconds,
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
            "errors": int(errors.get(name, 0)),
        }
    return out


def print_table(rows: dict) -> None:
    head = ["request", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"]
    print(f"{head[0]:<26}" + "".join(f"{h:>10}" for h in head[1:]))
    for name, r in rows.items():
        cells = [
            r["requests"],
            f"{r['per_s']:.1f}",
            *(f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            r["errors"],
        ]
        print(f"{name:<26}" + "".join(f"{c:>10}" for c in cells))


def training_job(client: httpx.Client, args: argparse.Namespace, finished: str):
    """The job status polls go to and a function giving its epoch: a job training through
    the run (started and past its first epoch), or with ``--idle`` the finished one."""
    from gsnn_edges.simulate import converging_tier_graph

    if args.idle:
        return finished, lambda: 0
    job_id = submit(client, converging_tier_graph(25), 2_000, 100_000)
    epoch = lambda: (client.get(f"/v1/jobs/{job_id}").json()["progress"] or {}).get("epoch") or 0
    wait_for(lambda: epoch() >= 1, "the training job's first epoch")
    return job_id, epoch


def run(args: argparse.Namespace) -> dict:
    out: dict = {"machine_before": machine_note(), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, port = Path(tmp) / "data", free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(args.server_log or Path(tmp) / "server.log")
        server = start_server(data_dir, port, log, args.worker_threads)
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                wait_for(lambda: client.get("/healthz").status_code == 200, "the server")
                jobs = {"finished": finished_job(client, data_dir, args.nodes)}
                jobs["training"], epoch = training_job(client, args, jobs["finished"])
                epoch0, samples = epoch(), Path(tmp) / "samples.json"
                cpu0 = cpu_seconds(server.pid)
                out["locust_exit"] = run_locust(args, url, jobs, samples)
                out["cpu_share"] = {  # of one core, over warm-up and measured window
                    k: (v - cpu0[k]) / (args.seconds + args.warmup)
                    for k, v in cpu_seconds(server.pid).items()
                }
                out["training_epochs_during_run"] = epoch() - epoch0
                client.post(f"/v1/jobs/{jobs['training']}/cancel")
            recorded = json.loads(samples.read_text())
            out["rows"] = summarise(recorded["samples"], recorded["errors"], args.seconds)
            out["task_exceptions"] = recorded["task_exceptions"]
            out["exported_rows"] = recorded["exported_rows"]
        finally:
            stop_server(server)
    out["machine_after"] = machine_note()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="measured seconds")
    ap.add_argument("--warmup", type=int, default=10, help="seconds of load not measured")
    ap.add_argument("--rps", type=float, default=200.0, help="status + edge requests per s")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=2_000, help="function nodes of the edges")
    ap.add_argument("--heavy", action="store_true", help="plus back-to-back CSV exports")
    ap.add_argument("--idle", action="store_true", help="no job trains (a baseline)")
    ap.add_argument("--worker-threads", type=int, default=1, help="torch threads of training")
    ap.add_argument("--server-log", help="keep the server's log (one JSON line a request)")
    ap.add_argument("--out", default="benchmarks/results/load.json")
    args = ap.parse_args()
    out = run(args)
    cpu = ", ".join(f"{k} {v:.0%}" for k, v in out["cpu_share"].items())
    print(
        f"{out['machine_before']} -> {out['machine_after']}; "
        f"training epochs during the run: {out['training_epochs_during_run']}; "
        f"CPU (share of one core): {cpu}; task exceptions: {out['task_exceptions']}; "
        f"CSV exports finished: {len(out['exported_rows'])} {set(out['exported_rows'])} rows"
    )
    print_table(out["rows"])
    write_json(args.out, out)


if __name__ == "__main__":
    main()
