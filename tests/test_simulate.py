import numpy as np
import pytest

from gsnn_edges.graph import (
    EDGE_TYPES,
    FF,
    GraphValidationError,
    GSNNGraph,
    split_edges,
    topological_levels,
)
from gsnn_edges.simulate import (
    converging_tier_graph,
    random_layered_dag,
    simulate,
    simulate_frame,
)


@pytest.fixture(scope="module")
def tier25():
    return converging_tier_graph(25)


def test_converging_tier_graph_counts(tier25):
    assert tier25.full.counts() == {
        "input": 25,
        "function": 50,
        "output": 25,
        "edges": {"input_function": 25, "function_function": 72, "function_output": 25},
    }
    assert len(tier25.held_out) == 35
    assert tier25.partial.counts()["edges"]["function_function"] == 37
    assert not set(tier25.held_out) & tier25.partial.function_edges()
    assert set(tier25.held_out) <= tier25.full.function_edges()


def test_converging_tier_graph_structure_and_order(tier25):
    assert tier25.held_out[:2] == [("f1", "f26"), ("f2", "f27")]
    assert tier25.held_out[22] == ("f23", "f48")
    assert tier25.held_out[23:25] == [("f25", "f49"), ("f27", "f49")]
    fo = tier25.full.edge_names("function_output")
    assert ("f25", "o0") in fo and ("f49", "o24") in fo
    assert {("f0", "f25"), ("f1", "f25")} <= tier25.full.function_edges()


def test_converging_tier_graph_rejects_small_n():
    with pytest.raises(ValueError, match="n=2"):
        converging_tier_graph(2)


def test_simulate_shapes_and_finite(tier25):
    X, Y = simulate(tier25.full, 300, seed=1)
    assert X.shape == (300, 25) and Y.shape == (300, 25)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    assert np.isfinite(X).all() and np.isfinite(Y).all()
    assert np.all(Y.std(0) > 0.3) and np.all(Y.std(0) < 3)


def test_simulate_reproducible_with_seed(tier25):
    a = simulate(tier25.full, 100, seed=3)
    b = simulate(tier25.full, 100, seed=3)
    c = simulate(tier25.full, 100, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])


def test_simulate_child_correlates_with_parent():
    nodes = {"input": ["x"], "function": ["f0", "f1"], "output": ["o0", "o1"]}
    g = GSNNGraph.from_edges(nodes, [("x", "f0"), ("f0", "f1"), ("f0", "o0"), ("f1", "o1")])
    for seed in range(5):
        X, Y = simulate(g, 2000, seed=seed)
        assert abs(np.corrcoef(X[:, 0], Y[:, 0])[0, 1]) > 0.5
        assert abs(np.corrcoef(Y[:, 0], Y[:, 1])[0, 1]) > 0.5


def test_simulate_each_tier_b_output_reads_its_input_parent(tier25):
    X, Y = simulate(tier25.full, 2000, seed=0)
    corr = np.corrcoef(X.T, Y.T)[:25, 25:]  # [inputs, outputs]
    # output k reads tier-B node k whose parents are f_k and f_{k+1} (inputs k, k+1)
    k = np.arange(24)
    strongest = np.maximum(np.abs(corr[k, k]), np.abs(corr[k + 1, k]))
    assert np.all(strongest > 0.2)


def test_simulate_noise_scale_zero_is_deterministic_given_inputs():
    nodes = {"input": ["x"], "function": ["f"], "output": ["o"]}
    g = GSNNGraph.from_edges(nodes, [("x", "f"), ("f", "o")])
    X, Y = simulate(g, 500, noise_scale=0.0, seed=0)
    order = np.argsort(X[:, 0])
    assert np.all(np.diff(Y[order, 0]) >= -1e-5) or np.all(np.diff(Y[order, 0]) <= 1e-5)


def test_simulate_frame_columns(tier25):
    df = simulate_frame(tier25.full, 50, seed=2)
    names = tier25.full.node_names_dict
    assert list(df.columns) == names["input"] + names["output"]
    X, Y = simulate(tier25.full, 50, seed=2)
    np.testing.assert_array_equal(df.to_numpy(), np.concatenate([X, Y], axis=1))


def test_simulate_rejects_cycle():
    nodes = {"input": ["x"], "function": ["f0", "f1", "f2"], "output": ["o"]}
    edges = [("x", "f0"), ("f0", "f1"), ("f1", "f2"), ("f2", "f1"), ("f2", "o")]
    g = GSNNGraph.from_edges(nodes, edges)
    with pytest.raises(GraphValidationError, match="cycle through node 'f[12]'"):
        simulate(g, 10)


def test_topological_levels_matches_networkx():
    b = random_layered_dag(3, 4, 5, edge_prob=0.3, seed=0)
    ff = b.full.edge_index_dict[FF]
    levels = topological_levels(20, ff, b.full.node_names_dict["function"])
    level_of = np.empty(20, dtype=int)
    for i, lvl in enumerate(levels):
        level_of[lvl] = i
    assert np.all(level_of[ff[0]] < level_of[ff[1]])
    assert sorted(np.concatenate(levels).tolist()) == list(range(20))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_layered_dag_partial_keeps_parents(seed):
    b = random_layered_dag(6, 4, 8, n_outputs=5, edge_prob=0.3, seed=seed)
    c = b.full.counts()
    assert (c["input"], c["function"], c["output"]) == (6, 32, 5)
    ff_full = b.full.edge_index_dict[FF]
    expected = round(0.3 * ff_full.shape[1])
    assert len(b.held_out) == expected
    assert not set(b.held_out) & b.partial.function_edges()
    assert b.partial.function_edges() | set(b.held_out) == b.full.function_edges()
    ff = b.partial.edge_index_dict[FF]
    has_parent = np.zeros(32, dtype=bool)
    has_parent[ff[1]] = True
    has_parent[b.partial.edge_index_dict[EDGE_TYPES[0]][1]] = True
    assert has_parent.all()
    has_child = np.zeros(32, dtype=bool)
    has_child[ff[0]] = True
    has_child[b.partial.edge_index_dict[EDGE_TYPES[2]][0]] = True
    assert has_child.all()


def test_random_layered_dag_tier_structure():
    b = random_layered_dag(4, 3, 5, edge_prob=0.0, seed=0)
    ff = b.full.edge_index_dict[FF]
    assert ff.shape[1] == 10  # one matching edge per tier>0 node
    assert np.all(ff[1] // 5 == ff[0] // 5 + 1)
    fo = b.full.edge_index_dict[EDGE_TYPES[2]]
    assert np.all(fo[0] >= 10)  # outputs read the last tier
    assert b.full.n_output == 5  # n_outputs defaults to width


def test_random_layered_dag_seeded():
    a = random_layered_dag(5, 3, 6, seed=7)
    b = random_layered_dag(5, 3, 6, seed=7)
    c = random_layered_dag(5, 3, 6, seed=8)
    assert a.full == b.full and a.held_out == b.held_out
    assert (a.full != c.full) or (a.held_out != c.held_out)


def test_random_layered_dag_rejects_bad_args():
    with pytest.raises(ValueError, match="width"):
        random_layered_dag(3, 2, 0)
    with pytest.raises(ValueError, match="edge_prob"):
        random_layered_dag(3, 2, 4, edge_prob=1.5)


def test_split_edges_sizes_and_seed():
    edges = [(f"f{i}", f"f{i + 1}") for i in range(10)]
    a, b = split_edges(edges, 0.3, seed=0)
    assert len(a) == 3 and len(b) == 7
    assert sorted(a + b) == sorted(edges)
    assert split_edges(edges, 0.3, seed=0) == (a, b)
    assert split_edges(edges, 0.3, seed=1) != (a, b)


def test_split_edges_keeps_one_each():
    edges = [("a", "b"), ("c", "d")]
    assert [len(x) for x in split_edges(edges, 0.0)] == [1, 1]
    assert [len(x) for x in split_edges(edges, 1.0)] == [1, 1]
    assert split_edges([("a", "b")], 0.5)[0] + split_edges([("a", "b")], 0.5)[1] == [("a", "b")]
    with pytest.raises(ValueError, match="fraction"):
        split_edges(edges, 1.5)


def test_random_layered_dag_observe_all_gives_every_function_node_its_output():
    b = random_layered_dag(4, 3, 5, edge_prob=0.3, seed=1, observe_all=True)
    fo = b.full.edge_index_dict[EDGE_TYPES[2]]
    assert b.full.n_output == b.full.n_function == 15
    assert np.array_equal(fo, np.stack([np.arange(15), np.arange(15)]))
    same = random_layered_dag(4, 3, 5, edge_prob=0.3, seed=1)  # f->f edges do not change
    assert np.array_equal(b.full.edge_index_dict[FF], same.full.edge_index_dict[FF])
    with pytest.raises(ValueError, match="observe_all"):
        random_layered_dag(4, 3, 5, 5, observe_all=True)
