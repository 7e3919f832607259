"""Results of a job trained for real by the worker-side job service."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gsnn_edges.client import unquote_csv_names
from gsnn_edges.service.results import result_key
from gsnn_edges.service.runner import run_job
from gsnn_edges.service.settings import LOCAL_TENANT
from gsnn_edges.spec import MIN_EFFECT, REFINE_EPOCHS

import references
from apihelpers import assert_problem, job_body, upload


@pytest.fixture
def done(client, queue, graph_id, dataset_id, bench):
    body = job_body(graph_id, dataset_id, validation={"edges": [list(e) for e in bench.held_out]})
    job = client.post("/v1/jobs", json=body).json()
    assert run_job(client.app.state.ctx, queue.pop()) == "succeeded"
    return job["id"]


def _assert_metrics_fully_typed(client, job_id):
    """Every key the worker stored is a field of MetricsOut (a key the schema does not
    declare would be dropped from the response, so the dump would differ)."""
    from api.schemas.results import MetricsOut

    ctx = client.app.state.ctx
    stored = ctx.store.read_json(result_key(ctx, LOCAL_TENANT, job_id, "metrics"))
    served = MetricsOut.model_validate(stored).model_dump(mode="json", exclude_unset=True)
    assert served == stored


def test_results_metrics_of_older_jobs_stay_readable():
    """Blocks written by earlier versions (no scorer_seconds, no n_scored, no rank
    metrics) validate instead of turning GET .../metrics into a 500."""
    from api.schemas.results import MetricsOut

    old = {
        "best_epoch": 3,
        "timing": {"train_seconds": 1.0, "aux_step_seconds": 0.2, "seconds_per_epoch": 0.1},
        "scorers": {"magnitude": {"validation": {"auc": 0.8}}},
        "score_test": {"rows": 10},
        "test": {"loss": 0.5},
    }
    out = MetricsOut.model_validate(old)
    assert out.timing.scorer_seconds is None and out.scorers["magnitude"].n_scored is None
    assert out.model_dump(mode="json", exclude_unset=True) == old


def test_results_edges_non_finite_filter_bounds_are_422(client, done):
    for name in ("min_score", "max_q_value", "max_confirm_q_value"):
        for value in ("nan", "inf"):
            resp = client.get(f"/v1/jobs/{done}/edges", params={name: value})
            assert_problem(resp, 422, name)


def test_results_edges_filters_and_csv(client, done, bench):
    page = client.get(f"/v1/jobs/{done}/edges", params={"limit": 5}).json()
    scores = [i["score"] for i in page["items"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert not any(i["has_edge"] for i in page["items"])
    everything = client.get(f"/v1/jobs/{done}/edges", params={"candidates_only": False}).json()
    assert everything["total"] == page["total"] + len(bench.partial.function_edges())
    only = client.get(f"/v1/jobs/{done}/edges", params={"src": "f1", "dst": "f7"}).json()
    assert [(i["src"], i["dst"]) for i in only["items"]] == [("f1", "f7")]
    csv = client.get(f"/v1/jobs/{done}/edges", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == (
        "src,dst,score,p_value,q_value,has_edge,confirmed,effect,confirm_p_value,confirm_q_value,"
        "equivalents,stability,score_se"
    )
    assert not any(i["confirmed"] or i["confirm_q_value"] is not None for i in page["items"])
    # one replica: no stability or standard error, null rather than made up
    assert all(i["stability"] is None and i["score_se"] is None for i in page["items"])
    assert len(lines) - 1 == page["total"]
    all_scores = [float(line.split(",")[2]) for line in lines[1:]]
    assert all_scores == sorted(all_scores, reverse=True)


def test_results_edges_of_jobs_stored_before_the_layout(client, done):
    """A job stored before the paging layout (edges.parquet alone, as the runner wrote
    it: no by-node copies, no footer counts) is served the same pages and CSV."""
    from gsnn_edges.service.edge_store import LAYOUT_KEY

    url = f"/v1/jobs/{done}/edges"
    asks = [
        {"limit": 1000},
        {"offset": 50, "limit": 7, "candidates_only": False},
        {"src": "f1"},
        {"dst": "f7", "candidates_only": False, "limit": 3, "offset": 2},
        {"src": "f2", "dst": "f1", "candidates_only": False},
        {"format": "csv"},
        {"format": "csv", "dst": "f3", "candidates_only": False},
    ]
    before = [client.get(url, params=ask).content for ask in asks]
    ctx = client.app.state.ctx
    key = result_key(ctx, LOCAL_TENANT, done, "edges")
    ctx.store.write_parquet(key, ctx.store.read_parquet(key))
    for what in ("edges_by_src", "edges_by_dst"):
        ctx.store.delete(result_key(ctx, LOCAL_TENANT, done, what))
    assert LAYOUT_KEY not in pq.read_schema(ctx.store.path(key)).metadata
    assert [client.get(url, params=ask).content for ask in asks] == before
    assert json.loads(before[3])["total"] == 11 and len(json.loads(before[3])["items"]) == 3


def test_results_edges_csv_of_a_job_not_done_is_409_before_streaming(client, graph_id, dataset_id):
    job = client.post("/v1/jobs", json=job_body(graph_id, dataset_id)).json()
    resp = client.get(f"/v1/jobs/{job['id']}/edges", params={"format": "csv"})
    assert_problem(resp, 409, "queued.*succeeded")


def test_results_edges_served_floats_round_trip(client, done):
    """A value read from the JSON page, sent back as a filter, selects its own row."""
    url = f"/v1/jobs/{done}/edges"
    items = client.get(url, params={"limit": 1000}).json()["items"]
    ctx = client.app.state.ctx
    stored = ctx.store.read_parquet(result_key(ctx, LOCAL_TENANT, done, "edges"))
    exact = stored.set_index(["src_func", "dst_func"])["q_value"]
    assert all(i["q_value"] == exact[(i["src"], i["dst"])] for i in items)  # bit-exact
    mid = items[len(items) // 2]
    got = client.get(url, params={"max_q_value": mid["q_value"], "limit": 1000}).json()
    assert got["total"] == sum(i["q_value"] <= mid["q_value"] for i in items)
    assert (mid["src"], mid["dst"]) in {(i["src"], i["dst"]) for i in got["items"]}
    by_score = client.get(url, params={"min_score": mid["score"], "limit": 1000}).json()
    assert (mid["src"], mid["dst"]) in {(i["src"], i["dst"]) for i in by_score["items"]}


@pytest.mark.parametrize("client_settings", [{}, {"confirm_chunks": 4}], ids=["own", "chunks"])
def test_results_confirmed_columns_and_filter(client, queue, graph_id, dataset_id):
    """A job with confirm.top, confirmed in the job's process (the default) or in 4
    chunk jobs: exactly the top candidates carry the confirmation's columns,
    max_confirm_q_value filters on them, and the status and metrics report the stage."""
    body = job_body(graph_id, dataset_id, confirm={"top": 6})
    job = client.post("/v1/jobs", json=body).json()
    assert job["spec"]["confirm"] == {
        "top": 6,
        "refine_epochs": REFINE_EPOCHS,
        "min_effect": MIN_EFFECT,
    }
    ctx = client.app.state.ctx
    chunks = ctx.settings.confirm_chunks
    if chunks == 1:
        assert run_job(ctx, queue.pop()) == "succeeded"
    else:
        assert run_job(ctx, queue.pop()) == "staged"  # the candidates went to chunk jobs
        staged = client.get(f"/v1/jobs/{job['id']}").json()
        assert staged["status"] == "running" and staged["replicas"] is None  # internal
        assert staged["progress"]["stage"] == "confirming"
        assert staged["progress"]["confirm_chunks"] == chunks == len(queue)
        assert staged["progress"]["confirm_chunks_done"] == 0
        ran = [run_job(ctx, queue.pop(0)) for _ in range(chunks)]  # the last one merges
        assert ran == ["succeeded"] * chunks
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["progress"]["stage"] == "confirming"
    assert done["progress"].get("confirm_chunks_done") == (None if chunks == 1 else chunks)
    url = f"/v1/jobs/{job['id']}/edges"
    items = client.get(url, params={"limit": 1000}).json()["items"]
    # the 6 best candidates less reverses of better ones, and only they
    want = set(references.confirmed_pairs(((i["src"], i["dst"]) for i in items), 6))
    conf = [i for i in items if (i["src"], i["dst"]) in want]
    rest = [i for i in items if (i["src"], i["dst"]) not in want]
    assert len(conf) == 6 and all(i["confirmed"] for i in conf)
    assert not any(i["confirmed"] for i in rest)
    assert all(0 <= i["confirm_p_value"] <= i["confirm_q_value"] <= 1 for i in conf)
    assert all(i["effect"] is None and i["confirm_p_value"] is None for i in rest)
    assert all(isinstance(i["equivalents"], int) and i["equivalents"] >= 0 for i in conf)
    assert all(i["equivalents"] is None for i in rest)
    cut = sorted(i["confirm_q_value"] for i in conf)[2]
    got = client.get(url, params={"max_confirm_q_value": cut}).json()["items"]
    assert {(i["src"], i["dst"]) for i in got} == {
        (i["src"], i["dst"]) for i in conf if i["confirm_q_value"] <= cut
    }
    metrics = client.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert metrics["confirm"]["n_confirmed"] == 6 and metrics["confirm"]["heldout_rows"] > 0
    assert metrics["confirm"].get("chunks") == (None if chunks == 1 else chunks)
    assert metrics["confirm"]["refine_epochs"] == REFINE_EPOCHS  # the spec's default
    assert metrics["confirm"]["base_test_loss"] > 0 and metrics["confirm"]["refine_seconds"] > 0
    named = {(e["src"], e["dst"]): e["n"] for e in metrics["confirm"]["equivalents"]}
    assert named == {
        (i["src"], i["dst"]): i["equivalents"]
        for i in items[:6]
        if i["confirm_q_value"] < 0.1 and i["equivalents"]
    }
    _assert_metrics_fully_typed(client, job["id"])


def test_results_weights_metrics_evaluate(client, done, bench):
    w = client.get(f"/v1/jobs/{done}/weights").json()
    raw = np.load(io.BytesIO(client.get(f"/v1/jobs/{done}/weights?format=npy").content))
    assert raw.shape == (len(w["nodes"]),) * 2
    np.testing.assert_allclose(np.array(w["weights"]), raw, rtol=1e-6)
    metrics = client.get(f"/v1/jobs/{done}/metrics").json()
    assert len(metrics["history"]) == 2 and metrics["validation"]["n_positives"] == 7
    _assert_metrics_fully_typed(client, done)
    body = {"positive_edges": [list(e) for e in bench.held_out], "top_k": [1, 5]}
    got = client.post(f"/v1/jobs/{done}/evaluate", json=body).json()
    assert got["n_positives"] == 7 and "top@5" in got
    params = {"candidates_only": False, "limit": 1000}
    every = pd.DataFrame(client.get(f"/v1/jobs/{done}/edges", params=params).json()["items"])
    assert got["auc"] == pytest.approx(references.table_auc(every, bench.held_out))
    assert got["auc"] == pytest.approx(metrics["validation"]["auc"])  # the same edges
    bad = {"positive_edges": [["f1", "nope"]]}
    assert_problem(client.post(f"/v1/jobs/{done}/evaluate", json=bad), 422, "nope")
    job = client.get(f"/v1/jobs/{done}").json()
    assert job["status"] == "succeeded" and job["progress"]["epoch"] == 2
    assert metrics["best_epoch"] in (1, 2) and metrics["device"] == job["device"]
    assert_problem(client.post(f"/v1/jobs/{done}/cancel"), 409, "already succeeded")


def test_results_weights_non_finite_are_null(client, done):
    ctx = client.app.state.ctx
    key = result_key(ctx, LOCAL_TENANT, done, "weights")
    w = ctx.store.read_npy(key)
    w[0, 1], w[1, 0] = np.nan, np.inf
    ctx.store.write_npy(key, w)
    got = client.get(f"/v1/jobs/{done}/weights").json()["weights"]
    assert got[0][1] is None and got[1][0] is None
    assert got[0][0] == pytest.approx(float(w[0, 0]))


TRICKY = {"f0": "=HYPERLINK(1)", "f1": "-f1", "f2": "@f2", "f3": "'f3", "f4": "+f4"}


def test_results_csv_export_cannot_run_formulas(client, queue, bench, frame):
    """Node names a spreadsheet would run as formulas come out of the CSV export quoted,
    JSON keeps them as they are, and the client's unquoting restores every name."""
    text = json.dumps(bench.partial.to_json())
    for old, new in TRICKY.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    gid = client.post("/v1/graphs", json=json.loads(text)).json()["id"]
    did = upload(client, gid, frame.to_csv(index=False).encode()).json()["id"]
    job = client.post("/v1/jobs", json=job_body(gid, did)).json()
    assert run_job(client.app.state.ctx, queue.pop()) == "succeeded"
    url = f"/v1/jobs/{job['id']}/edges"
    csv_text = client.get(url, params={"format": "csv", "candidates_only": False}).text
    cells = [c for row in list(csv.reader(io.StringIO(csv_text)))[1:] for c in row[:2]]
    assert not any(c[:1] in "=+-@" for c in cells)
    assert {"'=HYPERLINK(1)", "'-f1", "'@f2", "''f3", "'+f4"} <= set(cells)
    items = client.get(url, params={"limit": 1000, "candidates_only": False}).json()["items"]
    served = pd.read_csv(io.StringIO(csv_text))
    back = unquote_csv_names(served)
    assert list(back.src) == [i["src"] for i in items] and list(back.dst) == [
        i["dst"] for i in items
    ]
    assert set(TRICKY.values()) <= set(back.src)


def test_results_large_weights_point_to_npy(tmp_path, queue, bench, frame):
    """W over GSNN_EDGES_MAX_JSON_WEIGHTS entries is a 422 naming ?format=npy (the node
    list decides, W is not read); the raw array still comes."""
    from apihelpers import make_client

    with make_client(tmp_path, queue, max_json_weights=100) as c:  # 12 x 12 = 144 > 100
        gid = c.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        did = upload(c, gid, frame.to_csv(index=False).encode()).json()["id"]
        job = c.post("/v1/jobs", json=job_body(gid, did)).json()
        assert run_job(c.app.state.ctx, queue.pop()) == "succeeded"
        body = assert_problem(c.get(f"/v1/jobs/{job['id']}/weights"), 422, r"format=npy")
        assert "GSNN_EDGES_MAX_JSON_WEIGHTS" in body["detail"]
        raw = c.get(f"/v1/jobs/{job['id']}/weights", params={"format": "npy"})
        assert np.load(io.BytesIO(raw.content)).shape == (12, 12)


def test_results_score_histogram_and_network_look_the_job_up_once(client, done):
    """Plots that read several files of a job find its published attempt with one query
    (they used to look it up again for their top rows)."""
    from sqlalchemy import event

    engine = client.app.state.ctx.db.engine
    statements: list[str] = []
    listen = lambda conn, cursor, sql, *rest: statements.append(sql)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        counts = {}
        for path in ("plots/scores.svg", "plots/network.json"):
            statements.clear()
            assert client.get(f"/v1/jobs/{done}/{path}").status_code == 200, path
            counts[path] = sum(s.lstrip().upper().startswith("SELECT") for s in statements)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert counts == {"plots/scores.svg": 1, "plots/network.json": 1}
