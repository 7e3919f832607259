"""``graph.svg``: a small graph drawn in layers, inputs left, function nodes by
topological level, outputs right (at most ``MAX_DRAWN_NODES`` nodes, so the loops here
are bounded)."""

from __future__ import annotations

from api.ui.svg import Svg, short
from gsnn_edges.graph import NODE_TYPES
from gsnn_edges.service.plot_graph import Drawing

TYPE_COLOURS = {"input": "#2ca02c", "function": "#1f77b4", "output": "#ff7f0e"}
LABELLED = 60  # node names beside the nodes up to this many nodes


def graph_svg(drawing: Drawing, graph_id: str) -> str:
    """Edges as grey lines (they run left to right), nodes coloured by type, each with its
    full name as a tooltip."""
    n = len(drawing.names)
    width, height = 900, max(300, min(20 * n, 760))
    left, top, inner_w, inner_h = 60, 50, width - 280, height - 90
    svg = Svg(width, height, f"Graph {graph_id}")
    svg.text(left, 24, f"Graph: {n} nodes, {drawing.edges.shape[1]} edges", font_weight="bold")
    where = "by topological level" if drawing.layered else "in one column (the graph has a cycle)"
    svg.text(left, 40, f"inputs left, function nodes {where}, outputs right", fill="#666")
    xy = [
        (round(left + x * inner_w, 1), round(top + y * inner_h, 1)) for x, y in drawing.pos.tolist()
    ]
    for a, b in drawing.edges.T.tolist():
        (x1, y1), (x2, y2) = xy[a], xy[b]
        svg.add("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke="#b8bec6", stroke_width=1)
    for i, (name, (x, y)) in enumerate(zip(drawing.names, xy, strict=True)):
        kind = NODE_TYPES[int(drawing.types[i])]
        tip = f"{kind} node {name}"
        svg.add("circle", cx=x, cy=y, r=5, fill=TYPE_COLOURS[kind], class_=f"node-{kind}", tip=tip)
        if n <= LABELLED:
            svg.text(x + 8, y + 4, short(name), font_size=10, tip=name)
    for k, (kind, colour) in enumerate(TYPE_COLOURS.items()):
        svg.add("circle", cx=width - 100, cy=60 + 20 * k, r=5, fill=colour)
        svg.text(width - 88, 64 + 20 * k, kind)
    return svg.render()
