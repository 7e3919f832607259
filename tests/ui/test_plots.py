"""``/v1/jobs/{id}/plots/*.svg``: content type, well-formed SVG, tenant isolation, escaping
of user text, the histogram against a numpy reference, and the OpenAPI entries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from gsnn_edges.service.plot_data import histogram_counts

SVG_NS = "{http://www.w3.org/2000/svg}"
PLOTS = ("history.svg", "scores.svg")


def parse_svg(resp) -> ET.Element:
    """The response as a parsed SVG document (fails on anything not well-formed)."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/svg+xml"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    root = ET.fromstring(resp.text)
    assert root.tag == f"{SVG_NS}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return [
        "".join(e.itertext()) for e in root.iter() if e.tag in (f"{SVG_NS}text", f"{SVG_NS}title")
    ]


def test_plots_history_of_a_succeeded_job_draws_every_epoch(world):
    with world.server.client("a") as c:
        root = parse_svg(c.get(f"/v1/jobs/{world.succeeded}/plots/history.svg"))
        history = c.get(f"/v1/jobs/{world.succeeded}/metrics").json()["history"]
    lines = {e.get("class"): e for e in root.iter(f"{SVG_NS}polyline")}
    assert len(lines["series-train_loss"].get("points").split()) == len(history) == 2
    assert "series-aux_loss" in lines


def test_plots_history_of_a_running_job_draws_every_epoch_so_far(world):
    from gsnn_edges.service import repository as repo

    job_id = world.submit("a", *world.upload("a"))
    ctx = world.server.app.state.ctx
    with ctx.db.session() as session:
        assert repo.claim_job(session, job_id, "t", "cpu")
        for epoch in (1, 2, 3):
            record = {"epoch": epoch, "epochs": 9, "train_loss": 1 / epoch, "stage": "training"}
            assert repo.save_progress(session, job_id, "t", record)
    with world.server.client("a") as c:
        root = parse_svg(c.get(f"/v1/jobs/{job_id}/plots/history.svg"))
        c.post(f"/v1/jobs/{job_id}/cancel")
    lines = {e.get("class"): e for e in root.iter(f"{SVG_NS}polyline")}
    assert len(lines["series-train_loss"].get("points").split()) == 3
    assert any("epochs 1-3 of 9 so far" in t for t in texts(root))


def test_plots_history_of_a_queued_job_says_so(world):
    with world.server.client("a") as c:
        root = parse_svg(c.get(f"/v1/jobs/{world.queued}/plots/history.svg"))
    assert not list(root.iter(f"{SVG_NS}polyline"))
    assert any("no finished epoch" in t for t in texts(root))


def test_plots_scores_histogram_counts_every_candidate_pair(world):
    with world.server.client("a") as c:
        root = parse_svg(c.get(f"/v1/jobs/{world.succeeded}/plots/scores.svg", params={"bins": 10}))
        total = c.get(f"/v1/jobs/{world.succeeded}/edges", params={"limit": 1}).json()["total"]
    bars = [e for e in root.iter(f"{SVG_NS}rect") if (e.get("class") or "").startswith("bar-")]
    assert bars and len({b.get("x") for b in bars}) <= 10
    assert any(f"{total:,} scored candidate pairs" in t for t in texts(root))


def test_plots_escape_node_names(world):
    """Node names with markup are text in the SVG: no element but the chart's own."""
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/scores.svg")
    root = parse_svg(resp)
    tags = {e.tag.removeprefix(SVG_NS) for e in root.iter()}
    assert tags <= {"svg", "title", "rect", "line", "text", "polyline", "circle"}
    assert "<script>" not in resp.text and "&lt;script&gt;" in resp.text
    # the top pairs' tooltips hold the full names, as text
    tips = [e.text for e in root.iter(f"{SVG_NS}title") if world.hostile in (e.text or "")]
    assert len(tips) == 3 and all(t.count(world.hostile) == 2 for t in tips)


@pytest.mark.parametrize("plot", PLOTS)
def test_plots_of_another_tenants_job_are_404(world, plot):
    with world.server.client("b") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/{plot}")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("plot", PLOTS)
def test_plots_need_a_key(world, plot):
    with world.server.client() as c:
        assert c.get(f"/v1/jobs/{world.succeeded}/plots/{plot}").status_code == 401


def test_plots_scores_before_success_is_409(world):
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.queued}/plots/scores.svg")
    assert resp.status_code == 409 and "only once it has succeeded" in resp.json()["detail"]


def test_plots_scores_bad_bins_is_422(world):
    with world.server.client("a") as c:
        resp = c.get(f"/v1/jobs/{world.succeeded}/plots/scores.svg", params={"bins": 1})
    assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "bins"]


def test_plots_are_documented_as_svg_with_problems(world):
    with world.server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    for plot, codes in (
        ("history.svg", {"401", "404"}),
        ("scores.svg", {"401", "404", "409", "422"}),
    ):
        responses = paths[f"/v1/jobs/{{job_id}}/plots/{plot}"]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["image/svg+xml"]
        for code in codes:
            assert "application/problem+json" in responses[code]["content"], (plot, code)


def test_plots_histogram_counts_match_numpy():
    rng = np.random.default_rng(0)
    score = rng.normal(size=1000)
    q_value = rng.uniform(size=1000)
    score[:7] = np.nan
    q_value[7:20] = np.nan
    edges, sig, other, threshold = histogram_counts(score, q_value, 20, 0.1)
    finite = np.isfinite(score)
    low_q = finite & (q_value < 0.1)
    ref, ref_edges = np.histogram(score[finite], bins=20)
    np.testing.assert_allclose(edges, ref_edges)
    np.testing.assert_array_equal(sig + other, ref)
    np.testing.assert_array_equal(sig, np.histogram(score[low_q], bins=ref_edges)[0])
    assert threshold == pd.Series(score[low_q]).min()


def test_plots_histogram_counts_without_scores_or_significance():
    edges, sig, other, threshold = histogram_counts(np.full(4, np.nan), np.full(4, np.nan), 5, 0.1)
    assert len(edges) == 6 and sig.sum() == other.sum() == 0 and threshold is None
    _, sig, other, threshold = histogram_counts(np.ones(3), np.ones(3), 5, 0.1)
    assert sig.sum() == 0 and other.sum() == 3 and threshold is None
