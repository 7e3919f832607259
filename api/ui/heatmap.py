"""``weights.svg``: a job's W as a heatmap, rows and columns in topological order.

Up to 250,000 cells stay a small document: W is binned into :data:`PALETTE`'s colours,
each row's runs of one colour become one segment, and all segments of a colour one
``<path>`` (the near-zero bin is the background and not drawn), every step vectorised.
"""

from __future__ import annotations

import numpy as np

from api.ui.svg import Svg, fmt, short
from gsnn_edges.service.plot_data import WeightsHeatmap

# diverging, negative (blue) to positive (red); the middle bin is the background
PALETTE = (
    "#2166ac",
    "#4393c3",
    "#92c5de",
    "#d1e5f0",
    "#f0f4f8",
    "#ffffff",
    "#fbe3d6",
    "#f4a582",
    "#d6604d",
    "#b2182b",
    "#67001f",
)
HALF = len(PALETTE) // 2
LABELLED = 40  # node names on the axes up to this many nodes
SIDE = 560  # pixels of the matrix


def colour_bins(weights: np.ndarray) -> tuple[np.ndarray, float]:
    """``(bins, scale)``: each entry's colour as ``-HALF .. HALF`` (0: near zero, NaN too)
    of ``W / scale``, ``scale`` the 99th percentile of ``|W|`` (one outlier does not wash
    the rest out; larger values take the end colours).

    Shapes:
        weights: [N, N]; bins: [N, N] int.
    """
    finite = np.isfinite(weights)
    magnitude = np.abs(weights[finite])
    scale = float(np.percentile(magnitude, 99)) if magnitude.size else 0.0
    scale = scale or float(magnitude.max(initial=0.0)) or 1.0
    ratio = np.where(finite, weights, 0.0) / scale
    return np.clip(np.rint(ratio * HALF), -HALF, HALF).astype(np.int64), scale


def row_runs(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(row, col, length, bin)`` of every maximal run of equal bins within a row.

    Shapes:
        bins: [N, M]; each output: [R] for R runs.
    """
    n, m = bins.shape
    change = np.ones((n, m), dtype=bool)
    change[:, 1:] = bins[:, 1:] != bins[:, :-1]
    starts = np.flatnonzero(change)
    length = np.diff(np.r_[starts, n * m])
    row, col = np.divmod(starts, m)
    return row, col, length, bins.reshape(-1)[starts]


def _segments(x: np.ndarray, y: np.ndarray, length: np.ndarray) -> str:
    """Path data ``M x y h length`` for each run (vectorised string building)."""
    if not x.size:
        return ""
    moves = np.char.add(np.char.add("M", x.astype(str)), np.char.add(" ", y.astype(str)))
    return "".join(np.char.add(moves, np.char.add("h", length.astype(str))).tolist())


def weights_svg(heat: WeightsHeatmap, job_id: str) -> str:
    """W as a heatmap (row = source, column = target), the graph's own edges dotted,
    topological levels separated by lines, a colour legend."""
    n = len(heat.nodes)
    labelled = n <= LABELLED
    left, top = (150, 150) if labelled else (40, 60)
    svg = Svg(left + SIDE + 190, top + SIDE + 40, f"W of job {job_id}")
    svg.text(left, 24, "W: row = source, column = target", font_weight="bold")
    order = "topological order of the graph" if heat.ordered else "stored order (graph has a cycle)"
    svg.text(left, 42, f"{n} function nodes in {order}", fill="#666")
    bins, scale = colour_bins(heat.weights)
    view = {"x": left, "y": top, "width": SIDE, "height": SIDE, "viewBox": f"0 0 {n} {n}"}
    svg.open("svg", preserveAspectRatio="none", class_="matrix", **view)
    svg.rect(0, 0, n, n, fill=PALETTE[HALF])
    row, col, length, value = row_runs(bins)
    svg.open("g", transform="translate(0 0.5)", stroke_width=1, shape_rendering="crispEdges")
    for b in range(-HALF, HALF + 1):
        mine = value == b
        if b and mine.any():
            d = _segments(col[mine], row[mine], length[mine])
            svg.add("path", d=d, stroke=PALETTE[b + HALF], fill="none", class_=f"bin{b:+d}")
    svg.close("g")
    if heat.edges.size:
        dots = _segments(heat.edges[1], heat.edges[0], np.zeros(heat.edges.shape[1], np.int64))
        dot = min(0.6, 8 * n / SIDE)  # about 8 pixels, at most 60% of a cell
        style = {"stroke": "#111", "stroke_width": round(dot, 3), "stroke_linecap": "round"}
        svg.open("g", transform="translate(0.5 0.5)")
        svg.add("path", d=dots, class_="graph-edges", fill="none", **style)
        svg.close("g")
    if 1 < len(heat.level_starts) <= 60:
        grid = "".join(f"M{s} 0v{n}M0 {s}h{n}" for s in heat.level_starts[1:].tolist())
        svg.add("path", d=grid, stroke="#888", stroke_width=max(n / SIDE, 0.02), fill="none")
    svg.close("svg")
    svg.rect(left, top, SIDE, SIDE, fill="none", stroke="#999")
    if labelled:
        _names(svg, heat.nodes, left, top)
    _legend(svg, left + SIDE + 20, top, scale, bool(heat.edges.size))
    return svg.render()


def _names(svg: Svg, nodes: list[str], left: float, top: float) -> None:
    """Row names on the left, column names above (at most :data:`LABELLED` of each)."""
    cell = SIDE / len(nodes)
    for i, name in enumerate(nodes):
        middle = round(i * cell + cell / 2 + 4, 1)
        svg.text(left - 6, top + middle, short(name), text_anchor="end", tip=name)
        x, y = round(left + middle - 4, 1), top - 6
        svg.text(x, y, short(name), transform=f"rotate(-60 {x} {y})", tip=name)


def _legend(svg: Svg, x: float, y: float, scale: float, edges: bool) -> None:
    svg.text(x, y + 10, "W", font_weight="bold")
    for k, colour in enumerate(reversed(PALETTE)):
        top = y + 20 + 16 * k
        svg.rect(x, top, 14, 16, fill=colour, stroke="#ccc", stroke_width=0.5)
        value = (HALF - k) / HALF * scale
        if k % 2 == 0:
            bound = "≥ " if k == 0 else "≤ " if k == 2 * HALF else ""
            svg.text(x + 20, top + 12, bound + fmt(value))
    below = y + 20 + 16 * len(PALETTE) + 20
    svg.text(x, below, "colours: W / 99th pct of |W|", fill="#666", font_size=10)
    if edges:
        svg.add("circle", cx=x + 6, cy=below + 16, r=2.5, fill="#111")
        svg.text(x + 16, below + 20, "edge of the graph")
