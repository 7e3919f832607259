import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from gsnn_edges import GSNN
from gsnn_edges.graph import input_ancestry, pair_indices
from gsnn_edges.inference import confirm as confirm_mod
from gsnn_edges.inference.confirm import (
    CONFIRM_COLUMNS,
    confirm_edges,
    equivalent_sources,
    set_covers,
    with_confirmation,
)
from gsnn_edges.inference.edge_table import edge_table
from gsnn_edges.simulate import converging_tier_graph, random_layered_dag

from patching import patched


@pytest.fixture(scope="module")
def bench(benchmarks):
    """This module's benchmark: width 4 (8 function nodes)."""
    return benchmarks.graph(4)


PAIRS = np.array([[0, 5], [3, 1], [7, 2], [1, 6]])


def _model(bench, seed=0):
    torch.manual_seed(seed)
    g = bench.partial
    return GSNN(g.edge_index_dict, g.node_names_dict, channels=3, layers=3, norm="none"), g


def _with_edges(model, pairs, theta):
    """Forward hooks adding ``theta[m, l-1] * sum_c h_src^{l-1}[c]`` onto every channel of
    ``dst`` at block ``l``: the candidate edges written out one by one (the reference)."""
    k = model.channels
    handles = []
    for layer in range(1, len(model.ResBlocks)):

        def add(_module, _inputs, out, layer=layer):  # lin_in output is feature-major [C, B]
            h = model.ResBlocks[layer - 1]._last_activation
            out = out.clone()
            for m, (i, j) in enumerate(pairs):
                t = h[:, i * k : (i + 1) * k].sum(1)
                out[j * k : (j + 1) * k] += theta[m, layer - 1] * t[None, :]
            return out

        handles.append(model.ResBlocks[layer].lin_in.register_forward_hook(add))
    return handles


def _run(model, x, theta_pairs=None, theta=None):
    model.eval()
    handles = _with_edges(model, theta_pairs, theta) if theta is not None else []
    try:
        with patched(model, _store_activations=True):
            return model(x)
    finally:
        for h in handles:
            h.remove()


def test_variant_losses_match_edges_written_out(bench):
    model, _ = _model(bench)
    x, y = torch.randn(9, model.n_inputs), torch.randn(9, model.n_outputs)
    src, dst = torch.as_tensor(PAIRS[:, 0]), torch.as_tensor(PAIRS[:, 1])
    thetas = torch.randn(3, len(PAIRS), 2)
    thetas[0] = 0  # the base model
    edges = confirm_mod._CandidateEdges(model, src, dst)
    got = confirm_mod._losses(edges, thetas, x, y, chunk_rows=18)  # 2 variants per chunk
    for v in range(3):
        with torch.no_grad():
            pred = _run(model, x, PAIRS, thetas[v])
        torch.testing.assert_close(got[v], (pred - y).square().mean(1), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(got[0], (_run(model, x) - y).square().mean(1))
    assert all(b._last_activation is None and not b._store_activations for b in model.ResBlocks)
    # the segment-sum path (channel groups of unequal size) on the same groups
    assert edges.size == model.channels
    edges.size = None
    torch.testing.assert_close(confirm_mod._losses(edges, thetas, x, y, chunk_rows=18), got)


def test_fit_is_adam_on_the_edges_written_out(bench):
    """The joint fit equals Adam on the reference (hook-built) edges over the same
    batches, and lowers the training loss."""
    model, g = _model(bench)
    x, y = torch.randn(30, model.n_inputs), torch.randn(30, model.n_outputs)
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    ref = torch.zeros(len(PAIRS), 2, requires_grad=True)
    opt = torch.optim.Adam([ref], lr=0.05)
    for _ in range(2):
        for xb, yb in batches:
            loss = torch.nn.functional.mse_loss(_run(model, xb, PAIRS, ref), yb)
            (ref.grad,) = torch.autograd.grad(loss, ref)
            opt.step()
    src, dst = torch.as_tensor(PAIRS[:, 0]), torch.as_tensor(PAIRS[:, 1])
    edges = confirm_mod._CandidateEdges(model, src, dst)
    theta = confirm_mod._train(edges, torch.ones(1, len(PAIRS)), batches, 2, 0.05, 65536)[0]
    torch.testing.assert_close(theta, ref.detach(), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(_run(model, x), y)
        after = torch.nn.functional.mse_loss(_run(model, x, PAIRS, theta), y)
    assert after < before
    assert all(p.grad is None for p in model.parameters())  # the network stays frozen
    assert all(p.requires_grad for p in model.parameters())  # and trainable once done


def test_variants_train_side_by_side_as_they_would_alone(bench):
    """Variants batched together (in chunks) train exactly as each would on its own, and
    a dropped candidate stays at exactly 0."""
    model, _ = _model(bench)
    x, y = torch.randn(24, model.n_inputs), torch.randn(24, model.n_outputs)
    batches = [(x[:12], y[:12]), (x[12:], y[12:])]
    edges = confirm_mod._CandidateEdges(
        model, torch.as_tensor(PAIRS[:, 0]), torch.as_tensor(PAIRS[:, 1])
    )
    keep = torch.ones(3, len(PAIRS))
    keep[1, 0] = keep[2, 3] = 0
    together = confirm_mod._train(edges, keep, batches, 2, 0.02, chunk_rows=24)  # 2 a chunk
    for v in range(3):
        alone = confirm_mod._train(edges, keep[v : v + 1], batches, 2, 0.02, 65536)
        torch.testing.assert_close(together[v], alone[0], rtol=1e-4, atol=1e-6)
    assert together[1, 0].abs().sum() == 0 and together[2, 3].abs().sum() == 0
    assert together[0].abs().sum() > 0  # the kept weights moved from 0
    assert not torch.equal(together[0], together[1])  # dropping a candidate changes the fit


def test_paired_t_against_scipy():
    d = np.random.default_rng(1).normal(0.1, 1.0, size=(3, 30))
    d[2] = 0.0  # an edge that changed nothing
    for margin in (0.0, 0.05):
        mean, p = confirm_mod._paired_t(d, margin)
        for k in range(2):
            ref = stats.ttest_1samp(d[k], margin, alternative="greater").pvalue
            assert p[k] == pytest.approx(ref) and mean[k] == pytest.approx(d[k].mean())
        assert p[2] == 1.0


def test_judge_tests_each_effect_against_min_effect(bench):
    """min_effect moves the null from 'no improvement' to 'an improvement of at most
    min_effect' (summed over outputs): the same fits, the same effects, p-values of the
    paired t-test shifted by min_effect / n_outputs; an edge whose effect lies below the
    margin is no longer significant."""
    model, g = _model(bench, seed=1)
    torch.manual_seed(0)
    x = torch.randn(400, model.n_inputs)
    theta_true = torch.zeros(1, 2)
    theta_true[0] = 1.5
    with torch.no_grad():
        y = _run(model, x, PAIRS[:1], theta_true) + 0.05 * torch.randn(400, model.n_outputs)
    train = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 300, 50)]
    fit = confirm_mod.fit_variants(model, g, PAIRS, range(len(PAIRS) + 1), train, x[300:], y[300:])
    plain = confirm_mod.judge(g, PAIRS, fit)
    assert plain.effect_margin == 0.0 and plain.q_values[0] < 0.01
    margin = 2.0 * float(plain.effect[0])  # above the planted edge's own effect
    # min_effect sums over the outputs; effect averages over them
    strict = confirm_mod.judge(g, PAIRS, fit, min_effect=margin * model.n_outputs)
    assert strict.effect_margin == pytest.approx(margin)
    np.testing.assert_array_equal(strict.effect, plain.effect)
    d = fit.losses[1:] - fit.losses[:1]
    for m in range(len(PAIRS)):
        ref = stats.ttest_1samp(d[m], margin, alternative="greater").pvalue
        assert strict.p_values[m] == pytest.approx(ref)
    assert strict.p_values[0] > 0.5 and (strict.p_values >= plain.p_values).all()
    with pytest.raises(ValueError, match="min_effect"):
        confirm_mod.judge(g, PAIRS, fit, min_effect=-1e-3)


def test_confirm_edges_finds_a_planted_edge(bench):
    """Outputs that depend on a node the graph does not connect to them: the planted edge
    is confirmed with a tiny p-value and a positive effect, and the p-values are exactly
    the paired t-tests of the held-out loss differences."""
    model, g = _model(bench, seed=1)
    torch.manual_seed(0)
    x = torch.randn(400, model.n_inputs)
    theta_true = torch.zeros(len(PAIRS), 2)
    theta_true[0] = 1.5  # f0 -> f5 exists in the data, not in the graph
    with torch.no_grad():
        y = _run(model, x, PAIRS[:1], theta_true[:1]) + 0.05 * torch.randn(400, model.n_outputs)
    train = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 300, 50)]
    c = confirm_edges(model, g, PAIRS, train, x[300:], y[300:])
    assert c.n_train_rows == 300 and c.n_heldout_rows == 100
    assert c.theta.shape == (len(PAIRS), 2)
    assert c.p_values[0] < 1e-4 and c.effect[0] > 0 and c.q_values[0] < 0.01
    assert (c.p_values[1:] > 1e-3).all()
    np.testing.assert_allclose(c.q_values, confirm_mod.bh_qvalues(c.p_values))


def test_confirmation_fitted_in_chunks_is_the_confirmation_of_one_run(bench):
    """The service's fan-out: the M + 1 variants fitted in chunks (in any order, on any
    worker) and judged together give one run's p-values, effects and weights; a set of
    fits that misses a variant is refused."""
    model, g = _model(bench, seed=2)
    torch.manual_seed(3)
    x = torch.randn(120, model.n_inputs)
    y = torch.randn(120, model.n_outputs)
    train = [(x[i : i + 30], y[i : i + 30]) for i in range(0, 90, 30)]
    whole = confirm_edges(model, g, PAIRS, train, x[90:], y[90:])
    fit = lambda variants: confirm_mod.fit_variants(
        model, g, PAIRS, variants, train, x[90:], y[90:]
    )
    parts = [fit([3, 4]), fit(range(0, 3))]  # variants 0..4 for 4 candidates
    chunked = confirm_mod.judge(g, PAIRS, confirm_mod.VariantFits.concat(parts))
    for name in ("effect", "p_values", "q_values", "theta"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-5)
    assert chunked.n_train_rows == 90 and chunked.n_heldout_rows == 30
    with pytest.raises(ValueError, match="not 0..4"):
        confirm_mod.judge(g, PAIRS, confirm_mod.VariantFits.concat(parts[1:]))


def test_confirm_edges_rejects_bad_input(bench):
    model, g = _model(bench)
    x, y = torch.randn(5, model.n_inputs), torch.randn(5, model.n_outputs)
    with pytest.raises(ValueError, match="at least 3 held-out rows"):
        confirm_edges(model, g, PAIRS, [(x, y)], x[:2], y[:2])
    with pytest.raises(ValueError, match="self edge"):
        confirm_edges(model, g, [[2, 2]], [(x, y)], x, y)
    with pytest.raises(ValueError, match="must index"):
        confirm_edges(model, g, [[0, model.n_function]], [(x, y)], x, y)
    with pytest.raises(ValueError, match="no rows"):
        confirm_edges(model, g, PAIRS, [], x, y)


def test_with_confirmation_fills_confirmed_rows_only():
    names = ["a", "b", "c"]
    table = edge_table(
        np.arange(9.0).reshape(3, 3), names, np.zeros((3, 3), bool), np.full((3, 3), 0.5)
    )
    c = confirm_mod.EdgeConfirmation(
        src=np.array([2, 0]),
        dst=np.array([1, 2]),
        effect=np.array([0.3, -0.1]),
        p_values=np.array([0.01, 0.9]),
        q_values=np.array([0.02, 0.9]),
        theta=np.zeros((2, 1)),
        n_train_rows=10,
        n_heldout_rows=5,
        equivalent=np.array([[True, False, False], [False, True, True]]),
    )
    out = with_confirmation(table, c)
    assert list(out.columns[-5:]) == list(CONFIRM_COLUMNS)
    key = out.set_index([out.src_func.astype(str), out.dst_func.astype(str)])
    assert key.loc[("c", "b"), "confirm_p_value"] == 0.01 and key.loc[("c", "b"), "confirmed"]
    assert key.loc[("a", "c"), "effect"] == -0.1 and key.loc[("a", "c"), "confirm_q_value"] == 0.9
    assert key.loc[("c", "b"), "equivalents"] == 1 and key.loc[("a", "c"), "equivalents"] == 2
    rest = out.loc[~out.confirmed]
    assert len(rest) == 4 and rest[list(CONFIRM_COLUMNS[1:])].isna().all().all()
    pd.testing.assert_frame_equal(out[table.columns], table)
    plain = with_confirmation(table)
    assert not plain.confirmed.any() and plain.confirm_q_value.isna().all()
    bad = confirm_mod.EdgeConfirmation(
        np.array([1]), np.array([1]), *(np.zeros(1),) * 3, np.zeros((1, 1)), 1, 1, np.zeros((1, 3))
    )
    with pytest.raises(ValueError, match="not a row"):
        with_confirmation(table, bad)


def test_no_discoveries_where_the_model_is_exactly_right(bench):
    """The confirmation's own null: outputs drawn from the model itself plus noise, so no
    added edge can improve held-out prediction. Over five noise draws, the screening's top
    candidates give at most one discovery at q < 0.1 in all (the planted-edge test above
    is the other side: a real edge is found)."""
    from gsnn_edges.inference.score_test import ScoreTestScorer

    model, g = _model(bench, seed=2)
    found = 0
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(500, model.n_inputs, generator=gen)
        with torch.no_grad():
            y = _run(model, x) + 0.1 * torch.randn(500, model.n_outputs, generator=gen)
        train = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 400, 50)]
        q = ScoreTestScorer(model, g).fit(train).score_matrix().numpy()
        q[ScoreTestScorer(model, g).in_graph] = -np.inf
        np.fill_diagonal(q, -np.inf)
        top = np.stack(np.unravel_index(np.argsort(-q, axis=None)[:10], q.shape), 1)
        c = confirm_edges(model, g, top, train, x[400:], y[400:])
        found += int((c.q_values < 0.1).sum())
    assert found <= 1


def _inputs_reaching(graph, node):
    """The inputs with a path to ``node`` (networkx, the reference)."""
    g = nx.DiGraph(graph.edge_names())
    return {a for a in nx.ancestors(g, node) if a in set(graph.node_names_dict["input"])}


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_equivalent_sources_against_sets_of_inputs(seed, loop):
    """Every (source, candidate) pair checked one by one with networkx ancestor sets;
    ``loop``: with a feedback loop (an edge's reverse added), which the service accepts."""
    graph = random_layered_dag(6, 4, 5, 4, edge_prob=0.3, seed=seed).partial
    if loop:
        a, b = graph.edge_names("function_function")[0]
        graph = graph.with_function_edges([(b, a)])
    names = list(graph.node_names_dict["function"])
    reach = {v: _inputs_reaching(graph, v) for v in names}
    np.testing.assert_array_equal(
        input_ancestry(graph),
        [[i in reach[v] for i in graph.node_names_dict["input"]] for v in names],
    )
    parents = {v: {a for a, b in graph.edge_names() if b == v} for v in names}
    rng = np.random.default_rng(seed)
    pairs = rng.choice(len(names), (30, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    got = equivalent_sources(graph, pairs)
    for row, (i, j) in zip(got, pairs, strict=True):
        dst, new = names[j], reach[names[i]] - reach[names[j]]
        want = [
            k not in (i, j) and names[k] not in parents[dst] and reach[names[k]] - reach[dst] == new
            for k in range(len(names))
        ]
        assert row.tolist() == want


def test_benchmark_siblings_are_equivalent_to_the_missing_parents():
    """On the SPEC benchmark the sibling f{n+k-1} reaches only input k (its other parent's
    edge is held out), as does the missing parent fk: their edges into f{n+k} bring the
    same information; fk -> f{n+k} for k = 1 has none (f{n} also reaches input 0)."""
    bench = converging_tier_graph(5)  # f0..f4 tier A, f5..f8 tier B, sink f9
    names = list(bench.partial.node_names_dict["function"])
    held = pair_indices(bench.held_out, names)
    eq = equivalent_sources(bench.partial, held)
    rows = zip(bench.held_out, eq, strict=True)
    listed = {e: [names[k] for k in np.flatnonzero(r)] for e, r in rows}
    assert listed[("f1", "f6")] == []
    assert listed[("f2", "f7")] == ["f6"] and listed[("f3", "f8")] == ["f7"]
    proxies = pair_indices([("f6", "f7"), ("f0", "f7"), ("f6", "f8")], names)
    assert set_covers(bench.partial, proxies, bench.held_out).tolist() == [True, False, False]
    assert set_covers(bench.partial, proxies[:0], bench.held_out).shape == (0,)
