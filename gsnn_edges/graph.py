"""The GSNN prior-knowledge graph: container, validation and loaders (SPEC section 1).

A :class:`GSNNGraph` holds three node types (``input``, ``function``, ``output``) and
three edge types (input -> function, function -> function, function -> output). Edges are
stored per type as int64 arrays ``[2, E_type]`` of indices into each type's name list, the
layout of a ``torch_geometric.data.HeteroData`` (:meth:`GSNNGraph.to_hetero` and
:meth:`GSNNGraph.from_hetero` convert). The module also holds the graph utilities the
rest of the library shares: name pairs -> indices, topological levels, edge splits.

It does not import torch: the API process validates uploaded graphs with it.

Every constructor validates; a :class:`GraphValidationError` message always names the
offending node, edge, key or index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Union

import networkx as nx
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

NODE_TYPES = ("input", "function", "output")
EDGE_TYPES = (
    ("input", "to", "function"),
    ("function", "to", "function"),
    ("function", "to", "output"),
)
FF = ("function", "to", "function")

EdgeType = tuple[str, str, str]
Edge = tuple[str, str]

_ALLOWED = ", ".join(f"{s} -> {d}" for s, _, d in EDGE_TYPES)
_SHORT = {f"{et[0]}_{et[2]}": et for et in EDGE_TYPES}


class GraphData(Protocol):
    """What the model and the scorers read from a graph: :class:`GSNNGraph`, a
    ``HeteroData`` with ``node_names`` per node type, or the seed's own container."""

    node_names_dict: Mapping[str, Sequence[str]]
    edge_index_dict: Mapping[EdgeType, Any]


# everything :func:`as_graph` turns into a GSNNGraph
GraphInput = Union["GSNNGraph", nx.DiGraph, Mapping[str, Any], GraphData]


class GraphValidationError(ValueError):
    """Raised when a graph is malformed; the message names the offending item."""


def _edge_key(edge_type: EdgeType | str) -> EdgeType:
    """Resolve ``('function','to','function')`` or ``'function_function'`` to a key."""
    if isinstance(edge_type, str):
        if edge_type not in _SHORT:
            raise GraphValidationError(
                f"unknown edge type {edge_type!r}; expected one of {sorted(_SHORT)}"
            )
        return _SHORT[edge_type]
    key = tuple(edge_type)
    if key not in EDGE_TYPES:
        raise GraphValidationError(f"unknown edge type {key!r}; expected one of {EDGE_TYPES}")
    return key  # type: ignore[return-value]


def _check_node_names(node_names_dict: Mapping[str, Any]) -> dict[str, list[str]]:
    """Validate node names; return a fresh ``{type: [names]}`` dict.

    Raises:
        GraphValidationError: missing/unknown type key, non-string or empty name,
            duplicate name (within or across types), no input or function nodes.
    """
    if not isinstance(node_names_dict, Mapping):
        raise GraphValidationError(
            f"node_names_dict must be a mapping, got {type(node_names_dict).__name__}"
        )
    for key in node_names_dict:
        if key not in NODE_TYPES:
            raise GraphValidationError(f"unknown node type {key!r}; expected {NODE_TYPES}")
    out: dict[str, list[str]] = {}
    for nt in NODE_TYPES:
        if nt not in node_names_dict:
            raise GraphValidationError(f"node_names_dict is missing node type {nt!r}")
        if isinstance(node_names_dict[nt], str):
            raise GraphValidationError(f"names of node type {nt!r} must be a list, got a str")
        names = list(node_names_dict[nt])
        for name in names:
            if not isinstance(name, str):
                raise GraphValidationError(
                    f"node name {name!r} of type {nt!r} is not a string (got {type(name).__name__})"
                )
            if not name.strip():
                raise GraphValidationError(f"empty node name {name!r} in node type {nt!r}")
        out[nt] = names
    counts = Counter(n for nt in NODE_TYPES for n in out[nt])
    dups = [n for n, c in counts.items() if c > 1]
    if dups:
        where = {d: [nt for nt in NODE_TYPES if d in out[nt]] for d in dups[:5]}
        raise GraphValidationError(
            f"duplicate node name(s) {dups[:5]!r} (names must be unique across all node types; "
            f"found in {where})"
        )
    for nt in ("input", "function"):
        if not out[nt]:
            raise GraphValidationError(f"graph has no {nt!r} nodes; at least one is required")
    return out


def _empty_index() -> np.ndarray:
    return np.zeros((2, 0), dtype=np.int64)


def _as_index_array(key: EdgeType, value: Any) -> np.ndarray:
    """Convert an edge index (array, list or tensor on any device) to a fresh contiguous
    int64 array ``[2, E]`` after dtype/shape checks."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.size == 0 and (a.ndim <= 1 or a.shape == (2, 0)):
        return _empty_index()
    if not np.issubdtype(a.dtype, np.integer):
        raise GraphValidationError(
            f"edge_index_dict[{key!r}] must have an integer dtype, got {a.dtype}"
        )
    if a.ndim != 2 or a.shape[0] != 2:
        raise GraphValidationError(
            f"edge_index_dict[{key!r}] must have shape [2, E], got {list(a.shape)}"
        )
    return np.array(a, dtype=np.int64, order="C")


def _check_index_range(key: EdgeType, ei: np.ndarray, names: dict[str, list[str]]) -> None:
    """Reject negative or out-of-range indices (vectorized)."""
    for row, nt in ((0, key[0]), (1, key[2])):
        n = len(names[nt])
        bad = (ei[row] < 0) | (ei[row] >= n)
        if bad.any():
            col = int(np.flatnonzero(bad)[0])
            raise GraphValidationError(
                f"edge_index_dict[{key!r}] has index {int(ei[row, col])} at [{row}, {col}], "
                f"out of range for {n} {nt!r} nodes"
            )


def _check_edge_semantics(key: EdgeType, ei: np.ndarray, names: dict[str, list[str]]) -> None:
    """Reject duplicate edges and function self-loops (vectorized)."""
    src_names, dst_names = names[key[0]], names[key[2]]
    if key == FF:
        loops = ei[0] == ei[1]
        if loops.any():
            i = int(ei[0, np.flatnonzero(loops)[0]])
            raise GraphValidationError(
                f"self-loop ({src_names[i]!r}, {src_names[i]!r}) is not allowed; "
                "the model adds its own self edges"
            )
    code = ei[0] * max(len(dst_names), 1) + ei[1]
    uniq, counts = np.unique(code, return_counts=True)
    if (counts > 1).any():
        c = int(uniq[counts > 1][0])
        s, d = divmod(c, max(len(dst_names), 1))
        raise GraphValidationError(
            f"duplicate edge ({src_names[s]!r}, {dst_names[d]!r}) in {key!r}"
        )


def _check_edges(
    edge_index_dict: Mapping[Any, Any], names: dict[str, list[str]]
) -> dict[EdgeType, np.ndarray]:
    """Validate edge indices; return all three keys (empty ``[2, 0]`` where absent)."""
    if not isinstance(edge_index_dict, Mapping):
        raise GraphValidationError(
            f"edge_index_dict must be a mapping, got {type(edge_index_dict).__name__}"
        )
    out = {et: _empty_index() for et in EDGE_TYPES}
    for key, value in edge_index_dict.items():
        if not isinstance(key, tuple) or tuple(key) not in EDGE_TYPES:
            raise GraphValidationError(
                f"unknown edge type key {key!r}; allowed keys are {list(EDGE_TYPES)}"
            )
        ei = _as_index_array(key, value)
        _check_index_range(key, ei, names)
        _check_edge_semantics(key, ei, names)
        out[key] = ei
    n_out = len(names["output"])
    has_parent = np.bincount(out[EDGE_TYPES[2]][1], minlength=n_out) > 0
    if not has_parent.all():
        j = int(np.flatnonzero(~has_parent)[0])
        raise GraphValidationError(
            f"output node {names['output'][j]!r} has no parent function node"
        )
    return out


@dataclass(eq=False)
class GSNNGraph:
    """Prior-knowledge graph of a GSNN.

    Args:
        node_names_dict: ``{'input': [...], 'function': [...], 'output': [...]}``; names
            unique across all types.
        edge_index_dict: per edge type, indices into the source / destination type's names.
            Missing keys are filled with empty ``[2, 0]`` arrays. Arrays, lists and
            tensors are accepted and stored as int64 numpy arrays.

    Shapes:
        edge_index_dict[('input','to','function')]: [2, E_if]
        edge_index_dict[('function','to','function')]: [2, E_ff]
        edge_index_dict[('function','to','output')]: [2, E_fo]

    Raises:
        GraphValidationError: see :func:`_check_node_names` and :func:`_check_edges`.
    """

    node_names_dict: dict[str, list[str]]
    edge_index_dict: dict[EdgeType, np.ndarray]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Re-run every check, normalizing names to lists and indices to int64 arrays."""
        self.node_names_dict = _check_node_names(self.node_names_dict)
        self.edge_index_dict = _check_edges(self.edge_index_dict, self.node_names_dict)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, nodes: Mapping[str, Iterable[str]], edges: Iterable[Edge]) -> GSNNGraph:
        """Build from node names per type and ``(src, dst)`` name pairs.

        The edge type is inferred from the endpoint types; edges keep their given order
        within each type.
        """
        names = _check_node_names(nodes)
        lookup = {n: (nt, i) for nt in NODE_TYPES for i, n in enumerate(names[nt])}
        buckets: dict[EdgeType, list[tuple[int, int]]] = {et: [] for et in EDGE_TYPES}
        for edge in edges:
            if len(edge) != 2:
                raise GraphValidationError(f"edge {edge!r} must be a (src, dst) pair")
            src, dst = edge
            for end in (src, dst):
                if end not in lookup:
                    raise GraphValidationError(
                        f"edge ({src!r}, {dst!r}) has unknown endpoint {end!r}"
                    )
            (st, si), (dt, di) = lookup[src], lookup[dst]
            key = (st, "to", dt)
            if key not in buckets:
                raise GraphValidationError(
                    f"edge ({src!r}, {dst!r}) goes {st} -> {dt}, which is not allowed; "
                    f"allowed edge types: {_ALLOWED}"
                )
            buckets[key].append((si, di))
        eid = {
            et: np.array(pairs, dtype=np.int64).reshape(-1, 2).T.copy()
            for et, pairs in buckets.items()
        }
        return cls(names, eid)

    @classmethod
    def from_hetero(cls, data: Any) -> GSNNGraph:
        """Build from a ``torch_geometric.data.HeteroData`` whose node stores carry
        ``node_names`` (as :meth:`to_hetero` writes them; HeteroData collects them as
        ``data.node_names_dict``), or from any object with ``node_names_dict`` and
        ``edge_index_dict`` attributes (the seed's layout)."""
        try:
            names, eid = data.node_names_dict, data.edge_index_dict
        except (AttributeError, KeyError) as exc:
            raise GraphValidationError(
                f"{type(data).__name__} object lacks node_names_dict/edge_index_dict: {exc}"
            ) from exc
        return cls(
            {k: list(v) for k, v in dict(names).items()}, {tuple(k): v for k, v in eid.items()}
        )

    def to_hetero(self) -> HeteroData:
        """The graph as a ``torch_geometric.data.HeteroData``: per node type ``num_nodes``
        and ``node_names``, per edge type a ``LongTensor [2, E]`` ``edge_index``."""
        import torch
        from torch_geometric.data import HeteroData

        data = HeteroData()
        for nt in NODE_TYPES:
            data[nt].num_nodes = len(self.node_names_dict[nt])
            data[nt].node_names = list(self.node_names_dict[nt])
        for et in EDGE_TYPES:
            data[et].edge_index = torch.from_numpy(self.edge_index_dict[et].copy())
        return data

    @classmethod
    def from_networkx(cls, g: nx.DiGraph, type_attr: str = "type") -> GSNNGraph:
        """Build from a directed networkx graph whose nodes carry ``g.nodes[n][type_attr]``.

        Names within each type follow the node insertion order of ``g``; edges follow
        ``g.edges`` order.
        """
        if not isinstance(g, nx.DiGraph):
            raise GraphValidationError(f"expected a networkx DiGraph, got {type(g).__name__}")
        nodes: dict[str, list[str]] = {nt: [] for nt in NODE_TYPES}
        for n, attrs in g.nodes(data=True):
            nt = attrs.get(type_attr)
            if nt not in nodes:
                raise GraphValidationError(
                    f"node {n!r} has {type_attr}={nt!r}; expected one of {NODE_TYPES}"
                )
            nodes[nt].append(n)
        return cls.from_edges(nodes, list(g.edges()))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> GSNNGraph:
        """Build from ``{"nodes": {type: [names]}, "edges": [[src, dst], ...]}``."""
        if not isinstance(obj, Mapping):
            raise GraphValidationError(f"graph JSON must be an object, got {type(obj).__name__}")
        for key in ("nodes", "edges"):
            if key not in obj:
                raise GraphValidationError(f"graph JSON is missing key {key!r}")
        if not isinstance(obj["nodes"], Mapping):
            raise GraphValidationError("graph JSON 'nodes' must be an object of name lists")
        return cls.from_edges(obj["nodes"], [tuple(e) for e in obj["edges"]])

    def to_json(self) -> dict[str, Any]:
        """Inverse of :meth:`from_json` (edges ordered by edge type, then stored order)."""
        return {
            "nodes": {nt: list(self.node_names_dict[nt]) for nt in NODE_TYPES},
            "edges": [[s, d] for s, d in self.edge_names()],
        }

    # ------------------------------------------------------------------ queries
    @property
    def n_input(self) -> int:
        return len(self.node_names_dict["input"])

    @property
    def n_function(self) -> int:
        return len(self.node_names_dict["function"])

    @property
    def n_output(self) -> int:
        return len(self.node_names_dict["output"])

    def counts(self) -> dict[str, Any]:
        """Node counts per type and edge counts per ``'<src>_<dst>'`` edge type."""
        edges = {
            f"{s}_{d}": int(self.edge_index_dict[(s, t, d)].shape[1]) for s, t, d in EDGE_TYPES
        }
        return {**{nt: len(self.node_names_dict[nt]) for nt in NODE_TYPES}, "edges": edges}

    def edge_names(self, edge_type: EdgeType | str | None = None) -> list[Edge]:
        """Edges as ``(src_name, dst_name)``; all types (in :data:`EDGE_TYPES` order) if None."""
        keys = EDGE_TYPES if edge_type is None else (_edge_key(edge_type),)
        out: list[Edge] = []
        for key in keys:
            ei = self.edge_index_dict[key]
            src = np.asarray(self.node_names_dict[key[0]], dtype=object)[ei[0]]
            dst = np.asarray(self.node_names_dict[key[2]], dtype=object)[ei[1]]
            out.extend(zip(src.tolist(), dst.tolist(), strict=True))
        return out

    def function_edges(self) -> set[Edge]:
        """Set of function -> function edges by name."""
        return set(self.edge_names(FF))

    def _function_pairs(self, edges: Iterable[Edge]) -> np.ndarray:
        """Map ``(src, dst)`` function-name pairs to an index array ``[2, K]``."""
        try:
            pairs = pair_indices(edges, self.node_names_dict["function"])
        except ValueError as e:
            raise GraphValidationError(str(e)) from None
        return pairs.T

    def _with_ff(self, ff: np.ndarray) -> GSNNGraph:
        eid = dict(self.edge_index_dict)  # the constructor copies every array
        eid[FF] = ff
        return GSNNGraph({k: list(v) for k, v in self.node_names_dict.items()}, eid)

    def without_function_edges(self, edges: Iterable[Edge]) -> GSNNGraph:
        """Copy of the graph with the given function -> function edges removed.

        Raises:
            GraphValidationError: an edge is not a function -> function edge of the graph.
        """
        rm = self._function_pairs(edges)
        n = max(self.n_function, 1)
        ff = self.edge_index_dict[FF]
        have, drop = ff[0] * n + ff[1], rm[0] * n + rm[1]
        missing = ~np.isin(drop, have)
        if missing.any():
            k = int(np.flatnonzero(missing)[0])
            names = self.node_names_dict["function"]
            raise GraphValidationError(
                f"edge ({names[int(rm[0, k])]!r}, {names[int(rm[1, k])]!r}) is not a "
                "function -> function edge of the graph"
            )
        return self._with_ff(ff[:, ~np.isin(have, drop)])

    def with_function_edges(self, edges: Iterable[Edge]) -> GSNNGraph:
        """Copy of the graph with the given function -> function edges appended.

        Raises:
            GraphValidationError: unknown/non-function endpoint, self-loop, or an edge
                already in the graph (reported as a duplicate edge).
        """
        add = self._function_pairs(edges)
        return self._with_ff(np.concatenate([self.edge_index_dict[FF], add], axis=1))

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GSNNGraph):
            return NotImplemented
        return self.node_names_dict == other.node_names_dict and all(
            np.array_equal(self.edge_index_dict[k], other.edge_index_dict[k]) for k in EDGE_TYPES
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        c = self.counts()
        e = ", ".join(f"{k}={v}" for k, v in c["edges"].items())
        return (
            f"GSNNGraph(input={c['input']}, function={c['function']}, "
            f"output={c['output']}, edges: {e})"
        )


def as_graph(obj: GraphInput) -> GSNNGraph:
    """Coerce a graph-like object to :class:`GSNNGraph`.

    ``GSNNGraph`` is returned as is; ``nx.DiGraph`` -> :meth:`GSNNGraph.from_networkx`;
    a dict -> :meth:`GSNNGraph.from_json`; anything with ``node_names_dict`` and
    ``edge_index_dict`` (e.g. HeteroData) -> :meth:`GSNNGraph.from_hetero`.
    """
    if isinstance(obj, GSNNGraph):
        return obj
    if isinstance(obj, nx.DiGraph):
        return GSNNGraph.from_networkx(obj)
    if isinstance(obj, Mapping):
        return GSNNGraph.from_json(obj)
    if hasattr(obj, "node_names_dict") and hasattr(obj, "edge_index_dict"):
        return GSNNGraph.from_hetero(obj)
    raise GraphValidationError(f"cannot build a GSNNGraph from a {type(obj).__name__} object")


# --------------------------------------------------------------------------- utilities
def pair_indices(
    edges: Iterable[Sequence[str]],
    names: Sequence[str],
    what: str = "edge",
    among: str = "function nodes of the graph",
) -> np.ndarray:
    """Map ``(src, dst)`` name pairs to an int array ``[P, 2]`` of positions in ``names``.

    One vectorized lookup (pandas ``get_indexer``) for all pairs.

    Raises:
        ValueError: naming the pairs (up to 5) with an endpoint that is not in ``names``.
    """
    pairs = [tuple(map(str, e)) for e in edges]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"each {what} must be a [src, dst] pair")
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    idx = pd.Index(list(names)).get_indexer([n for p in pairs for n in p]).reshape(-1, 2)
    bad = np.flatnonzero((idx < 0).any(1))
    if bad.size:
        shown = [pairs[i] for i in bad[:5]]
        raise ValueError(f"{bad.size} {what}(s) name nodes that are not {among}: {shown}")
    return idx.astype(np.int64)


def topological_levels(n: int, edge_index: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
    """Kahn's algorithm, one vectorized step per level.

    Shapes:
        edge_index: [2, E] indices in ``[0, n)``; returns arrays of node ids per level.

    Raises:
        GraphValidationError: the graph has a cycle (the message names a node on it).
    """
    src, dst = np.asarray(edge_index[0]), np.asarray(edge_index[1])
    indeg = np.bincount(dst, minlength=n)
    done = np.zeros(n, dtype=bool)
    levels = []
    frontier = np.flatnonzero(indeg == 0)
    while frontier.size:
        levels.append(frontier)
        done[frontier] = True
        out = np.isin(src, frontier)
        indeg -= np.bincount(dst[out], minlength=n)
        frontier = np.flatnonzero((indeg == 0) & ~done)
    if not done.all():
        left = np.flatnonzero(~done)
        keep = ~done[src] & ~done[dst]
        sub = nx.DiGraph(list(zip(src[keep].tolist(), dst[keep].tolist(), strict=True)))
        node = nx.find_cycle(sub)[0][0] if sub.number_of_edges() else int(left[0])
        raise GraphValidationError(
            f"function -> function edges contain a cycle through node {names[node]!r}"
        )
    return levels


def index_array(edge_index: Any) -> np.ndarray:
    """An edge index (numpy array or torch tensor, any device) as int64 numpy ``[2, E]``."""
    if hasattr(edge_index, "cpu"):
        edge_index = edge_index.cpu()
    return np.asarray(edge_index, dtype=np.int64)


def _reach(parents: Any, start: np.ndarray) -> np.ndarray:
    """Fixed point of ``reach = start | parents @ reach`` (bool ``[n, k]``), loops or not
    (a topological order would refuse them). ``parents``: sparse ``[n, n]``, ``[child,
    parent]``. One sparse product per path length over the entries that step added, so
    each entry is propagated once: a chain of 2,000 nodes costs what its 2M entries do."""
    from scipy import sparse

    reach = start.astype(bool)
    rows, cols = np.nonzero(reach)
    while rows.size:  # a loop over path lengths, not nodes
        frontier = sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=reach.shape
        )
        step = (parents @ frontier).tocoo()
        new = ~reach[step.row, step.col]
        rows, cols = step.row[new], step.col[new]
        reach[rows, cols] = True
    return reach


def _parents(graph: GraphData) -> Any:
    from scipy import sparse

    n_f = len(graph.node_names_dict["function"])
    ff = index_array(graph.edge_index_dict[FF])
    return sparse.csr_matrix(
        (np.ones(ff.shape[1], dtype=np.float32), (ff[1], ff[0])), shape=(n_f, n_f)
    )  # [child, parent]; repeated edges sum, which only the sign of a product reads


def input_ancestry(graph: GraphData) -> np.ndarray:
    """Which inputs reach each function node through the graph: bool ``[N_function,
    N_input]``. A GSNN node's activations are a function of exactly these inputs, so two
    nodes with equal rows carry the same information about the inputs. Feedback loops
    are allowed (a node on one reaches what the whole loop reaches).
    """
    n_f = len(graph.node_names_dict["function"])
    n_in = len(graph.node_names_dict["input"])
    inp = index_array(graph.edge_index_dict[EDGE_TYPES[0]])
    direct = np.zeros((n_f, n_in), dtype=bool)
    direct[inp[1], inp[0]] = True
    return _reach(_parents(graph), direct)


def function_descendants(graph: GraphData) -> np.ndarray:
    """Bool ``[N_function, N_function]``: ``[j, k]`` when a path of one or more function
    -> function edges leads from ``j`` to ``k`` (``[j, j]`` only on a feedback loop)."""
    parents = _parents(graph)
    # reach from the parent side: [k, j] = j is an ancestor of k, transposed
    return _reach(parents, (parents > 0).toarray()).T.copy()


def split_edges(
    edges: Sequence[Edge], fraction: float, *, seed: int = 0
) -> tuple[list[Edge], list[Edge]]:
    """Seeded random split of ``edges`` into ``(first, second)``.

    ``first`` gets ``round(fraction * len(edges))`` edges, clipped so each part has at
    least one edge when ``len(edges) >= 2``. Both parts keep the input order.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    edges = [tuple(e) for e in edges]
    n = len(edges)
    k = int(round(fraction * n))
    if n >= 2:
        k = min(max(k, 1), n - 1)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:k]] = True
    first = [e for e, c in zip(edges, chosen, strict=True) if c]
    second = [e for e, c in zip(edges, chosen, strict=True) if not c]
    return first, second
