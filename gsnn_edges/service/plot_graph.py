"""What the dashboard draws of a graph: its degree summary, a layered drawing of a small
graph, and the neighbourhood of a job's top candidates (the network view). Every array
step is vectorised; the layout loops only over the few nodes it draws (at most
:data:`MAX_DRAWN_NODES`). Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd

from gsnn_edges.graph import (
    FF,
    NODE_TYPES,
    GraphValidationError,
    GSNNGraph,
    index_array,
    topological_levels,
)
from gsnn_edges.service.context import ServiceContext
from gsnn_edges.service.errors import InvalidInputError
from gsnn_edges.service.graphs import get_graph, graph_content
from gsnn_edges.service.results import (
    EdgeQuery,
    edge_page_of,
    published_key,
    require_succeeded,
)

# a drawing shows at most this many nodes (graph drawing, network view)
MAX_DRAWN_NODES = 150


# --------------------------------------------------------------------------- indices
def edge_index(content: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All nodes of a stored graph JSON and its edges, from the graph's own per-type edge
    index (:class:`~gsnn_edges.graph.GSNNGraph`; a stored graph passed it at upload).

    Returns:
        ``(names, types, edges)``: every node name (input, function, output order), each
        node's type as an index into :data:`~gsnn_edges.graph.NODE_TYPES`, and the edges
        as positions in ``names`` (grouped by edge type).

    Shapes:
        types: [V]; edges: [2, E].
    """
    graph = GSNNGraph.from_json(content)
    groups = [graph.node_names_dict[t] for t in NODE_TYPES]
    start = dict(zip(NODE_TYPES, np.cumsum([0, *map(len, groups)]).tolist(), strict=False))
    names = list(chain.from_iterable(groups))
    types = np.repeat(np.arange(len(NODE_TYPES)), [len(g) for g in groups])
    parts = [
        index_array(ei) + np.array([[start[src]], [start[dst]]])
        for (src, _, dst), ei in graph.edge_index_dict.items()
    ]
    return names, types, np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.int64)


def function_edge_index(content: dict) -> tuple[list[str], np.ndarray]:
    """``(function names, [2, E] function -> function edges as positions in them)``: the
    graph's own ``FF`` edge index."""
    graph = GSNNGraph.from_json(content)  # every edge type present, empty or not
    return list(graph.node_names_dict["function"]), index_array(graph.edge_index_dict[FF])


def topological_rank(n: int, edges: np.ndarray, names: list[str]) -> np.ndarray | None:
    """Topological level of each of ``n`` nodes (:func:`~gsnn_edges.graph.topological_levels`);
    None when the edges have a cycle.

    Shapes:
        edges: [2, E]; returns [n].
    """
    try:
        levels = topological_levels(n, edges, names)
    except GraphValidationError:
        return None
    rank = np.zeros(n, dtype=np.int64)
    if levels:  # none for n = 0
        rank[np.concatenate(levels)] = np.repeat(np.arange(len(levels)), [len(v) for v in levels])
    return rank


# --------------------------------------------------------------------------- layout
def layered_layout(columns: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Positions in ``[0, 1]^2`` of a few nodes drawn in columns (a layered drawing):
    ``x`` by column, ``y`` spread evenly within a column, in the order of the mean ``y``
    of each node's neighbours in the columns drawn before it (one barycentre sweep, which
    untangles most crossings of a DAG's drawing).

    Shapes:
        columns: [V] column of each node (any integers); edges: [2, E]; returns [V, 2].
    """
    v = len(columns)
    _, col = np.unique(columns, return_inverse=True)
    n_cols = int(col.max(initial=0)) + 1
    pos = np.zeros((v, 2))
    pos[:, 0] = col / max(n_cols - 1, 1) if n_cols > 1 else 0.5
    neighbours: list[list[int]] = [[] for _ in range(v)]
    for a, b in edges.T.tolist():  # the drawn edges: bounded by the drawn nodes
        neighbours[a].append(b)
        neighbours[b].append(a)
    for c in range(n_cols):
        members = np.flatnonzero(col == c)
        placed = [
            np.mean([pos[m, 1] for m in neighbours[i] if col[m] < c] or [0.5]) for i in members
        ]
        order = members[np.argsort(placed, kind="stable")]
        pos[order, 1] = (np.arange(len(order)) + 0.5) / len(order)
    return pos


# --------------------------------------------------------------------------- graph page
def graph_degrees(ctx: ServiceContext, tenant: str, graph_id: str) -> dict:
    """Per node type: node count and the min / median / mean / max of in- and out-degree,
    plus the five nodes with most edges; a few numbers whatever the graph's size.

    Raises:
        NotFoundError: no such graph for ``tenant``.
    """
    get_graph(ctx, tenant, graph_id)
    names, types, edges = edge_index(graph_content(ctx, graph_id))
    indeg = np.bincount(edges[1], minlength=len(names))
    outdeg = np.bincount(edges[0], minlength=len(names))
    out: dict = {"types": {}, "hubs": []}
    for t, name in enumerate(NODE_TYPES):
        mine = types == t
        out["types"][name] = {
            "nodes": int(np.count_nonzero(mine)),
            "in": _summary(indeg[mine]),
            "out": _summary(outdeg[mine]),
            "isolated": int(np.count_nonzero(mine & (indeg + outdeg == 0))),
        }
    total = indeg + outdeg
    for i in np.argsort(-total, kind="stable")[:5].tolist():
        hub = {"name": names[i], "type": NODE_TYPES[types[i]], "in": int(indeg[i])}
        out["hubs"].append({**hub, "out": int(outdeg[i])})
    return out


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if not values.size:
        return {"min": None, "median": None, "mean": None, "max": None}
    stats = (values.min(), np.median(values), values.mean(), values.max())
    return dict(zip(("min", "median", "mean", "max"), map(float, stats), strict=True))


@dataclass(frozen=True)
class Drawing:
    """Nodes and edges of a layered drawing.

    Shapes:
        pos: [V, 2] positions in ``[0, 1]^2``; types: [V] node types (index into
        :data:`~gsnn_edges.graph.NODE_TYPES`); edges: [2, E] positions in ``names``.
    """

    names: list[str]
    types: np.ndarray
    pos: np.ndarray
    edges: np.ndarray
    layered: bool  # False: the function edges have a cycle (one column per node type)


def graph_drawing(
    ctx: ServiceContext, tenant: str, graph_id: str, max_nodes: int = MAX_DRAWN_NODES
) -> Drawing:
    """The whole graph, inputs on the left, function nodes by topological level, outputs
    on the right.

    Raises:
        NotFoundError: no such graph for ``tenant``.
        InvalidInputError: the graph has more than ``max_nodes`` nodes.
    """
    row = get_graph(ctx, tenant, graph_id)
    total = sum(int(row.counts.get(t, 0)) for t in NODE_TYPES)
    if total > max_nodes:
        raise InvalidInputError.at(
            ["path", "graph_id"],
            f"graph {graph_id!r} has {total:,} nodes; the drawing shows graphs of up to "
            f"{max_nodes} nodes (its counts and degrees: GET /v1/graphs/{graph_id}/degrees)",
        )
    names, types, edges = edge_index(graph_content(ctx, graph_id))
    function = NODE_TYPES.index("function")
    fmask = types == function
    first = int(np.argmax(fmask)) if fmask.any() else 0
    keep = fmask[edges[0]] & fmask[edges[1]]
    rank = topological_rank(int(fmask.sum()), edges[:, keep] - first, names[first:])
    columns = np.where(types == 0, -1, np.where(fmask, 0, 10**9)).astype(np.int64)
    if rank is not None:
        columns[fmask] = rank
    return Drawing(names, types, layered_layout(columns, edges), edges, rank is not None)


# --------------------------------------------------------------------------- network
@dataclass(frozen=True)
class Neighbourhood:
    """The prior graph around a job's top candidate edges (the network view).

    Attributes:
        nodes: ``[{name, x, y, level, top}]``; ``top``: an endpoint of a candidate drawn
            (else a graph neighbour of one); ``x, y`` in ``[0, 1]``.
        graph_edges: ``[[i, j]]`` function -> function edges of the graph between drawn
            nodes (positions in ``nodes``).
        candidates: ``[{src, dst, score, q_value, rank}]``, ``src``/``dst`` positions in
            ``nodes``, best first.
        layered: False when the graph has a cycle (then ``level`` is 0 everywhere).
    """

    nodes: list[dict]
    graph_edges: list[list[int]]
    candidates: list[dict]
    layered: bool


def neighbourhood(
    ctx: ServiceContext, tenant: str, job_id: str, top: int, max_nodes: int = MAX_DRAWN_NODES
) -> Neighbourhood:
    """The ``top`` best-scored candidate pairs, their endpoints, and as many of the graph
    neighbours of those endpoints (most links to them first) as fit in ``max_nodes``.

    Raises:
        NotFoundError, ResultNotReadyError: as :func:`~gsnn_edges.service.results.result_key`.
    """
    job = require_succeeded(ctx, tenant, job_id)
    path = ctx.store.path(published_key(ctx, job, "edges"))
    _, items = edge_page_of(path, EdgeQuery(candidates_only=True), 0, top)
    items = [i for i in items if i["score"] is not None]
    names, edges = function_edge_index(graph_content(ctx, job.graph_id))
    index = pd.Index(names)
    ends = index.get_indexer([i["src"] for i in items] + [i["dst"] for i in items])
    core = pd.unique(ends[ends >= 0])[:max_nodes]
    drawn = _with_neighbours(core, edges, len(names), max_nodes)
    position = np.full(len(names), -1)
    position[drawn] = np.arange(len(drawn))
    inside = (position[edges[0]] >= 0) & (position[edges[1]] >= 0)
    sub = position[edges[:, inside]]
    rank = topological_rank(len(names), edges, names)
    level = rank[drawn] if rank is not None else np.zeros(len(drawn), np.int64)
    pos = layered_layout(level, sub)
    is_core = np.isin(drawn, core)
    nodes = [
        {"name": names[i], "x": x, "y": y, "level": int(lv), "top": bool(c)}
        for i, (x, y), lv, c in zip(drawn.tolist(), pos.tolist(), level, is_core, strict=True)
    ]
    candidates = _candidates(items, index, position)
    return Neighbourhood(nodes, sub.T.tolist(), candidates, rank is not None)


def _with_neighbours(core: np.ndarray, edges: np.ndarray, n: int, max_nodes: int) -> np.ndarray:
    """``core`` then its graph neighbours, most links into ``core`` first, up to ``max_nodes``."""
    in_core = np.zeros(n, dtype=bool)
    in_core[core] = True
    touching = in_core[edges[0]] ^ in_core[edges[1]]
    other = np.where(in_core[edges[0, touching]], edges[1, touching], edges[0, touching])
    links = np.bincount(other, minlength=n)
    ranked = np.argsort(-links, kind="stable")
    extra = ranked[links[ranked] > 0][: max(max_nodes - len(core), 0)]
    return np.concatenate([core, extra]).astype(np.int64)


def _candidates(items: list[dict], index: pd.Index, position: np.ndarray) -> list[dict]:
    """The drawn candidate pairs (a bounded page) with their endpoints' positions."""
    src = position[index.get_indexer([i["src"] for i in items])] if items else []
    dst = position[index.get_indexer([i["dst"] for i in items])] if items else []
    return [
        {"src": int(s), "dst": int(d), "score": i["score"], "q_value": i["q_value"], "rank": k + 1}
        for k, (i, s, d) in enumerate(zip(items, src, dst, strict=True))
        if s >= 0 and d >= 0
    ]
