"""Server-rendered SVG charts of ``/v1/jobs/{id}/plots/...``: a few lines of our own, no
plotting library in the API process.

Every piece of text goes through :func:`esc` (node names are user input), and the SVG
has no script, no style element and no external reference, so it is inert wherever it is
shown (the dashboard loads it in an ``<img>``, which would not run script anyway).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gsnn_edges.job_status import JobStatus
from gsnn_edges.service.plot_data import ScoreHistogram, TrainingHistory

WIDTH = 760
FONT = {"font-family": "system-ui, sans-serif", "font-size": "12", "fill": "#333"}
COLORS = {
    "train_loss": "#1f77b4",
    "aux_loss": "#ff7f0e",
    "val_auc": "#2ca02c",
    "significant": "#d62728",
    "other": "#9aa5b1",
    "best": "#7f7f7f",
}
ACTIVE = (JobStatus.queued, JobStatus.running)
MAX_LABEL = 16  # characters of a node name shown in a chart (all of it in the tooltip)


def esc(text: object) -> str:
    """``text`` as XML character data or attribute value (``& < > " '`` escaped)."""
    return html.escape(str(text), quote=True)


def short(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def fmt(value: float) -> str:
    return f"{value:.3g}"


class Svg:
    """An SVG document built element by element (attributes and text escaped)."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height = width, height
        self.parts = [f"<title>{esc(title)}</title>"]
        self.rect(0, 0, width, height, fill="#fff")

    def add(self, tag: str, text: str | None = None, **attrs: object) -> None:
        """One element; ``stroke_width=`` becomes ``stroke-width=``; ``tip`` a <title>."""
        tip = attrs.pop("tip", None)
        body = _attributes(attrs)
        inner = (f"<title>{esc(tip)}</title>" if tip else "") + (esc(text) if text else "")
        self.parts.append(f"<{tag}{body}>{inner}</{tag}>" if inner else f"<{tag}{body}/>")

    def open(self, tag: str, **attrs: object) -> None:
        """Start an element that holds others (``<g>``, a nested ``<svg>``); :meth:`close`
        ends it."""
        self.parts.append(f"<{tag}{_attributes(attrs)}>")

    def close(self, tag: str) -> None:
        self.parts.append(f"</{tag}>")

    def text(self, x: float, y: float, text: str, **attrs: object) -> None:
        self.add("text", text, x=round(x, 1), y=round(y, 1), **attrs)

    def rect(self, x: float, y: float, w: float, h: float, **attrs: object) -> None:
        self.add("rect", x=x, y=y, width=round(w, 2), height=round(h, 2), **attrs)

    def render(self) -> str:
        font = "".join(f' {k}="{v}"' for k, v in FONT.items())
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img"{font}>'
            + "".join(self.parts)
            + "</svg>\n"
        )


def _attributes(attrs: dict[str, object]) -> str:
    """`` name="value"`` pairs, escaped; a trailing ``_`` is dropped (``class_``) and
    ``_`` becomes ``-``; None values are left out."""
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None
    )


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 x 10^k apart) covering ``[lo, hi]``;
    whole numbers only with ``integer`` (epochs)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = max(step, 1) if integer else step
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


@dataclass(frozen=True)
class Box:
    """A plot area in SVG pixels and the data ranges it maps."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def x(self, v: float) -> float:
        lo, hi = self.x_range
        return round(self.left + (v - lo) / ((hi - lo) or 1) * self.width, 2)

    def y(self, v: float) -> float:
        lo, hi = self.y_range
        return round(self.top + self.height - (v - lo) / ((hi - lo) or 1) * self.height, 2)

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def vline(self, svg: Svg, x: float, **attrs: object) -> None:
        """A vertical line across the box at data ``x``."""
        x = self.x(x)
        svg.add("line", x1=x, x2=x, y1=self.top, y2=self.bottom, **attrs)


def axes(
    svg: Svg,
    box: Box,
    title: str,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    y_label: Callable[[float], str] = fmt,
) -> None:
    """Frame, grid lines, tick labels and a title above the box."""
    svg.text(box.left, box.top - 10, title, font_weight="bold")
    for v in y_ticks:
        y = box.y(v)
        svg.add("line", x1=box.left, x2=box.left + box.width, y1=y, y2=y, stroke="#e5e5e5")
        svg.text(box.left - 6, y + 4, y_label(v), text_anchor="end")
    for v in x_ticks:
        svg.text(box.x(v), box.bottom + 16, fmt(v), text_anchor="middle")
    svg.rect(box.left, box.top, box.width, box.height, fill="none", stroke="#999")


# --------------------------------------------------------------------- training curves
def history_svg(history: TrainingHistory, job_id: str) -> str:
    """Loss (train, edge regressor) and validation AUC per epoch, side by side."""
    svg = Svg(WIDTH, 300, f"Training curves of job {job_id}")
    last = max((r["epoch"] for r in history.rows), default=0)
    x_range = (1.0, float(max(history.epochs or 1, last, 2)))
    panels = [
        ("Loss per epoch", ("train_loss", "aux_loss"), 60),
        ("Validation AUC per epoch", ("val_auc",), 440),
    ]
    for title, keys, left in panels:
        series = {k: [(r["epoch"], r[k]) for r in history.rows if _finite(r.get(k))] for k in keys}
        _line_panel(svg, Box(left, 40, 280, 190, x_range, (0, 1)), title, series, history)
    svg.text(60, 290, _history_note(history, last), fill="#666")
    return svg.render()


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _history_note(history: TrainingHistory, last: int) -> str:
    if history.complete:
        best = f"; best epoch {history.best_epoch} (dashed)" if history.best_epoch else ""
        return f"{len(history.rows)} epochs{best}"
    if not history.rows:
        return f"job {history.status}: no finished epoch"
    now = "so far" if history.status in ACTIVE else "of its last attempt"
    first = min(r["epoch"] for r in history.rows)
    shown = f"epoch {last}" if first == last else f"epochs {first}-{last}"
    return f"job {history.status}: {shown} of {history.epochs or '?'} {now}"


def _line_panel(
    svg: Svg, box: Box, title: str, series: dict[str, list[tuple]], history: TrainingHistory
) -> None:
    values = [v for points in series.values() for _, v in points]
    if not values:
        axes(svg, box, title, nice_ticks(*box.x_range, integer=True), [])
        none = "no validation set in the spec" if "val_auc" in series else "no epoch yet"
        middle = (box.left + box.width / 2, box.top + box.height / 2)
        svg.text(*middle, none, text_anchor="middle", fill="#666")
        return
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 0.5
    box = Box(box.left, box.top, box.width, box.height, box.x_range, (lo - pad, hi + pad))
    axes(svg, box, title, nice_ticks(*box.x_range, n=6, integer=True), nice_ticks(*box.y_range))
    if history.best_epoch and history.complete:
        box.vline(svg, history.best_epoch, stroke=COLORS["best"], stroke_dasharray="4 3")
    drawn = {name: points for name, points in series.items() if points}
    for i, (name, points) in enumerate(drawn.items()):
        color = COLORS[name]
        coords = " ".join(f"{box.x(e)},{box.y(v)}" for e, v in points)
        line = {"fill": "none", "stroke": color, "stroke_width": 2, "class_": f"series-{name}"}
        svg.add("polyline", points=coords, **line)
        for e, v in points:
            tip = f"epoch {e}: {name} {fmt(v)}"
            svg.add("circle", cx=box.x(e), cy=box.y(v), r=2.5, fill=color, tip=tip)
        svg.rect(box.left + 8 + 110 * i, box.bottom + 26, 10, 10, fill=color)
        svg.text(box.left + 22 + 110 * i, box.bottom + 35, name)


# --------------------------------------------------------------------- score histogram
def scores_svg(hist: ScoreHistogram, job_id: str) -> str:
    """Stacked histogram of edge scores (q below the threshold on top, in colour), a
    log-scaled count axis, the lowest score with q below the threshold marked."""
    svg = Svg(WIDTH + 120, 340, f"Edge scores of job {job_id}")
    counts = hist.significant + hist.other
    top = math.log10(1 + max(int(counts.max(initial=0)), 1))
    box = Box(60, 40, 520, 220, (float(hist.edges[0]), float(hist.edges[-1])), (0, top))
    ticks = [t for k in range(math.floor(top) + 1) if (t := math.log10(1 + 10**k)) <= top]
    axes(
        svg,
        box,
        "Edge scores (pairs per bin, log scale)",
        nice_ticks(*box.x_range, n=6),
        [0.0, *ticks],
        y_label=lambda v: f"{round(10**v - 1):,}",
    )
    _bars(svg, box, hist)
    q = fmt(hist.q_threshold)
    if hist.threshold is not None:
        red = COLORS["significant"]
        box.vline(svg, hist.threshold, stroke=red, stroke_dasharray="5 3", class_="threshold")
        x = box.x(hist.threshold)
        right = x > box.left + box.width / 2  # label on the side with room
        svg.text(
            x - 4 if right else x + 4,
            box.top + 14,
            f"lowest score with q < {q}: {fmt(hist.threshold)}",
            fill=red,
            text_anchor="end" if right else "start",
        )
    _histogram_legend(svg, hist, q, int(counts.sum()))
    return svg.render()


def _bars(svg: Svg, box: Box, hist: ScoreHistogram) -> None:
    scale = lambda c: box.y(math.log10(1 + c))
    for i, (sig, other) in enumerate(
        zip(hist.significant.tolist(), hist.other.tolist(), strict=True)
    ):
        x0, x1 = box.x(hist.edges[i]), box.x(hist.edges[i + 1])
        lo, hi = fmt(hist.edges[i]), fmt(hist.edges[i + 1])
        tip = f"score {lo} to {hi}: {sig + other} pairs, {sig} with q < {fmt(hist.q_threshold)}"
        for bottom, top, color in ((0, other, "other"), (other, other + sig, "significant")):
            if top > bottom:
                style = {"fill": COLORS[color], "class_": f"bar-{color}", "tip": tip}
                svg.rect(x0, scale(top), max(x1 - x0 - 1, 1), scale(bottom) - scale(top), **style)


def _histogram_legend(svg: Svg, hist: ScoreHistogram, q: str, n_scored: int) -> None:
    left = 600
    entries = [
        ("significant", f"q < {q}: {int(hist.significant.sum()):,} pairs"),
        ("other", f"q ≥ {q}: {int(hist.other.sum()):,} pairs"),
    ]
    for i, (key, label) in enumerate(entries):
        svg.rect(left, 46 + 20 * i, 10, 10, fill=COLORS[key])
        svg.text(left + 16, 55 + 20 * i, label)
    svg.text(left, 110, "Top pairs", font_weight="bold")
    for i, (src, dst, score) in enumerate(hist.top):
        y = 128 + 16 * i
        svg.text(left, y, fmt(score))
        tip = f"{src} -> {dst}: score {score!r}"
        svg.text(left + 40, y, f"{short(src)} → {short(dst)}", class_="top-pair", tip=tip)
    which = "candidate pairs (not edges of the graph)" if hist.candidates_only else "pairs"
    unscored = f"; {hist.n_unscored:,} without a score" if hist.n_unscored else ""
    svg.text(60, 300, f"{n_scored:,} scored {which}{unscored}", fill="#666")
