"""The dashboard's newer /v1 endpoints: the W heatmap, ROC / precision-recall curves,
the network view's data and a graph's degrees and drawing - content checked against the
stored results, names escaped, tenants isolated, sizes bounded, problems documented."""

from __future__ import annotations

import numpy as np
import pytest
from test_plots import SVG_NS, parse_svg, texts

from api.ui.heatmap import colour_bins, row_runs
from gsnn_edges.metrics import roc_auc
from gsnn_edges.service.plot_data import ranking_curves
from gsnn_edges.service.plot_graph import layered_layout

JOB_PLOTS = ("weights.svg", "roc.svg", "network.json")


# ------------------------------------------------------------------ pure functions
def brute_force_curves(scores, labels):
    """ROC and PR by sweeping every distinct threshold, one at a time (the reference)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    points = [(0.0, 0.0, 1.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        chosen = s >= t
        tp = np.sum(chosen & labels)
        fp = np.sum(chosen & ~labels)
        points.append((fp / np.sum(~labels), tp / np.sum(labels), tp / (tp + fp)))
    return np.array(points)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_result_plots_ranking_curves_match_a_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=60), 1)  # ties between and within classes
    labels = rng.uniform(size=60) < 0.2
    scores[labels] += 0.5
    scores[:3] = np.nan  # unscored pairs rank last
    curves = ranking_curves(scores, labels)
    ref = brute_force_curves(scores, labels)
    # every kept point lies on the reference curve, and the kept polyline passes
    # through every reference point (collinear points between turns are dropped)
    kept = np.stack([curves.fpr, curves.tpr, curves.precision], 1)
    assert all(np.isclose(ref, p).all(1).any() for p in kept)
    for fpr, tpr, _ in ref:
        on = np.isclose(curves.fpr, fpr)  # a vertical step: one kept point at that fpr
        assert np.isclose(curves.tpr[on], tpr).any() or np.isclose(
            np.interp(fpr, curves.fpr, curves.tpr), tpr
        )
    ranked_last = np.where(np.isnan(scores), -np.inf, scores)  # as the score metrics do
    np.testing.assert_allclose(curves.auc, roc_auc(ranked_last, labels))
    recall_steps = np.diff(ref[:, 1])
    np.testing.assert_allclose(curves.average_precision, np.sum(recall_steps * ref[1:, 2]))
    assert (curves.n_positives, curves.n_negatives) == (labels.sum(), (~labels).sum())


def test_result_plots_ranking_curves_need_both_classes():
    with pytest.raises(ValueError, match="need positives and negatives, got 0 and 3"):
        ranking_curves(np.ones(3), np.zeros(3, bool))


def test_result_plots_heatmap_runs_rebuild_the_bins():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(7, 9))
    weights[2, 3] = np.nan
    bins, scale = colour_bins(weights)
    assert bins[2, 3] == 0 and np.abs(bins).max() <= 5
    np.testing.assert_allclose(scale, np.percentile(np.abs(weights[~np.isnan(weights)]), 99))
    row, col, length, value = row_runs(bins)
    rebuilt = np.full(bins.shape, 99)
    for r, c, n, v in zip(row, col, length, value, strict=True):
        rebuilt[r, c : c + n] = v
    np.testing.assert_array_equal(rebuilt, bins)
    assert (value[1:] != value[:-1])[row[1:] == row[:-1]].all()  # runs are maximal


def test_result_plots_layered_layout_orders_columns():
    pos = layered_layout(np.array([0, 0, 1, 1, 2]), np.array([[0, 1, 2], [3, 2, 4]]))
    assert pos[:, 0].tolist() == [0, 0, 0.5, 0.5, 1]
    assert pos[1, 1] > pos[0, 1]  # stored order within the first column
    assert pos[3, 1] < pos[2, 1]  # node 3 follows node 0 (on top), node 2 node 1


# ------------------------------------------------------------------ W heatmap
def test_result_plots_weights_heatmap_draws_every_cell_in_topological_order(world):
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/weights.svg")
        stored = c.get(f"/v1/jobs/{world.succeeded}/weights").json()
    root = parse_svg(resp)
    n = len(stored["nodes"])
    matrix = next(e for e in root.iter(f"{SVG_NS}svg") if e.get("class") == "matrix")
    assert matrix.get("viewBox") == f"0 0 {n} {n}"
    # the drawn runs cover exactly the cells whose colour is not the background
    bins, _ = colour_bins(np.array(stored["weights"], dtype=float))
    cells = 0
    for path in matrix.iter(f"{SVG_NS}path"):
        if (path.get("class") or "").startswith("bin"):
            cells += sum(int(seg.split("h")[1]) for seg in path.get("d").split("M")[1:])
    assert cells == np.count_nonzero(bins)
    # rows are in a topological order: every graph edge goes down-right of the diagonal
    dots = next(e for e in root.iter(f"{SVG_NS}path") if e.get("class") == "graph-edges")
    pairs = [tuple(map(int, seg.split("h")[0].split())) for seg in dots.get("d").split("M")[1:]]
    assert pairs and all(col > row for col, row in pairs)  # "M col row": source row first
    labels = [t for t in texts(root) if world.hostile in t]
    assert labels and "<script>" not in resp.text


def test_result_plots_weights_heatmap_refuses_large_jobs(world, monkeypatch):
    from gsnn_edges.service import plot_data

    monkeypatch.setattr(plot_data.weights_heatmap, "__defaults__", (2,))
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/weights.svg")
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "the heatmap draws W for up to 2" in resp.json()["detail"]
    assert resp.json()["errors"][0]["loc"] == ["path", "job_id"]


# ------------------------------------------------------------------ ROC
def test_result_plots_roc_ranks_the_validation_edges(world):
    with world.server.client("a") as c:
        root = parse_svg(c.get(f"/v1/jobs/{world.succeeded}/plots/roc.svg"))
        metrics = c.get(f"/v1/jobs/{world.succeeded}/metrics").json()
    lines = {e.get("class"): e.get("points") for e in root.iter(f"{SVG_NS}polyline")}
    assert set(lines) == {"roc", "pr"}
    note = next(t for t in texts(root) if "validation edges ranked" in t)
    assert note.startswith(f"{len(world.validation)} validation edges")
    auc = next(t for t in texts(root) if t.startswith("ROC (AUC"))
    assert auc == f"ROC (AUC {metrics['validation']['auc']:.3g})"


def test_result_plots_roc_without_validation_edges_is_409(world):
    with world.server.client("b") as c:
        job = world.jobs["b"][0]
        resp = c.get(f"/v1/jobs/{job}/plots/roc.svg")
    assert resp.status_code == 409  # queued: not ready; the message says why
    assert "results exist only once it has succeeded" in resp.json()["detail"]


# ------------------------------------------------------------------ network view
def test_result_plots_network_holds_the_top_candidates_and_their_graph(world):
    with world.server.client("a") as c:
        hood = c.get(f"/v1/jobs/{world.succeeded}/plots/network.json", params={"top": 5})
        top = c.get(f"/v1/jobs/{world.succeeded}/edges", params={"limit": 5}).json()["items"]
        graph = c.get(f"/v1/graphs/{world.graph_id}", params={"include": "content"}).json()
    assert hood.status_code == 200, hood.text
    body = hood.json()
    names = [n["name"] for n in body["nodes"]]
    drawn = [(names[e["src"]], names[e["dst"]], e["score"]) for e in body["candidates"]]
    assert drawn == [(i["src"], i["dst"], i["score"]) for i in top]
    edges = {tuple(e) for e in graph["content"]["edges"]}
    shown = {(names[a], names[b]) for a, b in body["graph_edges"]}
    assert shown == {(s, d) for s, d in edges if s in names and d in names}
    assert all(0 <= n["x"] <= 1 and 0 <= n["y"] <= 1 for n in body["nodes"])
    for a, b in body["graph_edges"]:  # layered: graph edges go to a later level
        assert body["nodes"][a]["level"] < body["nodes"][b]["level"]


def test_result_plots_network_top_is_bounded(world):
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/network.json", params={"top": 101})
    assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "top"]


@pytest.mark.parametrize("plot", JOB_PLOTS)
def test_result_plots_of_another_tenants_job_are_404(world, plot):
    with world.server.client("b") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/{plot}")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("plot", JOB_PLOTS)
def test_result_plots_before_success_are_409(world, plot):
    with world.server.client("a") as c:
        assert c.get(f"/v1/jobs/{world.queued}/plots/{plot}").status_code == 409


# ------------------------------------------------------------------ graph
def test_result_plots_graph_degrees_count_every_edge(world):
    with world.server.client("a") as c:
        body = c.get(f"/v1/graphs/{world.graph_id}/degrees").json()
        graph = c.get(f"/v1/graphs/{world.graph_id}", params={"include": "content"}).json()
    counts = graph["counts"]
    for kind in ("input", "function", "output"):
        assert body["types"][kind]["nodes"] == counts[kind]
    edges = len(graph["content"]["edges"])
    total_in = sum(t["in"]["mean"] * t["nodes"] for t in body["types"].values() if t["nodes"])
    assert total_in == pytest.approx(edges)
    assert body["types"]["input"]["in"]["max"] == 0
    assert len(body["hubs"]) == 5


def test_result_plots_graph_drawing_shows_every_node(world):
    with world.server.client("a") as c:
        resp = c.get(f"/v1/graphs/{world.graph_id}/plots/graph.svg")
        counts = c.get(f"/v1/graphs/{world.graph_id}").json()["counts"]
    root = parse_svg(resp)
    circles = [e for e in root.iter(f"{SVG_NS}circle") if (e.get("class") or "").startswith("node")]
    assert len(circles) == counts["input"] + counts["function"] + counts["output"]
    lines = list(root.iter(f"{SVG_NS}line"))
    assert len(lines) == sum(counts["edges"].values())
    assert "<script>" not in resp.text and world.hostile not in resp.text


@pytest.mark.parametrize("path", ["degrees", "plots/graph.svg"])
def test_result_plots_graph_of_another_tenant_is_404(world, path):
    with world.server.client("b") as c:
        assert c.get(f"/v1/graphs/{world.graph_id}/{path}").status_code == 404
    with world.server.client() as c:
        assert c.get(f"/v1/graphs/{world.graph_id}/{path}").status_code == 401


def test_result_plots_are_documented(world):
    with world.server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    for path, codes in (
        ("/v1/jobs/{job_id}/plots/weights.svg", {"401", "404", "409", "422"}),
        ("/v1/jobs/{job_id}/plots/roc.svg", {"401", "404", "409"}),
        ("/v1/graphs/{graph_id}/plots/graph.svg", {"401", "404", "422"}),
    ):
        responses = paths[path]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["image/svg+xml"]
        for code in codes:
            assert "application/problem+json" in responses[code]["content"], (path, code)
    assert (
        "application/json"
        in (paths["/v1/jobs/{job_id}/plots/network.json"]["get"]["responses"]["200"]["content"])
    )
    assert "/v1/graphs/{graph_id}/degrees" in paths
    posted = paths["/v1/jobs/{job_id}/plots/roc.svg"]["post"]["responses"]
    assert list(posted["200"]["content"]) == ["image/svg+xml"]
    assert all("application/problem+json" in posted[c]["content"] for c in ("404", "409", "422"))


def test_result_plots_graph_drawing_of_a_cyclic_graph_keeps_one_column(world):
    graph = {
        "name": "cycle",
        "nodes": {"input": ["i"], "function": ["a", "b"], "output": ["o"]},
        "edges": [["i", "a"], ["a", "b"], ["b", "a"], ["b", "o"]],
    }
    with world.server.client("c") as c:
        gid = c.post("/v1/graphs", json=graph).json()["id"]
        root = parse_svg(c.get(f"/v1/graphs/{gid}/plots/graph.svg"))
        degrees = c.get(f"/v1/graphs/{gid}/degrees").json()
    assert any("in one column (the graph has a cycle)" in t for t in texts(root))
    xs = {e.get("cx") for e in root.iter(f"{SVG_NS}circle") if e.get("class") == "node-function"}
    assert len(xs) == 1
    assert degrees["types"]["function"]["in"]["max"] == 2  # a: from i and b


def test_result_plots_graph_drawing_refuses_large_graphs(world, monkeypatch):
    from gsnn_edges.service import plot_graph

    monkeypatch.setattr(plot_graph.graph_drawing, "__defaults__", (3,))
    with world.server.client("a") as c:
        resp = c.get(f"/v1/graphs/{world.graph_id}/plots/graph.svg")
    assert resp.status_code == 422
    assert "the drawing shows graphs of up to 3 nodes" in resp.json()["detail"]


def test_result_plots_heatmap_of_many_nodes_has_no_names():
    from api.ui.heatmap import LABELLED, weights_svg
    from gsnn_edges.service.plot_data import WeightsHeatmap

    n = LABELLED + 1
    weights = np.random.default_rng(0).normal(size=(n, n))
    heat = WeightsHeatmap(
        [f"<n{i}>" for i in range(n)], weights, np.array([0]), np.zeros((2, 0)), False
    )
    text = weights_svg(heat, "job_x")
    assert "&lt;n1&gt;" not in text and "stored order (graph has a cycle)" in text
    assert "graph-edges" not in text


def test_result_plots_roc_of_posted_edges_matches_the_validation_curves(world):
    path = f"/v1/jobs/{world.succeeded}/plots/roc.svg"
    with world.server.client("a") as c:
        mine = parse_svg(c.post(path, json={"positive_edges": world.validation}))
        stored = parse_svg(c.get(path))
        graph = c.get(f"/v1/graphs/{world.graph_id}", params={"include": "content"}).json()
        in_graph = [
            e for e in graph["content"]["edges"] if e[0] in world.nodes and e[1] in world.nodes
        ]
        unknown = c.post(path, json={"positive_edges": [["nope", world.nodes[0]]]})
        only_graph = c.post(path, json={"positive_edges": in_graph[:2]})
        mixed = parse_svg(c.post(path, json={"positive_edges": [*world.validation, in_graph[0]]}))
    points = lambda root: {e.get("class"): e.get("points") for e in root.iter(f"{SVG_NS}polyline")}
    assert points(mine) == points(stored)
    assert any(t.startswith(f"{len(world.validation)} held-out edges ranked") for t in texts(mine))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "positive_edges"]
    assert "'nope'" in unknown.json()["detail"]
    assert only_graph.status_code == 409 and "not candidates" in only_graph.json()["detail"]
    assert any("1 not among the candidates" in t for t in texts(mixed))


def test_result_plots_roc_of_posted_edges_is_tenant_scoped(world):
    body = {"positive_edges": world.validation}
    with world.server.client("b") as c:
        assert c.post(f"/v1/jobs/{world.succeeded}/plots/roc.svg", json=body).status_code == 404
