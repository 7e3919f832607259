import importlib

import networkx as nx
import numpy as np
import pytest
import torch
from scipy import stats

from gsnn_edges.graph import GSNNGraph, pair_indices
from gsnn_edges.inference.edge_table import function_edge_mask
from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.metrics import score_matrix_metrics
from gsnn_edges.simulate import converging_tier_graph, simulate

torch.set_num_threads(1)
# The module itself (a package re-export of the function must not shadow it here).
ob = importlib.import_module("gsnn_edges.inference.observed_baseline")


@pytest.fixture(scope="module")
def small():
    """A small graph covering every stand-in case.

    f0, f1: input stand-ins (no outputs; f1 shares input in1 with f4's inputs, so f4's
    design repeats a column); f2, f3, f4, f5, f7: output stand-ins (o2 has two parents, f2
    and f3); f6: latent (no input, no output); f5 has only f6 as a function parent.
    """
    nodes = {
        "input": ["in0", "in1", "in2"],
        "function": [f"f{i}" for i in range(8)],
        "output": [f"o{i}" for i in range(6)],
    }
    edges = [("in0", "f0"), ("in1", "f1"), ("in2", "f1"), ("in1", "f4"), ("in2", "f7")]
    edges += [("f0", "f2"), ("f1", "f2"), ("f0", "f3"), ("f1", "f4"), ("f2", "f4")]
    edges += [("f3", "f4"), ("f6", "f5"), ("f4", "f7"), ("f3", "f7")]
    edges += [("f2", "o0"), ("f2", "o2"), ("f3", "o2"), ("f3", "o1"), ("f4", "o3")]
    edges += [("f5", "o4"), ("f7", "o5")]
    g = GSNNGraph.from_edges(nodes, edges)
    X, Y = simulate(g, 150, noise_scale=0.3, seed=3)
    return g, X, Y


def _z(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.mean(0)) / a.std(0)


def _powers(Z, degree):
    """Each column followed by z-scored powers 2..degree of it (grouped by power)."""
    return np.column_stack([Z] + [_z(Z**q) for q in range(2, degree + 1)])


def _partial_test(y, reduced, extra):
    """Textbook partial F test of adding ``extra`` to ``reduced`` (both with an intercept):
    ``(R^2, k, p)`` with ``k`` the rank ``extra`` adds and ``p`` the reduced rank."""
    n = y.size

    def rss(D):
        A = np.column_stack([np.ones(n), D])
        e = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        return e @ e

    def rank(D):
        return np.linalg.matrix_rank(D - D.mean(0)) if D.shape[1] else 0

    full = np.column_stack([reduced, extra])
    p = rank(reduced)
    return 1.0 - rss(full) / rss(reduced), rank(full) - p, p


def _reference(g, X, Y, degree=1, steps=3, index_degree=3):
    """Per-pair loop with np.linalg.lstsq: the definition, written out. A known parent is
    tested in its target's full model; the candidates of each target against that model
    plus the powers of its fitted value, by forward selection (the best joins the model,
    ``steps`` times; Sidak over the candidates it beat)."""
    n, n_f = X.shape[0], g.n_function
    Zx, Zy = _z(X), _z(Y)
    Px = lambda cols: _powers(Zx[:, cols], degree)  # stand-in / design columns
    Py = lambda cols: _powers(Zy[:, cols], degree)
    ei = g.edge_index_dict
    fi = ei[("input", "to", "function")]
    ff = ei[("function", "to", "function")]
    fo = ei[("function", "to", "output")]
    outs = [fo[1, fo[0] == i] for i in range(n_f)]
    ins = [fi[0, fi[1] == i] for i in range(n_f)]
    feats = [Py(outs[i]) if outs[i].size else Px(ins[i]) for i in range(n_f)]
    dag = nx.DiGraph(ff.T.tolist())
    dag.add_nodes_from(range(n_f))
    tests = np.full((3, n_f, n_f), np.nan)  # R^2, k, p
    tested = np.ones((n_f, n_f))
    for j in range(n_f):
        if not outs[j].size:
            continue
        y = Zy[:, outs[j]].mean(1)
        parents = list(ff[0, ff[1] == j])
        design = lambda ps, _j=j: np.column_stack([feats[p] for p in ps] + [Px(ins[_j])])
        for i in parents:
            if feats[i].shape[1]:
                tests[:, i, j] = _partial_test(y, design([p for p in parents if p != i]), feats[i])
        reduced = design(parents)
        if index_degree > 1 and reduced.shape[1]:
            A = np.column_stack([np.ones(n), reduced])
            fitted = A @ np.linalg.lstsq(A, y, rcond=None)[0]
            reduced = np.column_stack([reduced, _powers(fitted[:, None], index_degree)[:, 1:]])
        # an observed node downstream of j is no candidate: it reads j through the graph
        below = {i for i in nx.descendants(dag, j) if outs[i].size}
        open_ = [i for i in range(n_f) if i != j and i not in parents and feats[i].shape[1]]
        open_ = [i for i in open_ if i not in below]
        for step in range(steps + 1):
            got = {i: _partial_test(y, reduced, feats[i]) for i in open_}
            got = {i: t for i, t in got.items() if t[1] > 0}
            if step == steps or not got:
                for i, t in got.items():
                    tests[:, i, j] = t
                break
            best = max(got, key=lambda i: got[i][0])
            tests[:, best, j], tested[best, j] = got[best], len(got)
            open_.remove(best)
            reduced = np.column_stack([reduced, feats[best]])
    r2, k, p = tests
    df2 = n - 1 - p - k
    with np.errstate(invalid="ignore"):
        pvals = stats.f.sf((r2 / k) / ((1 - r2) / df2), k, df2)
    return np.sqrt(r2), -np.expm1(tested * np.log1p(-pvals))  # 1 - (1 - p)^m, tiny p kept


@pytest.mark.parametrize("index_degree", [1, 3])
@pytest.mark.parametrize("degree", [1, 3])
@pytest.mark.parametrize("steps", [0, 3])
def test_matches_per_pair_lstsq_reference(small, degree, steps, index_degree):
    g, X, Y = small
    ref_s, ref_p = _reference(g, X, Y, degree, steps, index_degree)
    kw = {"degree": degree, "steps": steps, "index_degree": index_degree}
    res = observed_baseline(g, X, Y, ridge=0.0, **kw)
    assert np.array_equal(np.isnan(res.scores), np.isnan(ref_s))
    np.testing.assert_allclose(res.scores, ref_s, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.p_values, ref_p, rtol=1e-5)
    assert (ref_p[np.isfinite(ref_p)] < 1e-12).any()  # the far tail is compared too
    # The default tiny ridge only moves the scores at rounding level.
    default_ridge = observed_baseline(g, X, Y, **kw).scores
    np.testing.assert_allclose(default_ridge, ref_s, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("index_degree", [2, 3])
@pytest.mark.parametrize("steps", [0, 2])
def test_matches_reference_with_a_rank_deficient_design(steps, index_degree):
    """A binary stand-in at degree 3: its powers span one direction, so dropping it from
    a design removes rank 1, not 3 (the known edges' degrees of freedom); and k, whose
    only parent is binary, has a two-valued fitted value whose powers add no rank."""
    nodes = {"input": ["x"], "function": ["a", "b", "c", "j", "k"]}
    nodes["output"] = ["oa", "ob", "oc", "oj", "ok"]
    edges = [("x", "a"), ("x", "b"), ("x", "c"), ("a", "j"), ("b", "j"), ("b", "k")]
    edges += [("a", "oa"), ("b", "ob"), ("c", "oc"), ("j", "oj"), ("k", "ok")]
    g = GSNNGraph.from_edges(nodes, edges)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 1))
    a = x[:, 0] + rng.standard_normal(200)
    b = (rng.random(200) < 0.3).astype(float)
    c = rng.standard_normal(200)
    j = a + 2 * b + 0.5 * c + rng.standard_normal(200)
    Y = np.column_stack([a, b, c, j, 1.5 * b + 0.5 * c + rng.standard_normal(200)])
    ref_s, ref_p = _reference(g, x, Y, 3, steps, index_degree)
    res = observed_baseline(g, x, Y, ridge=0.0, steps=steps, index_degree=index_degree)
    assert np.array_equal(np.isnan(res.scores), np.isnan(ref_s))
    np.testing.assert_allclose(res.scores, ref_s, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.p_values, ref_p, rtol=1e-5)


def test_stand_in_wider_than_the_sample_count():
    """40 inputs stand in for f0 at degree 3 (120 columns) with 50 rows: the thin SVD
    has 50 directions, padded back to the stand-in's width."""
    inputs = [f"in{k}" for k in range(40)]
    nodes = {"input": inputs, "function": ["f0", "f1", "f2"], "output": ["o1", "o2"]}
    edges = [(i, "f0") for i in inputs] + [("f0", "f1"), ("f1", "o1"), ("f2", "o2")]
    g = GSNNGraph.from_edges(nodes, edges)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((50, 40)), rng.standard_normal((50, 2))
    ref_s, _ = _reference(g, X, Y, 3, 3)
    res = observed_baseline(g, X, Y, ridge=0.0)
    assert np.array_equal(np.isnan(res.scores), np.isnan(ref_s))
    np.testing.assert_allclose(res.scores, ref_s, rtol=1e-6, atol=1e-8)


def test_memory_chunks_do_not_change_the_result(small, monkeypatch):
    """One design (and one stand-in) per batch gives the same matrices as one batch."""
    g, X, Y = small
    whole = observed_baseline(g, X, Y)
    monkeypatch.setattr(ob, "_CHUNK_ENTRIES", 1)
    chunked = observed_baseline(g, X, Y)
    np.testing.assert_allclose(chunked.scores, whole.scores, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(chunked.p_values, whole.p_values, rtol=1e-8, atol=1e-13)


def test_known_edge_scores_as_a_candidate_tested_first(small):
    """A known parent is tested against its target's model without it: the edge scores as
    it would as a candidate in the graph without it, before any selection and without the
    fitted value's powers (not ~0, as a residual orthogonal to the parent would give)."""
    g, X, Y = small
    res = observed_baseline(g, X, Y)
    names = g.node_names_dict["function"]
    known = []
    for src, dst in sorted(g.function_edges()):
        i, j = names.index(src), names.index(dst)
        without = g.without_function_edges([(src, dst)])
        alone = observed_baseline(without, X, Y, steps=0, index_degree=1)
        # Up to the default ridge of the known edge's fits (the candidate's is exact).
        np.testing.assert_allclose(res.scores[i, j], alone.scores[i, j], rtol=1e-5)
        np.testing.assert_allclose(res.p_values[i, j], alone.p_values[i, j], rtol=1e-4)
        known.append(res.scores[i, j])
    known = np.array(known)
    assert np.isfinite(known).sum() == 8 and np.nanmedian(known) > 0.3


def test_latent_and_unobserved_nodes_are_nan(small):
    g, X, Y = small
    res = observed_baseline(g, X, Y)
    observed = np.array([0, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    featured = np.array([1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    np.testing.assert_array_equal(res.observed_target, observed)
    np.testing.assert_array_equal(res.has_features, featured)
    expect = featured[:, None] & observed[None, :] & ~np.eye(8, dtype=bool)
    # observed sources downstream of the target: f2 -> f4 -> f7, f3 -> f4, f3 -> f7
    expect[[4, 7, 4, 7, 7], [2, 2, 3, 3, 4]] = False
    for m in (res.scores, res.p_values):
        np.testing.assert_array_equal(np.isfinite(m), expect)
    assert ((res.scores[expect] >= 0) & (res.scores[expect] <= 1)).all()


def test_an_observed_descendant_is_no_candidate_for_its_ancestor():
    """in0 -> a -> b -> c and in1 -> d, every function node observed. c's output carries
    b's own noise (b -> c), so given b's parent it still explains much of b's signal;
    d's explains nothing. The baseline must not score c -> b as a missing edge."""
    nodes = {"input": ["in0", "in1"], "function": list("abcd"), "output": list("ABCD")}
    edges = [("in0", "a"), ("a", "b"), ("b", "c"), ("in1", "d")]
    edges += [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]
    g = GSNNGraph.from_edges(nodes, edges)
    X, Y = simulate(g, 2000, noise_scale=0.5, seed=0)
    res = observed_baseline(g, X, Y, degree=1, steps=0, index_degree=1)
    a, b, c, d = range(4)
    assert np.isnan(res.scores[c, b]) and np.isnan(res.p_values[c, b])
    assert np.isnan(res.scores[b, a]) and np.isnan(res.scores[c, a])  # further downstream
    assert np.isfinite(res.scores[d, b]) and np.isfinite(res.scores[a, c])  # not downstream
    # What c -> b would have scored: a partial correlation far above d's (numpy)
    Z = _z(Y)
    resid = lambda v: v - Z[:, [a]] @ np.linalg.lstsq(Z[:, [a]], v, rcond=None)[0]
    r_c = np.corrcoef(resid(Z[:, b]), resid(Z[:, c]))[0, 1]
    assert abs(r_c) > 0.3 > 3 * res.scores[d, b]


def test_held_out_edges_rank_well_on_the_benchmark():
    bench = converging_tier_graph(8)
    X, Y = simulate(bench.full, 2000, seed=0)
    g = bench.partial
    res = observed_baseline(g, X, Y)
    pos = pair_indices(bench.held_out, g.node_names_dict["function"])
    assert res.observed_target[pos[:, 1]].all()  # every held-out target has an output here
    nan_pairs = np.argwhere(np.isnan(res.scores) & ~np.eye(g.n_function, dtype=bool))
    m = score_matrix_metrics(
        res.scores, function_edge_mask(g, g.n_function), pos, exclude=nan_pairs
    )
    assert m["n_positives"] == len(bench.held_out) == 10
    assert m["auc"] > 0.9  # measured 0.970 (0.955 without the fitted value's powers)
    assert (res.p_values[pos[:, 0], pos[:, 1]] < 1e-3).mean() >= 0.7  # measured 9 / 10


def _permuted_p_values(**kw):
    """Each output column shuffled on its own: no pair is related."""
    bench = converging_tier_graph(8)
    X, Y = simulate(bench.full, 300, seed=1)
    rng = np.random.default_rng(0)
    p = []
    for _ in range(10):  # pooled: the p-values of one run share residuals
        Yp = np.column_stack([rng.permutation(col) for col in Y.T])
        pv = observed_baseline(bench.partial, X, Yp, **kw).p_values
        p.append(pv[np.isfinite(pv)])
    p = np.concatenate(p)
    assert p.size == 10 * (8 * 15 - 3)  # less the sink as a source into its 3 parents
    return p


def test_permuted_outputs_give_uniform_p_values_without_selection():
    p = _permuted_p_values(steps=0, degree=1)
    # Measured: mean 0.510, KS 0.035, 4.7% below 0.05 (without the fitted value's powers
    # 0.508, 0.032, 4.6%; data seeds 0..7: KS <= 0.034).
    assert abs(p.mean() - 0.5) < 0.05
    assert stats.kstest(p, "uniform").statistic < 0.07
    assert 0.03 < (p < 0.05).mean() < 0.08


def test_permuted_outputs_give_valid_p_values_with_selection():
    """With forward selection the p-values stay valid but are conservative under this
    null: a pair left unselected lost to the best of the rest, and the chosen pairs are
    adjusted for the choice."""
    p = _permuted_p_values()  # the defaults: cubic stand-ins, 3 steps
    # Measured: mean 0.630; 1.0% / 1.75% / 2.9% below 0.01 / 0.05 / 0.1 (data seeds 0..7,
    # before the fitted value's powers: at most 1.25% / 2.3% / 4.0%; without selection,
    # cubic stand-ins put up to 2.75% below 0.01 at these 300 rows, so the 1% tail is the
    # F test's own).
    assert (p < 0.05).mean() <= 0.05 and (p < 0.1).mean() <= 0.1
    assert (p < 0.01).mean() <= 0.02
    assert p.mean() > 0.55


def test_selection_explains_away_a_missing_parents_child():
    """k -> j is missing and k -> i known: i (a noisy child of k) correlates with j's
    residual only through k. Once k joins j's model, i has nothing left to explain."""
    nodes = {"input": ["x"], "function": ["k", "i", "j"], "output": ["ok", "oi", "oj"]}
    known = [("x", "k"), ("k", "i"), ("k", "ok"), ("i", "oi"), ("j", "oj")]
    g = GSNNGraph.from_edges(nodes, known)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2000)
    k = np.tanh(x) + 0.3 * rng.standard_normal(2000)
    i = k + 0.5 * rng.standard_normal(2000)
    j = k + 0.3 * rng.standard_normal(2000)
    Y = np.column_stack([k, i, j]) + 0.1 * rng.standard_normal((2000, 3))
    marginal = observed_baseline(g, x[:, None], Y, steps=0)
    selected = observed_baseline(g, x[:, None], Y, steps=1)
    parent, child, target = 0, 1, 2
    # Both look related (measured 0.735 and 0.896).
    assert marginal.scores[child, target] > 0.6 and marginal.scores[parent, target] > 0.85
    assert selected.scores[parent, target] == pytest.approx(
        marginal.scores[parent, target], rel=1e-12
    )
    assert selected.scores[child, target] < 0.1  # measured 0.062
    assert selected.p_values[child, target] > 0.01  # measured 0.052; 0 without selection


def test_fitted_value_powers_absorb_a_single_index_misfit():
    """j = tanh(1.5 (a + b) / sqrt(2)), a and b its known parents: the cubes of a and b
    alone miss the cross terms of the sum (9% of j's variance). A non-edge c that copies
    that misfit looks like a missing parent unless the powers of j's fitted value join its
    model; the known parents' own tests do not use them."""
    nodes = {"input": ["xa", "xb", "xc"], "function": ["a", "b", "c", "j"]}
    nodes["output"] = ["oa", "ob", "oc", "oj"]
    edges = [("xa", "a"), ("xb", "b"), ("xc", "c"), ("a", "j"), ("b", "j")]
    edges += [("a", "oa"), ("b", "ob"), ("c", "oc"), ("j", "oj")]
    g = GSNNGraph.from_edges(nodes, edges)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 3))
    a, b = x[:, 0], x[:, 1]
    j = np.tanh(1.5 * (a + b) / np.sqrt(2))
    additive = _powers(x[:, :2], 3)
    additive = np.column_stack([np.ones(2000), additive])
    misfit = j - additive @ np.linalg.lstsq(additive, j, rcond=None)[0]
    c = misfit / misfit.std() + 0.5 * rng.standard_normal(2000)
    Y = np.column_stack([a, b, c, j]) + 0.05 * rng.standard_normal((2000, 4))
    off = observed_baseline(g, x, Y, index_degree=1)
    on = observed_baseline(g, x, Y)
    assert off.scores[2, 3] > 0.8  # measured 0.862
    assert on.scores[2, 3] < 0.7  # measured 0.645
    np.testing.assert_array_equal(on.scores[:2, 3], off.scores[:2, 3])


def test_rejects_bad_inputs(small):
    g, X, Y = small
    with pytest.raises(ValueError, match="columns"):
        observed_baseline(g, X[:, :2], Y)
    with pytest.raises(ValueError, match="equal S"):
        observed_baseline(g, X, Y[:-1])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        observed_baseline(g, Xn, Y)
    with pytest.raises(ValueError, match="ridge"):
        observed_baseline(g, X, Y, ridge=-1.0)
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        observed_baseline(g, X, Y, steps=-1)
    with pytest.raises(ValueError, match="index_degree must be >= 1, got 0"):
        observed_baseline(g, X, Y, index_degree=0)
