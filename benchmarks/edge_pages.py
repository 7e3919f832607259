"""Edge pages at 2,000 function nodes (4M pairs): GET /v1/jobs/{id}/edges through the app.

Builds a 2,000-function-node edge table the way a job does (``inference.edge_table`` and
``with_confirmation``, hybrid-like scores: see :func:`realistic_edges`), publishes it as a
succeeded job's result and times pages through the real app (FastAPI TestClient, SQLite,
no network) in three configurations:

- **before**: the code before the paging layout (the whole table read and masked per
  request, :func:`old_edge_page`) on the file the runner wrote then (``write_parquet``);
- **old file**: today's code on that same old file (jobs stored before the layout);
- **after**: today's code on the layout ``store_results`` writes now (``write_edges``).

Every configuration must answer the same bytes (checked on the first response of each case).
A last case runs ``max_q_value`` on a table whose p-values do not follow the scores (the
worst case: every row group's q-values must be read to count).

    python benchmarks/edge_pages.py                       # 2,000 nodes, 50 requests
    python benchmarks/edge_pages.py --nodes 500 --requests 20 --before-requests 5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from gsnn_edges.inference.confirm import EdgeConfirmation, with_confirmation
from gsnn_edges.inference.edge_table import edge_table

from common import write_json


# --------------------------------------------------------------------------- the table
def realistic_edges(n: int, seed: int = 0, p_follow_scores: bool = True) -> pd.DataFrame:
    """A job's edge table at ``n`` function nodes, shaped like the hybrid scorer's.

    Pairs into observed targets (30%) score ``1.5 + atan(z)/pi``, the others
    ``0.5 + atan(z)/pi`` (two tiers); ``z ~ N(0, 1)`` plus 3 on 1% of pairs (signal).
    p-values: the score test's ``sf(z)`` on tier 0, a t-test's with a per-target degrees
    of freedom on tier 1 (so q is close to, not exactly, monotone in the score); with
    ``p_follow_scores`` false the same p-values sit on random pairs. Five latent
    targets are unscored (NaN, sorted last). About 3 graph edges per node; the 50 best
    candidates carry a confirmation.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, n)) + 3.0 * (rng.random((n, n)) < 0.01)
    observed = rng.random(n) < 0.3
    dof = rng.integers(20, 200, n)
    scores = observed[None, :] + 0.5 + np.arctan(z) / np.pi
    p = np.where(observed[None, :], stats.t.sf(z, dof[None, :]), stats.norm.sf(z))
    if not p_follow_scores:  # the same p-values, on other pairs
        p = rng.permutation(p.ravel()).reshape(n, n)
    unscored = rng.choice(np.flatnonzero(~observed), 5, replace=False)
    scores[:, unscored], p[:, unscored] = np.nan, np.nan
    in_graph = np.zeros((n, n), dtype=bool)
    in_graph[rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)] = True
    edges = edge_table(scores, [f"f{i}" for i in range(n)], in_graph, p)
    top = edges[~edges["has_edge"]].head(50)
    conf_p = np.sort(rng.uniform(0, 0.3, len(top)))
    confirmation = EdgeConfirmation(
        src=top["src_idx"].to_numpy(),
        dst=top["dst_idx"].to_numpy(),
        effect=rng.standard_normal(len(top)),
        p_values=conf_p,
        q_values=np.minimum(conf_p * 3, 1.0),
        theta=np.zeros((len(top), 1)),
        n_train_rows=1_000,
        n_heldout_rows=250,
        equivalent=rng.random((len(top), n)) < 0.01,
    )
    return with_confirmation(edges, confirmation)


# --------------------------------------------------------------------------- before
def old_edge_page(ctx, tenant, job_id, q, offset, limit):
    """The service before the layout (``results.query_edges`` + the route's slice and
    ``to_dict``): the whole table read and masked on every request."""
    from gsnn_edges.edge_columns import COLUMN_DEFAULTS, EDGE_COLUMNS
    from gsnn_edges.service.results import result_key

    frame = ctx.store.read_parquet(result_key(ctx, tenant, job_id, "edges"))
    frame = frame.rename(columns={"src_func": "src", "dst_func": "dst"})
    frame = frame.assign(**{k: v for k, v in COLUMN_DEFAULTS.items() if k not in frame.columns})
    keep = np.ones(len(frame), dtype=bool)
    if q.src is not None:
        keep &= (frame["src"] == q.src).to_numpy()
    if q.dst is not None:
        keep &= (frame["dst"] == q.dst).to_numpy()
    if q.min_score is not None:
        keep &= (frame["score"] >= q.min_score).to_numpy()
    if q.max_q_value is not None:
        keep &= (frame["q_value"] <= q.max_q_value).to_numpy()
    if q.max_confirm_q_value is not None:
        keep &= (frame["confirm_q_value"] <= q.max_confirm_q_value).to_numpy()
    if q.candidates_only:
        keep &= ~frame["has_edge"].to_numpy(bool)
    frame = frame.loc[keep, list(EDGE_COLUMNS)]
    return len(frame), frame.iloc[offset : offset + limit].to_dict("records")


# --------------------------------------------------------------------------- the app
def make_client(data_dir: Path):
    """The app in process on SQLite, loopback caller, access logs off (not measured)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from gsnn_edges.service.settings import Settings

    settings = Settings(
        data_dir=data_dir, database_url=None, broker_url=None, api_keys="", log_level="WARNING"
    )
    app = create_app(
        settings, enqueue=lambda job_id: None, broker_ping=lambda: None, run_reaper=False
    )
    return TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000))


def published_job(client, edges: pd.DataFrame, layout: str) -> tuple[str, float]:
    """A succeeded job (tiny graph, never trained) whose published edge table is
    ``edges``, stored as ``layout`` (``old``: the runner's former ``write_parquet``;
    ``new``: ``write_edges``). Returns the job id and the seconds the write took."""
    from gsnn_edges.service import repository as repo
    from gsnn_edges.simulate import converging_tier_graph, simulate_frame

    bench = converging_tier_graph(3)
    gid = client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
    csv = simulate_frame(bench.partial, 50, seed=0).to_csv(index=False).encode()
    files = {"file": ("d.csv", csv, "text/csv")}
    did = client.post("/v1/datasets", data={"graph_id": gid}, files=files).json()["id"]
    body = {"graph_id": gid, "dataset_id": did, "training": {"epochs": 1}}
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    ctx, token = client.app.state.ctx, f"bench-{layout}"
    with ctx.db.session() as s:
        assert repo.claim_job(s, job_id, token, "cpu")
    t0 = time.perf_counter()
    if layout == "old":
        ctx.store.write_parquet(ctx.store.job_key(job_id, "edges", token), edges)
    else:
        ctx.store.write_edges(job_id, edges, token)
    seconds = time.perf_counter() - t0
    with ctx.db.session() as s:
        assert repo.finish_job(s, job_id, token, "succeeded", device="cpu")
    return job_id, seconds


# --------------------------------------------------------------------------- timing
def time_case(client, job_id: str, params: dict, n: int) -> tuple[list[float], bytes]:
    """Seconds of ``n`` GET .../edges (after one warm-up) and the first body."""
    url = f"/v1/jobs/{job_id}/edges"
    first = client.get(url, params=params)
    assert first.status_code == 200, first.text
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = client.get(url, params=params)
        out.append(time.perf_counter() - t0)
        assert resp.status_code == 200
    return out, first.content


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
    }


def cases(edges: pd.DataFrame) -> dict[str, dict]:
    """The measured requests (default limit 100, candidates only)."""
    n = len(edges["src_func"].cat.categories)
    return {
        "first page": {},
        "first page, limit 1000": {"limit": 1000},
        "deep page (offset 1,000,000)": {"offset": min(1_000_000, len(edges) // 4)},
        "src filter": {"src": f"f{n // 2 + 17}"},
        "dst filter": {"dst": f"f{n // 3}"},
        "max_q_value 0.05": {"max_q_value": 0.05},
        "min_score (top 10%)": {"min_score": float(edges["score"].iloc[len(edges) // 10])},
    }


def machine_note() -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"{platform.node()}, {platform.machine()}, load average {' '.join(load)}"


CONFIGS = ("before", "old file", "after")
COLUMNS = f"{'case':<42}" + "".join(f"{c + ' p50/p95 ms':>22}" for c in CONFIGS) + f"{'total':>11}"


def measure(client, jobs: dict[str, str], params: dict, args: argparse.Namespace) -> dict:
    """One case in each configuration of ``jobs`` (config -> job id); every configuration
    must answer the same body."""
    from gsnn_edges.service import results

    row, bodies = {"params": params}, {}
    for config, job_id in jobs.items():
        saved = results.edge_page
        if config == "before":
            results.edge_page = old_edge_page  # the route looks it up per request
        try:
            n = args.requests if config == "after" else args.before_requests
            seconds, bodies[config] = time_case(client, job_id, params, n)
        finally:
            results.edge_page = saved
        row[config] = summary(seconds)
    assert len(set(bodies.values())) == 1, f"{params}: the configurations answer differently"
    row["total"] = json.loads(bodies["after"])["total"]
    return row


def print_row(name: str, row: dict) -> None:
    cells = [
        f"{row[c]['p50_ms']:.1f} / {row[c]['p95_ms']:.1f}" if c in row else "-" for c in CONFIGS
    ]
    print(f"{name:<42}" + "".join(f"{c:>22}" for c in cells) + f"{row['total']:>11,}")


def run(args: argparse.Namespace) -> dict:
    edges = realistic_edges(args.nodes, seed=0)
    worst = realistic_edges(args.nodes, seed=1, p_follow_scores=False)
    print(f"{args.nodes} function nodes: {len(edges):,} pairs; {machine_note()}")
    out: dict = {"nodes": args.nodes, "pairs": len(edges), "machine": machine_note()}
    with tempfile.TemporaryDirectory() as tmp, make_client(Path(tmp)) as client:
        written = {
            layout: published_job(client, table, layout)
            for layout, table in (("old", edges), ("new", edges), ("worst", worst))
        }
        mb = lambda job: sum(p.stat().st_size for p in Path(tmp).rglob(f"jobs/{job}/*/*")) / 1e6
        out["write"] = {k: {"seconds": s, "mb": mb(j)} for k, (j, s) in written.items()}
        for layout in ("old", "new"):
            print(
                f"write ({layout}): {out['write'][layout]['seconds']:.2f} s, "
                f"{out['write'][layout]['mb']:.0f} MB"
            )
        old_id, new_id, worst_id = (written[k][0] for k in ("old", "new", "worst"))
        todo = {
            name: (params, {"before": old_id, "old file": old_id, "after": new_id})
            for name, params in cases(edges).items()
        }
        todo["max_q_value 0.05, p independent of score"] = (
            {"max_q_value": 0.05},
            {"after": worst_id},
        )
        print(COLUMNS)
        out["rows"] = {}
        for name, (params, jobs) in todo.items():
            out["rows"][name] = measure(client, jobs, params, args)
            print_row(name, out["rows"][name])
    out["machine_after"] = machine_note()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2_000)
    ap.add_argument("--requests", type=int, default=50, help="timed requests per case, after")
    ap.add_argument("--before-requests", type=int, default=50, help="... before and old file")
    ap.add_argument("--out", default="benchmarks/results/edge_pages.json")
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    payload = run(args)
    payload["git"] = rev.stdout.strip()
    write_json(args.out, payload)


if __name__ == "__main__":
    main()
