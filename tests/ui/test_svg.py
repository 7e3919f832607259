"""The SVG renderer on its own: escaping, ticks, and the charts of states the live jobs
of the other tests do not reach (a running job, a table without scores)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from api.ui.svg import Svg, esc, history_svg, nice_ticks, scores_svg
from gsnn_edges.service.plot_data import ScoreHistogram, TrainingHistory

NS = "{http://www.w3.org/2000/svg}"


def test_svg_escapes_text_and_attributes():
    svg = Svg(10, 10, 'a "title" <b>')
    svg.add("text", "</text><script>x</script>", class_='x" onload="y', stroke_width=2)
    root = ET.fromstring(svg.render())
    text = root.find(f"{NS}text")
    assert text.text == "</text><script>x</script>"
    assert text.get("class") == 'x" onload="y' and text.get("stroke-width") == "2"
    assert root.find(f"{NS}title").text == 'a "title" <b>'
    assert esc("'&") == "&#x27;&amp;"


@pytest.mark.parametrize(
    ("lo", "hi", "kw", "expected"),
    [
        (0.0, 1.0, {}, [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]),
        (1.0, 2.0, {"integer": True}, [1, 2]),
        (1.0, 30.0, {"n": 6, "integer": True}, [5, 10, 15, 20, 25, 30]),
        (3.0, 3.0, {}, [3.0]),
    ],
)
def test_svg_nice_ticks(lo, hi, kw, expected):
    assert np.allclose(nice_ticks(lo, hi, **kw), expected)


def test_svg_history_of_a_running_job_shows_its_last_epoch():
    rows = [{"epoch": 3, "train_loss": 0.4, "aux_loss": float("nan"), "val_auc": 0.8}]
    root = ET.fromstring(history_svg(TrainingHistory("running", 10, rows, 2), "job_x"))
    lines = {e.get("class"): e.get("points") for e in root.iter(f"{NS}polyline")}
    assert set(lines) == {"series-train_loss", "series-val_auc"}  # aux_loss: not finite
    assert all(len(points.split()) == 1 for points in lines.values())
    assert any("epoch 3 of 10" in (t.text or "") for t in root.iter(f"{NS}text"))


def test_svg_scores_without_any_score():
    zeros = np.zeros(5, int)
    hist = ScoreHistogram(np.linspace(0, 1, 6), zeros, zeros, None, 0.1, 4, True, [])
    root = ET.fromstring(scores_svg(hist, "job_x"))
    assert not [e for e in root.iter(f"{NS}rect") if (e.get("class") or "").startswith("bar-")]
    assert any("4 without a score" in (t.text or "") for t in root.iter(f"{NS}text"))


def test_svg_nests_groups_with_escaped_attributes():
    svg = Svg(10, 10, "t")
    svg.open("g", transform='translate(1 1)" onload="x', class_="layer")
    svg.add("path", d="M0 0h1", stroke_width=0.5)
    svg.close("g")
    root = ET.fromstring(svg.render())
    group = root.find(f"{NS}g")
    assert group.get("transform") == 'translate(1 1)" onload="x' and group.get("class") == "layer"
    assert group.find(f"{NS}path").get("stroke-width") == "0.5"
