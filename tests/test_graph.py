import networkx as nx
import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from gsnn_edges.graph import (
    EDGE_TYPES,
    FF,
    GraphValidationError,
    GSNNGraph,
    as_graph,
    function_descendants,
    input_ancestry,
)

IF, FO = EDGE_TYPES[0], EDGE_TYPES[2]
NODES = {"input": ["a", "b"], "function": ["f0", "f1", "f2"], "output": ["o0", "o1"]}
EDGES = [
    ("a", "f0"),
    ("b", "f1"),
    ("f0", "f2"),
    ("f1", "f2"),
    ("f0", "f1"),
    ("f2", "o0"),
    ("f1", "o1"),
]


@pytest.fixture
def graph() -> GSNNGraph:
    return GSNNGraph.from_edges(NODES, EDGES)


def _index_dict() -> dict:
    return {
        IF: torch.tensor([[0, 1], [0, 1]]),
        FF: torch.tensor([[0, 1, 0], [2, 2, 1]]),
        FO: torch.tensor([[2, 1], [0, 1]]),
    }


def test_graph_from_edges_builds_indices(graph):
    assert graph.edge_index_dict[IF].tolist() == [[0, 1], [0, 1]]
    assert graph.edge_index_dict[FF].tolist() == [[0, 1, 0], [2, 2, 1]]
    assert graph.edge_index_dict[FO].tolist() == [[2, 1], [0, 1]]
    assert all(t.dtype == np.int64 for t in graph.edge_index_dict.values())
    assert sorted(graph.edge_names()) == sorted(EDGES)


def test_graph_counts(graph):
    assert graph.counts() == {
        "input": 2,
        "function": 3,
        "output": 2,
        "edges": {"input_function": 2, "function_function": 3, "function_output": 2},
    }
    assert (graph.n_input, graph.n_function, graph.n_output) == (2, 3, 2)


def test_graph_direct_constructor_matches_from_edges(graph):
    assert GSNNGraph(dict(NODES), _index_dict()) == graph


def test_graph_missing_edge_type_key_is_filled_empty():
    g = GSNNGraph(dict(NODES), {IF: torch.tensor([[0, 1], [0, 1]]), FO: _index_dict()[FO]})
    assert g.edge_index_dict[FF].shape == (2, 0)
    assert g.counts()["edges"]["function_function"] == 0


def test_graph_json_round_trip(graph):
    obj = graph.to_json()
    assert obj["nodes"] == NODES
    assert GSNNGraph.from_json(obj) == graph
    assert as_graph(obj) == graph


def test_graph_from_hetero_round_trip(graph):
    data = HeteroData()
    data.node_names_dict = {k: list(v) for k, v in NODES.items()}
    for key, ei in _index_dict().items():
        data[key].edge_index = ei
    g = GSNNGraph.from_hetero(data)
    assert g == graph
    assert as_graph(data) == graph


def test_graph_to_hetero_and_back_is_the_same_graph(graph):
    """to_hetero writes a real HeteroData (names per node store, LongTensor edge
    indices, num_nodes) that PyG validates, and from_hetero reads it back unchanged."""
    data = graph.to_hetero()
    assert isinstance(data, HeteroData) and data.validate()
    assert data.node_types == ["input", "function", "output"]
    assert data["function"].num_nodes == 3 and data["function"].node_names == NODES["function"]
    ff = data[FF].edge_index
    assert ff.dtype == torch.long and ff.tolist() == graph.edge_index_dict[FF].tolist()
    back = GSNNGraph.from_hetero(data)
    assert back == graph
    ff[0, 0] = 2  # the HeteroData does not share memory with the graph
    assert graph.edge_index_dict[FF][0, 0] == 0
    assert GSNNGraph.from_hetero(graph.without_function_edges([("f0", "f1")]).to_hetero()) == (
        graph.without_function_edges([("f0", "f1")])
    )


def test_graph_from_hetero_accepts_plain_object(graph):
    class Holder:
        node_names_dict = NODES
        edge_index_dict = _index_dict()

    assert GSNNGraph.from_hetero(Holder()) == graph


def test_graph_from_networkx_round_trip(graph):
    g = nx.DiGraph()
    for nt, names in NODES.items():
        g.add_nodes_from(names, type=nt)
    g.add_edges_from(EDGES)
    out = GSNNGraph.from_networkx(g)
    assert out.node_names_dict == NODES
    assert out.function_edges() == graph.function_edges()
    assert sorted(out.edge_names()) == sorted(EDGES)
    assert as_graph(g) == out


def test_graph_from_networkx_rejects_untyped_node():
    g = nx.DiGraph()
    g.add_node("x")
    with pytest.raises(GraphValidationError, match="'x'"):
        GSNNGraph.from_networkx(g)


def test_graph_as_graph_returns_same_object(graph):
    assert as_graph(graph) is graph
    with pytest.raises(GraphValidationError, match="int"):
        as_graph(3)


def test_graph_edge_names_by_type(graph):
    assert graph.edge_names(FF) == [("f0", "f2"), ("f1", "f2"), ("f0", "f1")]
    assert graph.edge_names("function_output") == [("f2", "o0"), ("f1", "o1")]
    assert graph.function_edges() == {("f0", "f2"), ("f1", "f2"), ("f0", "f1")}
    with pytest.raises(GraphValidationError, match="bogus"):
        graph.edge_names("bogus")


def test_graph_without_function_edges(graph):
    g = graph.without_function_edges([("f0", "f2")])
    assert g.function_edges() == {("f1", "f2"), ("f0", "f1")}
    assert graph.function_edges() == {("f0", "f2"), ("f1", "f2"), ("f0", "f1")}  # unchanged
    assert g.edge_names(IF) == graph.edge_names(IF)
    with pytest.raises(GraphValidationError, match=r"\('f2', 'f0'\)"):
        graph.without_function_edges([("f2", "f0")])
    with pytest.raises(GraphValidationError, match="'a'"):
        graph.without_function_edges([("a", "f0")])


def test_graph_with_function_edges(graph):
    g = graph.without_function_edges([("f0", "f2")]).with_function_edges([("f0", "f2")])
    assert g.function_edges() == graph.function_edges()
    with pytest.raises(GraphValidationError, match=r"duplicate edge \('f0', 'f1'\)"):
        graph.with_function_edges([("f0", "f1")])


# --------------------------------------------------------------------------- validation
def _nodes(**over):
    out = {k: list(v) for k, v in NODES.items()}
    out.update(over)
    return out


@pytest.mark.parametrize(
    ("nodes", "edges", "match"),
    [
        ({"input": ["a"], "function": ["f0"]}, [("a", "f0")], "missing node type 'output'"),
        (_nodes(hidden=["h"]), EDGES, "unknown node type 'hidden'"),
        (_nodes(function=["f0", "f1", "f2", "f1"]), EDGES, r"duplicate node name.*'f1'"),
        (_nodes(output=["o0", "a"]), EDGES, r"duplicate node name.*'a'"),
        (_nodes(function=["f0", "f1", "f2", ""]), EDGES, "empty node name"),
        (_nodes(function=[]), [], "no 'function' nodes"),
        (_nodes(input=[]), [], "no 'input' nodes"),
        (NODES, [*EDGES, ("f0", "zz")], r"unknown endpoint 'zz'"),
        (NODES, [*EDGES, ("a", "o0")], r"\('a', 'o0'\) goes input -> output.*allowed"),
        (NODES, [*EDGES, ("o0", "f0")], r"output -> function.*function -> output"),
        (NODES, [*EDGES, ("f0", "a")], "function -> input"),
        (NODES, [*EDGES, ("a", "b")], "input -> input"),
        (NODES, [*EDGES, ("f0", "f2")], r"duplicate edge \('f0', 'f2'\)"),
        (NODES, [*EDGES, ("a", "f0")], r"duplicate edge \('a', 'f0'\)"),
        (NODES, [*EDGES, ("f1", "f1")], r"self-loop \('f1', 'f1'\)"),
        (NODES, EDGES[:-1], "output node 'o1' has no parent"),
    ],
)
def test_graph_from_edges_validation(nodes, edges, match):
    with pytest.raises(GraphValidationError, match=match):
        GSNNGraph.from_edges(nodes, edges)


def test_graph_rejects_non_string_name():
    with pytest.raises(GraphValidationError, match="node name 3"):
        GSNNGraph.from_edges(_nodes(function=["f0", "f1", "f2", 3]), EDGES)


def _with(key, value):
    eid = _index_dict()
    eid[key] = value
    return eid


@pytest.mark.parametrize(
    ("eid", "match"),
    [
        (_with(FF, torch.tensor([[0, 5], [2, 2]])), r"index 5 at \[0, 1\].*3 'function'"),
        (_with(IF, torch.tensor([[0, -1], [0, 1]])), r"index -1 .*'input'"),
        (_with(FO, torch.tensor([[2, 1], [0, 2]])), r"index 2 .*2 'output'"),
        (_with(FF, torch.tensor([0, 1, 2])), r"shape \[2, E\], got \[3\]"),
        (_with(FF, torch.zeros(3, 2, dtype=torch.long)), r"got \[3, 2\]"),
        (_with(FF, torch.tensor([[0.0], [2.0]])), "integer dtype, got float32"),
        (_with(FF, torch.tensor([[0, 0], [2, 2]])), r"duplicate edge \('f0', 'f2'\)"),
        (_with(FF, torch.tensor([[2], [2]])), r"self-loop \('f2', 'f2'\)"),
        (_with(("input", "to", "output"), torch.tensor([[0], [0]])), "unknown edge type key"),
        (_with(("function", "to", "input"), torch.tensor([[0], [0]])), "'input'"),
        (_with(FO, torch.tensor([[2], [0]])), "output node 'o1' has no parent"),
    ],
)
def test_graph_index_validation(eid, match):
    with pytest.raises(GraphValidationError, match=match):
        GSNNGraph(dict(NODES), eid)


def test_graph_accepts_numpy_indices(graph):
    eid = {k: v.numpy().astype(np.int32) for k, v in _index_dict().items()}
    g = GSNNGraph(dict(NODES), eid)
    assert g == graph
    assert g.edge_index_dict[FF].dtype == np.int64


def test_graph_validation_error_is_value_error():
    assert issubclass(GraphValidationError, ValueError)


def test_graph_from_json_missing_key():
    with pytest.raises(GraphValidationError, match="'edges'"):
        GSNNGraph.from_json({"nodes": NODES})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reachability_against_networkx_also_with_feedback_loops(seed):
    """function_descendants and input_ancestry on random graphs whose function edges
    hold cycles, against networkx's traversal."""
    rng = np.random.default_rng(seed)
    n_in, n_f = 4, 12
    nodes = {
        "input": [f"in{i}" for i in range(n_in)],
        "function": [f"f{i}" for i in range(n_f)],
        "output": ["o0"],
    }
    ff = {(f"f{a}", f"f{b}") for a, b in rng.integers(0, n_f, (16, 2)) if a != b}
    inp = {(f"in{a}", f"f{b}") for a, b in rng.integers(0, [n_in, n_f], (5, 2))}
    g = GSNNGraph.from_edges(nodes, [*ff, *inp, ("f0", "o0")])
    fg = nx.DiGraph(list(ff))
    fg.add_nodes_from(nodes["function"])
    assert not nx.is_directed_acyclic_graph(fg)  # the case topological levels refuse
    names = nodes["function"]
    loops = {v for v in names if any(v in c for c in nx.simple_cycles(fg))}
    want = [[w in nx.descendants(fg, v) or (w == v and v in loops) for w in names] for v in names]
    np.testing.assert_array_equal(function_descendants(g), want)
    full = nx.DiGraph([*ff, *inp])
    full.add_nodes_from(names)
    anc = [[f"in{i}" in nx.ancestors(full, v) for i in range(n_in)] for v in names]
    np.testing.assert_array_equal(input_ancestry(g), anc)
