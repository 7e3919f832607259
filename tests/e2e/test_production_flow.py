"""End to end through gsnn_edges.client against real `gsnn-edges` processes.

Two stacks run the same flow: production (`gsnn-edges api` + `gsnn-edges worker` on
PostgreSQL and Redis) and embedded (`gsnn-edges serve`: SQLite + filesystem broker),
both with API keys for two tenants. The job trains on the width-6 converging-tier
benchmark; half of the held-out edges select the checkpoint, the other half are scored
through ``evaluate``.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import redis

from gsnn_edges.client import ApiError, Client
from gsnn_edges.graph import FF, split_edges

import references
from proctools import ServiceProcess, free_port

# two stacks of real processes, each training a job end to end (~25 s on 2 cores); the
# limit covers a stack's start, the job's 120 s wait and the shutdown
pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(600)]

REDIS_DB = 9  # tests/worker uses 7
EPOCHS = 8
SPEC = {
    "model": {"channels": 4, "layers": 4, "dropout": 0.0},
    "regressor": {"lr": 1e-2, "dropout": 0.0},
    "training": {"epochs": EPOCHS, "lr": 1e-3, "seed": 0},
    "confirm": {"top": 10},
}
# the production stack confirms in chunk jobs (a Celery group through Redis), the
# embedded one in the job's own process (the default)
CONFIRM_CHUNKS = {"production": 2, "embedded": None}
# Test-half AUC of the default (hybrid) edge table for this spec is 0.967 (training seeds
# 0-7: 0.964-0.967, in process and through both stacks); 0.9 still fails a table that
# stops recovering edges, e.g. the magnitude W's (0.68 for this spec, seed 0).
MIN_TEST_AUC = 0.9


@pytest.fixture(scope="module")
def frame(benchmarks) -> pd.DataFrame:
    """1500 samples simulated on the full graph of the default ``bench``."""
    return benchmarks.frame(6, 1500, truth="full")


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {"a": f"key-a-{uuid.uuid4().hex}", "b": f"key-b-{uuid.uuid4().hex}"}


def _api_keys(keys: dict[str, str]) -> str:
    return ",".join(f"tenant-{t}:{k}" for t, k in keys.items())


@pytest.fixture(scope="module")
def production(tmp_path_factory, pg_url_module, redis_url, keys):
    """`gsnn-edges api` and `gsnn-edges worker` on PostgreSQL + Redis; yields the URL."""
    broker = f"{redis_url}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    tmp = tmp_path_factory.mktemp("production")
    settings = {
        "data_dir": tmp / "data",
        "database_url": pg_url_module,
        "broker_url": broker,
        "api_keys": _api_keys(keys),
        "queue_name": f"gsnn_e2e_{uuid.uuid4().hex[:6]}",
        "confirm_chunks": CONFIRM_CHUNKS["production"],
    }
    port = free_port()
    api = ServiceProcess(["api", "--port", str(port)], tmp / "api.log", **settings)
    worker = None
    try:
        api.wait_ready(f"http://127.0.0.1:{port}")  # migrated before the worker starts
        worker = ServiceProcess(["worker", "--loglevel", "info"], tmp / "worker.log", **settings)
        yield f"http://127.0.0.1:{port}", [api, worker]
    finally:
        for proc in filter(None, (worker, api)):
            proc.stop()
        redis.Redis.from_url(broker).flushdb()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, keys):
    """`gsnn-edges serve` (API + worker, SQLite + filesystem broker); yields the URL."""
    tmp = tmp_path_factory.mktemp("embedded")
    port = free_port()
    args = ["serve", "--port", str(port), "--data-dir", str(tmp / "data")]
    serve = ServiceProcess(args, tmp / "serve.log", api_keys=_api_keys(keys))
    try:
        serve.wait_ready(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", [serve]
    finally:
        serve.stop()


def _logs(procs: list[ServiceProcess]) -> str:
    return "\n".join(f"--- {p.log_path.name}\n{p.tail(3000)}" for p in procs)


def _trained_job(stack, keys, bench, frame, tmp_path, upload_as: str) -> tuple[str, dict]:
    """Upload CSV and Parquet data, train on ``upload_as``, wait; returns (job id, datasets)."""
    url, procs = stack
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    validation, _ = split_edges(bench.held_out, 0.5, seed=0)
    with Client(url, api_key=keys["a"]) as c:
        g = bench.partial.to_json()
        graph = c.create_graph(g["nodes"], g["edges"], name="bench6")
        assert graph["counts"]["function"] == 12 and c.get_graph(graph["id"])["id"] == graph["id"]
        datasets = {
            fmt: c.upload_dataset(graph["id"], tmp_path / f"data.{fmt}")
            for fmt in ("csv", "parquet")
        }
        assert [d["n_samples"] for d in datasets.values()] == [1500, 1500]
        job = c.submit_job(
            graph["id"], datasets[upload_as]["id"], **SPEC, validation={"edges": validation}
        )
        assert job["status"] in ("queued", "running")
        try:
            done = c.wait(job["id"], poll=0.25, timeout=120)
        except Exception as exc:  # attach the service logs
            raise AssertionError(f"{exc}\n{_logs(procs)}") from exc
    assert done["status"] == "succeeded" and done["progress"]["epoch"] == EPOCHS
    assert done["device"] == "cpu" and done["finished_at"]
    return job["id"], datasets


def _check_edges(c: Client, job_id: str, n_ff: int) -> pd.DataFrame:
    """Paging, CSV and every filter; returns all pairs (candidates_only=False)."""
    full = c.edges(job_id)
    paged = c.edges(job_id, page_size=7)
    csv = c.edges(job_id, format="csv")
    assert len(full) == 12 * 11 - n_ff  # off-diagonal pairs minus the graph's f -> f edges
    assert full["score"].is_monotonic_decreasing and not full["has_edge"].any()
    pd.testing.assert_frame_equal(paged, full)
    pd.testing.assert_frame_equal(csv, full, check_dtype=False)

    src, dst = full["src"].iloc[0], full["dst"].iloc[0]
    assert c.edges(job_id, src=src)[["src", "dst"]].equals(
        full.loc[full["src"] == src, ["src", "dst"]].reset_index(drop=True)
    )
    assert set(c.edges(job_id, dst=dst)["dst"]) == {dst}
    cut = float(full["score"].median())
    assert len(c.edges(job_id, min_score=cut)) == int((full["score"] >= cut).sum())
    q = float(full["q_value"].quantile(0.5))
    by_q = c.edges(job_id, max_q_value=q, format="csv")
    assert len(by_q) == int((full["q_value"] <= q).sum()) and (by_q["q_value"] <= q).all()

    every = c.edges(job_id, candidates_only=False)
    assert len(every) == 12 * 11 and int(every["has_edge"].sum()) == n_ff
    return every


def _check_results(c: Client, job_id: str, bench, chunks: int | None) -> dict:
    n_ff = len(bench.partial.edge_index_dict[FF][0])
    every = _check_edges(c, job_id, n_ff)
    # the 10 best candidates less reverses of better ones, and only they, were confirmed
    # (in chunks where asked)
    cand = every[~every["has_edge"]]
    pairs = references.confirmed_pairs(zip(cand["src"], cand["dst"], strict=True), 10)
    top = cand.set_index(["src", "dst"]).loc[pairs]
    assert top["confirmed"].all() and every["confirmed"].sum() == 10
    assert top["confirm_p_value"].between(0, 1).all() and top["effect"].notna().all()
    nodes, W = c.weights(job_id)
    assert W.shape == (12, 12) and nodes == bench.partial.node_names_dict["function"]
    assert np.isfinite(W).all() and np.abs(W).max() > 0

    metrics = c.metrics(job_id)
    assert len(metrics["history"]) == EPOCHS and 1 <= metrics["best_epoch"] <= EPOCHS
    assert metrics["confirm"]["n_confirmed"] == 10
    assert metrics["confirm"].get("chunks") == chunks
    assert metrics["validation"]["n_positives"] == 4
    # the default edge table is the hybrid scorer's; every scorer is reported beside it
    assert (
        metrics["scorer"] == "hybrid"
        and metrics["validation"] == (metrics["scorers"]["hybrid"]["validation"])
    )
    assert set(metrics["scorers"]) == {"hybrid", "score_test", "observed_baseline", "magnitude"}
    assert metrics["score_test"]["rows"] == 1200 and metrics["score_test"]["samples"] == "training"
    assert every["score"].notna().all()  # the hybrid scores every off-diagonal pair
    validation, _ = split_edges(bench.held_out, 0.5, seed=0)
    served = c.evaluate(job_id, validation)  # from the stored table, as the job scored it
    assert served["auc"] == pytest.approx(metrics["validation"]["auc"])

    _, test = split_edges(bench.held_out, 0.5, seed=0)
    result = c.evaluate(job_id, test)
    assert result["n_positives"] == len(test) == 3 and {"top@1", "top@3", "top@5"} <= set(result)
    assert result["auc"] >= MIN_TEST_AUC, result
    return result


def _check_isolation(url: str, keys: dict[str, str], job_id: str, datasets: dict) -> None:
    with Client(url, api_key=keys["b"]) as other:
        for call in (other.job, other.edges, other.metrics, other.cancel):
            with pytest.raises(ApiError) as info:
                call(job_id)
            assert info.value.status == 404, call
        with pytest.raises(ApiError, match="not found") as info:  # ids in a body: 422
            other.submit_job(datasets["csv"]["graph_id"], datasets["csv"]["id"])
        assert info.value.status == 422
        assert other.jobs()["total"] == 0


@pytest.mark.parametrize("stack_name, upload_as", [("production", "parquet"), ("embedded", "csv")])
def test_production_flow_recovers_held_out_edges(
    request, stack_name, upload_as, keys, bench, frame, tmp_path
):
    stack = request.getfixturevalue(stack_name)
    job_id, datasets = _trained_job(stack, keys, bench, frame, tmp_path, upload_as)
    with Client(stack[0], api_key=keys["a"]) as c:
        result = _check_results(c, job_id, bench, CONFIRM_CHUNKS[stack_name])
        assert c.jobs(status="succeeded")["total"] == 1
    print(f"{stack_name}: test-half AUC {result['auc']:.4f}, MRR {result['mrr']:.4f}")
    _check_isolation(stack[0], keys, job_id, datasets)
