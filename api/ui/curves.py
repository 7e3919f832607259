"""``roc.svg``: ROC and precision-recall curves of a job's validation edges."""

from __future__ import annotations

import numpy as np

from api.ui.svg import WIDTH, Box, Svg, axes, fmt, nice_ticks
from gsnn_edges.service.plot_data import RankingCurves

CURVE = "#1f77b4"
CHANCE = "#9aa5b1"


def _polyline(svg: Svg, box: Box, x: np.ndarray, y: np.ndarray, **attrs: object) -> None:
    coords = " ".join(f"{box.x(a)},{box.y(b)}" for a, b in zip(x.tolist(), y.tolist(), strict=True))
    svg.add("polyline", points=coords, fill="none", **attrs)


def _steps(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The precision-recall curve as a step function: from each point up or down to the
    next point's precision, then across to its recall (the area under it is the average
    precision; a straight line would overstate it)."""
    x = np.r_[recall[:1], np.column_stack([recall[:-1], recall[1:]]).ravel()]
    y = np.r_[precision[:1], np.repeat(precision[1:], 2)]
    return x, y


def roc_svg(curves: RankingCurves, job_id: str, which: str = "validation") -> str:
    """ROC (false vs true positive rate) and precision-recall side by side, chance level
    dashed, with AUC and average precision; ``which`` names the positives (validation or
    held-out edges). Points: at most two per positive pair."""
    svg = Svg(WIDTH, 330, f"ROC and precision-recall of job {job_id}")
    ticks = nice_ticks(0.0, 1.0)
    roc = Box(60, 40, 280, 220, (0.0, 1.0), (0.0, 1.0))
    axes(svg, roc, f"ROC (AUC {fmt(curves.auc)})", ticks, ticks)
    svg.add(
        "line",
        x1=roc.x(0),
        y1=roc.y(0),
        x2=roc.x(1),
        y2=roc.y(1),
        stroke=CHANCE,
        stroke_dasharray="4 3",
    )
    _polyline(svg, roc, curves.fpr, curves.tpr, stroke=CURVE, stroke_width=2, class_="roc")
    svg.text(roc.left + roc.width / 2, roc.bottom + 34, "false positive rate", text_anchor="middle")
    svg.text(
        20,
        roc.top + roc.height / 2,
        "true positive rate",
        text_anchor="middle",
        transform=f"rotate(-90 20 {roc.top + roc.height / 2})",
    )

    pr = Box(440, 40, 280, 220, (0.0, 1.0), (0.0, 1.0))
    axes(svg, pr, f"Precision-recall (AP {fmt(curves.average_precision)})", ticks, ticks)
    base = curves.n_positives / (curves.n_positives + curves.n_negatives)
    svg.add(
        "line",
        x1=pr.x(0),
        y1=pr.y(base),
        x2=pr.x(1),
        y2=pr.y(base),
        stroke=CHANCE,
        stroke_dasharray="4 3",
    )
    recall, precision = _steps(curves.tpr, curves.precision)
    _polyline(svg, pr, recall, precision, stroke=CURVE, stroke_width=2, class_="pr")
    svg.text(pr.left + pr.width / 2, pr.bottom + 34, "recall", text_anchor="middle")
    svg.text(
        400,
        pr.top + pr.height / 2,
        "precision",
        text_anchor="middle",
        transform=f"rotate(-90 400 {pr.top + pr.height / 2})",
    )

    left_out = (
        f"; {curves.n_left_out} not among the candidates (edges of the graph)"
        if curves.n_left_out
        else ""
    )
    note = (
        f"{curves.n_positives:,} {which} edges ranked among {curves.n_negatives:,} other "
        f"candidate pairs{left_out}; dashed: chance"
    )
    svg.text(60, 320, note, fill="#666")
    return svg.render()
