"""The dashboard on a large result: the job page of a 2,000-function-node job in Chromium.

Builds a finished job without training it: a random layered DAG of 2,000 function nodes
(``speed.py``'s graph), a dataset of 50 simulated rows, and result files written the way
``store_results`` writes them: the edge table of ``edge_pages.realistic_edges`` on the
graph's own node names (4M pairs, ``has_edge`` from the graph), a random ``W`` and metrics
with 200 of the held-out edges as validation edges. Serves the app with uvicorn in this
process, then:

1. times the API calls the job page makes (``--repeats`` each, median ms);
2. opens the job page in headless Chromium (``/usr/bin/chromium``, Playwright) and
   records when each part is shown, from navigation start: the first edge rows, the
   network view, the top-pairs list shown in place of the heatmap (over 500 nodes), the
   ROC curves, the score histogram; and the bytes the page fetched.

    python benchmarks/dashboard.py
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from common import write_json
from edge_pages import machine_note, realistic_edges

CHROMIUM = "/usr/bin/chromium"
# what the job page shows, as (name, selector of an element that appears when it is shown)
PARTS = {
    "edge rows": "#edges tbody tr",
    "network view": "svg.network .net-node",
    "top pairs (no heatmap)": "#weights-top li, #weights-top tr",
    "ROC curves": "#roc-plot",
    "score histogram": "#scores-plot",
}
IMAGES = {"ROC curves", "score histogram"}


def build_job(data_dir: Path, n_function: int) -> tuple[object, str]:
    """A service context over ``data_dir`` holding one succeeded job of ``n_function``
    function nodes; returns ``(app, job id)``."""
    from api.app import create_app
    from gsnn_edges.inference.edge_table import function_edge_mask
    from gsnn_edges.service import repository as repo
    from gsnn_edges.service.datasets import create_dataset
    from gsnn_edges.service.graphs import create_graph
    from gsnn_edges.service.jobs import submit_job
    from gsnn_edges.service.settings import Settings
    from gsnn_edges.simulate import random_layered_dag, simulate_frame

    settings = Settings(data_dir=data_dir, database_url=None, broker_url=None, api_keys="")
    app = create_app(settings, enqueue=lambda job_id: None, broker_ping=lambda: None)
    ctx = app.state.ctx
    width = n_function // 10
    bench = random_layered_dag(
        width, 10, width, edge_prob=2.0 / (width * 5), seed=0, hold_out_fraction=0.1
    )
    graph = bench.partial
    names = graph.node_names_dict["function"]
    g = create_graph(ctx, "local", "large", graph.to_json())
    frame = simulate_frame(bench.full, 50, seed=0)
    d = create_dataset(ctx, "local", g.id, frame.to_csv(index=False).encode(), "d.csv")
    validation = [list(e) for e in bench.held_out[:200]]
    spec = {"training": {"epochs": 1}, "validation": {"edges": validation}}
    job = submit_job(ctx, "local", g.id, d.id, spec).job
    edges = realistic_edges(n_function)
    assert list(edges.src_func.cat.categories) == names
    in_graph = function_edge_mask(graph, n_function)
    edges["has_edge"] = in_graph[edges.src_idx.to_numpy(), edges.dst_idx.to_numpy()]
    token = secrets.token_hex(16)
    key = lambda what: ctx.store.job_key(job.id, what, token)
    rng = np.random.default_rng(0)
    ctx.store.write_npy(key("weights"), rng.standard_normal((n_function,) * 2, np.float32))
    ctx.store.write_json(key("nodes"), names)
    ctx.store.write_edges(job.id, edges, token)
    history = [{"epoch": 1, "epochs": 1, "train_loss": 1.0, "aux_loss": 1.0}]
    metrics = {"best_epoch": 1, "history": history, "validation_edges": validation}
    ctx.store.write_json(key("metrics"), metrics)
    with ctx.db.session() as session:
        assert repo.claim_job(session, job.id, token, "cpu")
        assert repo.finish_job(session, job.id, token, "succeeded", device="cpu")
    return app, job.id


class Served:
    """``app`` under uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def time_api(url: str, job_id: str, repeats: int) -> dict[str, dict]:
    calls = {
        "GET job": ("GET", f"/v1/jobs/{job_id}", None),
        "GET edges page": ("GET", f"/v1/jobs/{job_id}/edges?limit=50", None),
        "GET network.json": ("GET", f"/v1/jobs/{job_id}/plots/network.json?top=25", None),
        "GET roc.svg": ("GET", f"/v1/jobs/{job_id}/plots/roc.svg", None),
        "GET scores.svg": ("GET", f"/v1/jobs/{job_id}/plots/scores.svg", None),
        "GET history.svg": ("GET", f"/v1/jobs/{job_id}/plots/history.svg", None),
    }
    out = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for name, (method, path, body) in calls.items():
            ms, size = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                resp = c.request(method, path, json=body)
                ms.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, (name, resp.status_code, resp.text[:300])
                size = len(resp.content)
            out[name] = {"median_ms": statistics.median(ms), "bytes": size}
            print(f"{name:<20} {out[name]['median_ms']:8.1f} ms  {size:>10,} bytes", flush=True)
    return out


def time_page(url: str, job_id: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)
        fetched: list[int] = []
        page.on("response", lambda r: fetched.append(int(r.headers.get("content-length", 0))))
        page.goto(f"{url}/ui/jobs/{job_id}")
        shown = {}
        for name, selector in PARTS.items():
            if name in IMAGES:
                page.wait_for_function(
                    "s => { const i = document.querySelector(s); "
                    "return i && !i.hidden && i.complete && i.naturalWidth > 0 }",
                    arg=selector,
                )
            else:
                page.locator(selector).first.wait_for()
            shown[name] = page.evaluate("performance.now()") / 1000
        shown["bytes fetched (content-length)"] = float(sum(fetched))
        browser.close()
    for name, value in shown.items():
        print(f"{name:<32} {value:8.2f}" + ("" if name.startswith("bytes") else " s"))
    return shown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2000, help="function nodes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/dashboard.json")
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="gsnn-dashboard-"))
    t0 = time.perf_counter()
    app, job_id = build_job(data_dir, args.nodes)
    print(f"built a {args.nodes}-node job in {time.perf_counter() - t0:.1f} s ({machine_note()})")
    with Served(app) as served:
        api = time_api(served.url, job_id, args.repeats)
        page = time_page(served.url, job_id)
    write_json(args.out, {"args": vars(args), "machine": machine_note(), "api": api, "page": page})


if __name__ == "__main__":
    main()
