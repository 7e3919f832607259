"""The GSNN prior-knowledge graph: container, validation and loaders (SPEC section 1).

A :class:`GSNNGraph` holds three node types (``input``, ``function``, ``output``) and
three edge types (input -> function, function -> function, function -> output). Edges are
stored per type as ``LongTensor [2, E_type]`` of indices into each type's name list, the
layout of a ``torch_geometric.data.HeteroData``.

Every constructor validates; a :class:`GraphValidationError` message always names the
offending node, edge, key or index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch

from gsnn_edges.metrics import pair_indices

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


def _as_index_tensor(key: EdgeType, value: Any) -> torch.Tensor:
    """Convert an edge index to a contiguous ``LongTensor [2, E]`` after dtype/shape checks."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if t.numel() == 0 and (t.dim() <= 1 or tuple(t.shape) == (2, 0)):
        return torch.zeros(2, 0, dtype=torch.long)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise GraphValidationError(
            f"edge_index_dict[{key!r}] must have an integer dtype, got {t.dtype}"
        )
    if t.dim() != 2 or t.shape[0] != 2:
        raise GraphValidationError(
            f"edge_index_dict[{key!r}] must have shape [2, E], got {list(t.shape)}"
        )
    return t.detach().to(device="cpu", dtype=torch.long).contiguous()


def _check_index_range(key: EdgeType, ei: torch.Tensor, names: dict[str, list[str]]) -> None:
    """Reject negative or out-of-range indices (vectorized)."""
    for row, nt in ((0, key[0]), (1, key[2])):
        n = len(names[nt])
        bad = (ei[row] < 0) | (ei[row] >= n)
        if bool(bad.any()):
            col = int(bad.nonzero()[0, 0])
            raise GraphValidationError(
                f"edge_index_dict[{key!r}] has index {int(ei[row, col])} at [{row}, {col}], "
                f"out of range for {n} {nt!r} nodes"
            )


def _check_edge_semantics(key: EdgeType, ei: torch.Tensor, names: dict[str, list[str]]) -> None:
    """Reject duplicate edges and function self-loops (vectorized)."""
    src_names, dst_names = names[key[0]], names[key[2]]
    if key == FF:
        loops = ei[0] == ei[1]
        if bool(loops.any()):
            i = int(ei[0, loops.nonzero()[0, 0]])
            raise GraphValidationError(
                f"self-loop ({src_names[i]!r}, {src_names[i]!r}) is not allowed; "
                "the model adds its own self edges"
            )
    code = ei[0] * max(len(dst_names), 1) + ei[1]
    uniq, counts = torch.unique(code, return_counts=True)
    if bool((counts > 1).any()):
        c = int(uniq[counts > 1][0])
        s, d = divmod(c, max(len(dst_names), 1))
        raise GraphValidationError(
            f"duplicate edge ({src_names[s]!r}, {dst_names[d]!r}) in {key!r}"
        )


def _check_edges(
    edge_index_dict: Mapping[Any, Any], names: dict[str, list[str]]
) -> dict[EdgeType, torch.Tensor]:
    """Validate edge indices; return all three keys (empty ``[2, 0]`` where absent)."""
    if not isinstance(edge_index_dict, Mapping):
        raise GraphValidationError(
            f"edge_index_dict must be a mapping, got {type(edge_index_dict).__name__}"
        )
    out = {et: torch.zeros(2, 0, dtype=torch.long) for et in EDGE_TYPES}
    for key, value in edge_index_dict.items():
        if not isinstance(key, tuple) or tuple(key) not in EDGE_TYPES:
            raise GraphValidationError(
                f"unknown edge type key {key!r}; allowed keys are {list(EDGE_TYPES)}"
            )
        ei = _as_index_tensor(key, value)
        _check_index_range(key, ei, names)
        _check_edge_semantics(key, ei, names)
        out[key] = ei
    n_out = len(names["output"])
    has_parent = torch.bincount(out[EDGE_TYPES[2]][1], minlength=n_out) > 0
    if not bool(has_parent.all()):
        j = int((~has_parent).nonzero()[0, 0])
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
            Missing keys are filled with empty ``[2, 0]`` tensors.

    Shapes:
        edge_index_dict[('input','to','function')]: [2, E_if]
        edge_index_dict[('function','to','function')]: [2, E_ff]
        edge_index_dict[('function','to','output')]: [2, E_fo]

    Raises:
        GraphValidationError: see :func:`_check_node_names` and :func:`_check_edges`.
    """

    node_names_dict: dict[str, list[str]]
    edge_index_dict: dict[EdgeType, torch.Tensor]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Re-run every check, normalizing names to lists and indices to ``LongTensor``."""
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
            et: torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()
            for et, pairs in buckets.items()
        }
        return cls(names, eid)

    @classmethod
    def from_hetero(cls, data: Any) -> GSNNGraph:
        """Build from any object with ``node_names_dict`` and ``edge_index_dict``
        attributes, e.g. a ``torch_geometric.data.HeteroData``."""
        try:
            names, eid = data.node_names_dict, data.edge_index_dict
        except (AttributeError, KeyError) as exc:
            raise GraphValidationError(
                f"{type(data).__name__} object lacks node_names_dict/edge_index_dict: {exc}"
            ) from exc
        eid = {tuple(k): v.clone() if isinstance(v, torch.Tensor) else v for k, v in eid.items()}
        return cls({k: list(v) for k, v in dict(names).items()}, eid)

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
            ei = self.edge_index_dict[key].numpy()
            src = np.asarray(self.node_names_dict[key[0]], dtype=object)[ei[0]]
            dst = np.asarray(self.node_names_dict[key[2]], dtype=object)[ei[1]]
            out.extend(zip(src.tolist(), dst.tolist(), strict=True))
        return out

    def function_edges(self) -> set[Edge]:
        """Set of function -> function edges by name."""
        return set(self.edge_names(FF))

    def _function_pairs(self, edges: Iterable[Edge]) -> torch.Tensor:
        """Map ``(src, dst)`` function-name pairs to a ``LongTensor [2, K]``."""
        try:
            pairs = pair_indices(edges, self.node_names_dict["function"])
        except ValueError as e:
            raise GraphValidationError(str(e)) from None
        return torch.from_numpy(pairs).T

    def _with_ff(self, ff: torch.Tensor) -> GSNNGraph:
        eid = {k: v.clone() for k, v in self.edge_index_dict.items()}
        eid[FF] = ff.contiguous()
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
        missing = ~torch.isin(drop, have)
        if bool(missing.any()):
            k = int(missing.nonzero()[0, 0])
            names = self.node_names_dict["function"]
            raise GraphValidationError(
                f"edge ({names[int(rm[0, k])]!r}, {names[int(rm[1, k])]!r}) is not a "
                "function -> function edge of the graph"
            )
        return self._with_ff(ff[:, ~torch.isin(have, drop)])

    def with_function_edges(self, edges: Iterable[Edge]) -> GSNNGraph:
        """Copy of the graph with the given function -> function edges appended.

        Raises:
            GraphValidationError: unknown/non-function endpoint, self-loop, or an edge
                already in the graph (reported as a duplicate edge).
        """
        add = self._function_pairs(edges)
        return self._with_ff(torch.cat([self.edge_index_dict[FF], add], dim=1))

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GSNNGraph):
            return NotImplemented
        return self.node_names_dict == other.node_names_dict and all(
            torch.equal(self.edge_index_dict[k], other.edge_index_dict[k]) for k in EDGE_TYPES
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        c = self.counts()
        e = ", ".join(f"{k}={v}" for k, v in c["edges"].items())
        return (
            f"GSNNGraph(input={c['input']}, function={c['function']}, "
            f"output={c['output']}, edges: {e})"
        )


def as_graph(obj: Any) -> GSNNGraph:
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
