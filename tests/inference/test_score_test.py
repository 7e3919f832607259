import numpy as np
import pytest
import torch
from scipy.stats import chi2

from gsnn_edges import GSNN
from gsnn_edges.inference.magnitudes import node_sums
from gsnn_edges.inference.score_test import ScoreTestScorer

from patching import patched, set_existing


@pytest.fixture(scope="module")
def bench(benchmarks):
    """This module's benchmark: width 4 (8 function nodes)."""
    return benchmarks.graph(4)


def _model(bench, seed=0):
    torch.manual_seed(seed)
    g = bench.partial
    return GSNN(g.edge_index_dict, g.node_names_dict, channels=3, layers=3, norm="none"), g


def _edge_gradients(model, x, y, i, j, p):
    """Per-sample dL_b/da for an explicit new edge: z_j^{p+1} += a * sum_c h_i^p[c] (the
    all-ones block the scorer's channel reduction tests), one sample at a time."""
    k = model.channels
    a = torch.zeros((), requires_grad=True)
    rows = torch.zeros(model.n_function * k)
    rows[j * k : (j + 1) * k] = 1.0

    def add_edge(_module, _inputs, out):  # lin_in output is feature-major [C, B]
        h = model.ResBlocks[p]._last_activation  # [B, C], cached by block p just before
        return out + a * rows[:, None] * h[:, i * k : (i + 1) * k].sum(1)[None, :]

    handle = model.ResBlocks[p + 1].lin_in.register_forward_hook(add_edge)
    model.eval()
    try:
        with patched(model, _store_activations=True):
            out = []
            for b in range(x.shape[0]):
                loss = torch.nn.functional.mse_loss(model(x[b : b + 1]), y[b : b + 1])
                out.append(torch.autograd.grad(loss, a)[0])
    finally:
        handle.remove()
    return torch.stack(out).double()


def test_score_test_matches_per_sample_gradients_of_an_explicit_edge(bench):
    model, g = _model(bench)
    x, y = torch.randn(7, model.n_inputs), torch.randn(7, model.n_outputs)
    scorer = ScoreTestScorer(model, g).fit([(x[:4], y[:4]), (x[4:], y[4:])])  # uneven batches
    assert scorer.n_rows == 7 and scorer.n_pairs == 2
    n = model.n_function
    Q_ref = torch.zeros(n, n, dtype=torch.float64)
    silent = 0
    for i, j in [(0, 5), (3, 1), (6, 6), (7, 2)]:
        for p in range(2):
            u = _edge_gradients(model, x, y, i, j, p)
            assert torch.allclose(scorer.U[p, i, j], u.sum(), rtol=1e-4, atol=1e-9)
            assert torch.allclose(scorer.V[p, i, j], u.square().sum(), rtol=1e-4, atol=1e-12)
            if u.square().sum() > 0:  # a node silent at block p contributes nothing
                Q_ref[i, j] += u.sum() ** 2 / u.square().sum()
            else:
                silent += 1
        Q = scorer.score_matrix()
        assert Q[i, j] == pytest.approx(float(Q_ref[i, j]), rel=1e-4)
        assert scorer.p_values()[i, j] == pytest.approx(chi2.sf(float(Q_ref[i, j]), 2), rel=1e-3)
    assert 0 < silent < 8  # both branches ran (block 0 sees only tier A's inputs)
    assert all(not b._store_activations and b._last_activation is None for b in model.ResBlocks)
    assert all(p.grad is None for p in model.parameters())  # the pass leaves no .grad


def test_score_test_table_and_metrics(bench):
    model, g = _model(bench)
    x, y = torch.randn(20, model.n_inputs), torch.randn(20, model.n_outputs)
    scorer = ScoreTestScorer(model, g).fit([(x, y)])
    table = scorer.evaluate()
    n = model.n_function
    assert len(table) == n * (n - 1) and table["score"].is_monotonic_decreasing
    Q = scorer.score_matrix().numpy()
    np.testing.assert_allclose(table["score"], Q[table.src_idx, table.dst_idx])
    np.testing.assert_allclose(table["p_value"], chi2.sf(table["score"], 2))
    assert table["has_edge"].sum() == len(g.function_edges())
    got = scorer.evaluate_against(bench.held_out, top_k=(1,))
    assert got["n_positives"] == len(bench.held_out) and "top@1" in got


def test_score_test_errors(bench):
    model, g = _model(bench)
    scorer = ScoreTestScorer(model, g)
    with pytest.raises(RuntimeError, match=r"call fit\(loader\)"):
        scorer.score_matrix()
    with pytest.raises(ValueError, match="no rows"):
        scorer.fit([])
    set_existing(model, "checkpoint", True)
    with pytest.raises(ValueError, match="checkpoint=True"):
        ScoreTestScorer(model, g)


def test_node_sums_segment_path_matches_reshape_path():
    groups = torch.arange(4).repeat_interleave(3)
    a = torch.randn(2, 5, 12)
    fast = node_sums(a, groups, 4, 3)
    slow = node_sums(a, groups, 4, None)
    assert torch.allclose(fast, slow, atol=1e-6)
    assert torch.allclose(fast[..., 1], a[..., 3:6].sum(-1))
    uneven = torch.tensor([0, 2, 2, 1, 0])
    b = torch.randn(3, 5)
    got = node_sums(b, uneven, 3, None)
    assert torch.allclose(got[:, 0], b[:, 0] + b[:, 4]) and torch.allclose(
        got[:, 2], b[:, 1:3].sum(1)
    )
    # channels first (the blocks' own layout): the same sums along axis 0, both paths
    for size, g in ((3, groups), (None, groups)):
        torch.testing.assert_close(
            node_sums(a.permute(2, 0, 1), g, 4, size, True), fast.permute(2, 0, 1)
        )
    torch.testing.assert_close(node_sums(b.t(), uneven, 3, None, channels_first=True), got.t())
