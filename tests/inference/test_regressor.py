import copy

import numpy as np
import pytest
import torch
from scipy.stats import norm as normal

from gsnn_edges import GSNN, MagnitudeEdgeRegressor
from gsnn_edges.inference.magnitudes import node_magnitudes
from gsnn_edges.inference.regressor_stats import (
    ABS_EPS,
    REL_EPS,
    gram_update_,
    standardize_update,
)
from gsnn_edges.nn.dropout import keep_scale

from patching import patched


@pytest.fixture(scope="module")
def bench(benchmarks):
    """This module's benchmark: width 4 (8 function nodes)."""
    return benchmarks.graph(4)


def _setup(bench, **kw):
    g = bench.partial
    model = GSNN(g.edge_index_dict, g.node_names_dict, channels=3, layers=3, norm="none")
    return model, MagnitudeEdgeRegressor(model, g, **kw), g


def _train_step(model, reg, x, y):
    reg.pre_forward()
    yhat = model(x)
    loss = torch.nn.functional.mse_loss(yhat, y)
    reg.arm_retained_grads()
    loss.backward()
    return reg.aux_step()


def test_magnitudes_match_per_node_loop():
    z = torch.randn(4, 2, 12)
    groups = torch.arange(4).repeat_interleave(3)
    got = node_magnitudes(z, groups, 4, ("sum", "max", "mean", "l2"))
    for i in range(4):
        s = z[..., 3 * i : 3 * i + 3].abs()
        assert torch.allclose(got[0, ..., i], s.sum(-1))
        assert torch.allclose(got[1, ..., i], s.amax(-1))
        assert torch.allclose(got[2, ..., i], s.mean(-1))
        assert torch.allclose(got[3, ..., i], s.square().sum(-1).sqrt())


def test_magnitudes_segment_path_matches_loop_for_uneven_groups():
    groups = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    z = torch.randn(5, 7)
    got = node_magnitudes(z, groups, 3, ("sum", "max", "mean", "l2"))
    for i in range(3):
        s = z[:, groups == i].abs()
        ref = [s.sum(-1), s.amax(-1), s.mean(-1), s.square().sum(-1).sqrt()]
        for k in range(4):
            assert torch.allclose(got[k, :, i], ref[k], atol=1e-6)


def _per_node(t, ch, f):
    """``f`` over each node's ``ch`` channels of ``|t|``: ``[B, N*ch]`` -> ``[B, N]``, a loop."""
    return torch.stack([f(t[:, ch * i : ch * (i + 1)].abs()) for i in range(t.shape[1] // ch)], 1)


def _zscore(v, mean=None, var=None):
    """Column z-score with the regressor's relative eps: batch statistics unless given."""
    if mean is None:
        mean, var = v.mean(0), v.var(0, unbiased=False)
    return (v - mean) / torch.sqrt(var + REL_EPS * var.mean() + ABS_EPS)


SUM, MAX = (lambda s: s.sum(-1)), (lambda s: s.amax(-1))


def _dense_terms(model, W, masks=None, running=None):
    """Independent reference of the regressor's loss terms from the cached activations:
    per-node loops, per-term dense products; term ``t`` uses ``W * masks[t]`` if given and
    the ``running`` statistics (eval mode) instead of the batch ones if given."""
    zs = [b._last_pre_norm_activation for b in model.ResBlocks]
    r = running or {}
    terms = []
    for p in range(len(zs) - 1):
        y = _per_node(zs[p + 1].grad, model.channels, SUM)
        Y = _zscore(y, *(r[k][p] for k in ("y_mean", "y_var") if k in r))
        for f in (SUM, MAX):
            t = len(terms)
            x = _per_node(zs[p].detach(), model.channels, f)
            X = _zscore(x, *(r[k][t] for k in ("x_mean", "x_var") if k in r))
            Wt = W if masks is None else W * masks[t]
            terms.append(((X @ Wt - Y) ** 2).mean())
    return terms


def test_aux_step_loss_and_update_match_dense_autograd(bench):
    model, reg, _ = _setup(bench, aggregators=("sum", "max"), ridge=0.05, lr=1e-2)
    W0 = reg.W.detach().clone()
    x, y = torch.randn(6, model.n_inputs), torch.randn(6, model.n_outputs)
    reg.pre_forward()
    yhat = model(x)
    loss = torch.nn.functional.mse_loss(yhat, y)
    reg.arm_retained_grads()
    loss.backward()
    W = W0.clone().requires_grad_(True)
    terms = _dense_terms(model, W)
    ref_loss = torch.stack(terms).sum() + 0.05 * W.square().sum()
    ref_loss.backward()
    opt = torch.optim.AdamW([W], lr=1e-2, weight_decay=reg.weight_decay)
    opt.step()
    out = reg.aux_step()
    assert out["n_terms"] == 4
    assert out["aux_loss"] == pytest.approx(float(torch.stack(terms).mean().detach()), rel=1e-5)
    assert torch.allclose(reg.W.detach(), W.detach(), atol=1e-6)
    assert int(reg.n_rows) == 4 * 6


def test_aux_step_dropout_draws_an_independent_mask_per_term(bench):
    """With dropout, term t sees W * M_t / keep with its own mask M_t (the reference's
    semantics); a single mask shared by all terms gives a different update."""
    model, reg, _ = _setup(bench, aggregators=("sum", "max"), ridge=0.0, lr=1e-2, dropout=0.5)
    W0 = reg.W.detach().clone()
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(torch.randn(8, model.n_inputs)), torch.randn(8, 4))
    reg.arm_retained_grads()
    loss.backward()
    n, t = reg.n_nodes, reg.n_terms
    state = torch.get_rng_state()
    masks = reg._keep_masks(t, n) * keep_scale(0.5)  # the draw aux_step will make
    assert set(masks.unique().tolist()) == {0.0, 2.0} and not torch.equal(masks[0], masks[1])
    torch.set_rng_state(state)

    def updated(term_masks):
        W = W0.clone().requires_grad_(True)
        torch.stack(_dense_terms(model, W, term_masks)).sum().backward()
        torch.optim.AdamW([W], lr=1e-2, weight_decay=reg.weight_decay).step()
        return W.detach()

    per_term, shared = updated(masks), updated(masks[:1].expand(t, n, n))
    reg.aux_step()
    assert torch.allclose(reg.W.detach(), per_term, atol=1e-6)
    assert not torch.allclose(reg.W.detach(), shared, atol=1e-4)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_keep_masks_are_unbiased_bernoulli_and_independent(bench, rate):
    _, reg, _ = _setup(bench, dropout=rate)
    torch.manual_seed(0)
    m = reg._keep_masks(6, 300) * keep_scale(rate)  # 540k entries
    assert m.shape == (6, 300, 300) and m.unique().tolist() == pytest.approx(
        [0.0, 1 / (1 - rate)], rel=1e-4
    )
    dropped = (m == 0).double()
    assert abs(float(dropped.mean()) - rate) < 0.003 and abs(float(m.mean()) - 1.0) < 0.005
    flat = dropped.reshape(6, -1)
    corr = torch.corrcoef(flat)[~torch.eye(6, dtype=bool)]  # terms draw independently
    assert corr.abs().max() < 0.01
    lagged = torch.corrcoef(torch.stack([flat[0, :-1], flat[0, 1:]]))[0, 1]  # and entries
    assert abs(float(lagged)) < 0.01


def test_masked_step_is_the_same_in_chunks_of_terms(bench):
    """Chunks of terms (large N) draw the same masks in the same order as one batch, so the
    steps agree, also on a second step that reuses the first step's scratch buffers with a
    shorter last chunk."""
    from gsnn_edges.inference import regressor as regressor_module

    x, y = torch.randn(8, bench.partial.n_input), torch.randn(8, 4)

    def two_steps(chunk):
        torch.manual_seed(3)
        model, reg, _ = _setup(bench, aggregators=("sum", "max"), dropout=0.3, lr=1e-2)
        n = reg.n_nodes
        with patched(regressor_module, _MASK_CHUNK=chunk * n * n):
            losses = [_train_step(model, reg, x, y)["aux_loss"] for _ in range(2)]
        return losses, reg.W.detach().clone()

    whole_losses, whole_W = two_steps(chunk=64)  # all 4 terms in one product
    for chunk in (1, 3):
        losses, W = two_steps(chunk)
        assert losses == pytest.approx(whole_losses, rel=1e-5)
        assert torch.allclose(W, whole_W, atol=1e-6)


def test_standardize_handles_gradient_sized_variances():
    """SPEC section 4: per-node batch variances of 1e-8..2e-7 (L1 gradient magnitudes) come
    out with unit variance; a constant column stays near 0 (its float32 rounding noise is
    not blown up), also in eval mode."""
    torch.manual_seed(0)
    n, t, b = 6, 2, 64
    scale = torch.logspace(-4, -3.35, n)[:, None, None]  # std 1e-4..4.5e-4: var 1e-8..2e-7
    v = 0.01 + scale * torch.randn(n, t, b)
    v[0] = 0.02  # a node whose gradient magnitude never varies
    mean, var = torch.zeros(t, n), torch.ones(t, n)
    z = standardize_update(v.clone(), mean, var, 1.0, training=True)
    sd = z.var(-1, unbiased=False).sqrt()
    assert z[0].abs().max() < 1e-2
    assert torch.allclose(sd[1:], torch.ones(n - 1, t), atol=1e-3), sd
    ev = standardize_update(v.clone(), mean, var, 1.0, training=False)  # momentum 1: same stats
    assert torch.allclose(ev, z, atol=1e-3)


def test_magnitude_layouts_agree(bench):
    """The feature-major fast path equals the generic segment path on real caches."""
    model, reg, _ = _setup(bench, aggregators=("sum", "max", "mean", "l2"))
    reg.pre_forward()
    loss = model(torch.randn(5, model.n_inputs)).square().sum()
    reg.arm_retained_grads()
    loss.backward()
    fast = reg._magnitudes()
    assert reg._group_size == model.channels  # uniform groups: fast path taken above
    with patched(reg, _group_size=None):  # force the generic segment path
        slow = reg._magnitudes()
    for a, b in zip(fast, slow, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    reg.aux_step()


def test_aux_step_releases_activations_even_on_error(bench):
    model, reg, _ = _setup(bench)
    reg.pre_forward()
    model(torch.randn(3, model.n_inputs)).sum()
    reg.arm_retained_grads()
    with pytest.raises(RuntimeError, match=r"call loss.backward\(\)"):
        reg.aux_step()  # backward never ran
    assert all(b._last_pre_norm_activation is None for b in model.ResBlocks)
    assert not model._store_activations


def test_call_order_errors_name_the_missing_call(bench):
    model, reg, _ = _setup(bench)
    with pytest.raises(RuntimeError, match=r"pre_forward\(\) is missing"):
        reg.aux_step()
    with pytest.raises(RuntimeError, match=r"before pre_forward\(\)"):
        reg.arm_retained_grads()
    reg.pre_forward()
    with pytest.raises(RuntimeError, match=r"run yhat = model\(x\)"):
        reg.arm_retained_grads()
    reg.pre_forward()
    model(torch.randn(2, model.n_inputs))
    with pytest.raises(RuntimeError, match=r"arm_retained_grads\(\) is missing"):
        reg.aux_step()


def test_constructor_validation(bench):
    g = bench.partial
    ck = GSNN(g.edge_index_dict, g.node_names_dict, 2, 3, checkpoint=True)
    with pytest.raises(ValueError, match="checkpoint=True"):
        MagnitudeEdgeRegressor(ck, g)
    ln = GSNN(g.edge_index_dict, g.node_names_dict, 2, 3, norm="layer")
    with pytest.raises(ValueError, match="use_pre_norm=False needs norm"):
        MagnitudeEdgeRegressor(ln, g, use_pre_norm=False)
    MagnitudeEdgeRegressor(ln, g)  # pre-norm with layer norm is fine
    with pytest.raises(ValueError, match="unknown aggregator"):
        MagnitudeEdgeRegressor(ln, g, aggregators=("sum", "median"))
    with pytest.raises(ValueError, match="score_mode must be one of"):
        MagnitudeEdgeRegressor(ln, g, score_mode="square")
    for rate in (-0.1, 1.0, 1 - 1e-6):  # the last: no 16-bit lane would keep an entry
        with pytest.raises(ValueError, match="dropout rate must be in"):
            MagnitudeEdgeRegressor(ln, g, dropout=rate)
    one = GSNN(g.edge_index_dict, g.node_names_dict, 2, 1)
    with pytest.raises(ValueError, match=">= 2 layers"):
        MagnitudeEdgeRegressor(one, g)


def test_post_norm_features_use_last_activation(bench):
    """With ``use_pre_norm=False`` features are magnitudes of each block's post-nonlinearity
    activation ``h`` and targets those of ``dL/dh``, not of the pre-norm ``z``."""
    model, reg, _ = _setup(bench, use_pre_norm=False)
    x, y = torch.randn(5, model.n_inputs), torch.randn(5, model.n_outputs)
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(x), y)
    reg.arm_retained_grads()
    loss.backward()
    X, Y = reg._magnitudes()  # [N, T, B], [N, P, B]
    ch, blocks = model.channels, model.ResBlocks
    for p in range(len(blocks) - 1):
        h, z = blocks[p]._last_activation.detach(), blocks[p]._last_pre_norm_activation
        for k, f in enumerate((SUM, MAX)):
            torch.testing.assert_close(X[:, 2 * p + k].t(), _per_node(h, ch, f))
        assert not torch.allclose(X[:, 2 * p].t(), _per_node(z.detach(), ch, SUM), atol=1e-3)
        torch.testing.assert_close(
            Y[:, p].t(), _per_node(blocks[p + 1]._last_activation.grad, ch, SUM)
        )
    assert np.isfinite(reg.aux_step()["aux_loss"])


@pytest.mark.parametrize("mode", ["abs", "relu", "signed"])
def test_score_modes(bench, mode):
    _, reg, _ = _setup(bench, score_mode=mode)
    W = reg.W.detach()
    expected = {"abs": W.abs(), "relu": W.clamp(min=0), "signed": W}[mode]
    assert torch.equal(reg.score_matrix(), expected)


def test_evaluate_columns_order_and_pvalues(bench):
    model, reg, g = _setup(bench)
    for _ in range(5):
        _train_step(model, reg, torch.randn(16, model.n_inputs), torch.randn(16, model.n_outputs))
    res = reg.evaluate()
    n = g.n_function
    assert list(res.columns) == [
        "src_func",
        "dst_func",
        "src_idx",
        "dst_idx",
        "score",
        "has_edge",
        "p_value",
        "q_value",
    ]
    assert len(res) == n * (n - 1) and (res.src_idx != res.dst_idx).all()
    assert (np.diff(res.score.to_numpy()) <= 0).all()
    names = g.node_names_dict["function"]
    row = res.iloc[0]
    assert row.src_func == names[row.src_idx] and row.dst_func == names[row.dst_idx]
    assert res.has_edge.sum() == g.edge_index_dict[("function", "to", "function")].shape[1]
    # p-values follow the Gram formula of SPEC section 4
    Wn = reg.W.detach().double().numpy()
    G = reg.gram.double().numpy() / int(reg.n_rows) + (reg.ridge + 1e-8) * np.eye(n)
    sigma2 = float(reg.rss) / max(n * int(reg.n_rows) - n, 1)  # one residual per row and target
    se = np.sqrt(sigma2 * np.diag(np.linalg.inv(G)))
    p_ref = 1 - normal.cdf(Wn / se[:, None])
    got = res.p_value.to_numpy()
    assert np.allclose(got, p_ref[res.src_idx, res.dst_idx], atol=1e-8)
    assert ((res.q_value >= res.p_value - 1e-12) & (res.q_value <= 1)).all()


def test_gram_update_accumulates_design_rows_and_residuals():
    rng = np.random.default_rng(0)
    gram, n_rows = torch.zeros(4, 4), torch.zeros((), dtype=torch.long)
    rss = torch.zeros((), dtype=torch.float64)

    steps = [(rng.normal(size=(4, 6)), rng.random(3)) for _ in range(3)]
    for x, sums in steps:
        gram_update_(gram, n_rows, rss, torch.tensor(x, dtype=torch.float32), torch.tensor(sums))
    np.testing.assert_allclose(gram.numpy(), sum(x @ x.T for x, _ in steps), rtol=1e-5)
    assert int(n_rows) == 18
    assert float(rss) == pytest.approx(sum(s.sum() for _, s in steps))


def test_pvalues_all_one_before_enough_rows(bench):
    _, reg, _ = _setup(bench)
    assert (reg.evaluate().p_value == 1.0).all()


def test_evaluate_against_matches_edge_table_metrics(bench):
    model, reg, g = _setup(bench)
    _train_step(model, reg, torch.randn(8, model.n_inputs), torch.randn(8, model.n_outputs))
    held = bench.held_out
    direct = reg.evaluate_against(held, top_k=(1, 3))
    _, via_table = MagnitudeEdgeRegressor.evaluate_target_ranking(
        reg.evaluate(), held, top_k=(1, 3)
    )
    for key in ("auc", "mrr", "top@1", "top@3", "filtered_mrr", "n_positives"):
        assert direct[key] == pytest.approx(via_table[key])
    with pytest.raises(ValueError, match="not function nodes"):
        reg.evaluate_against([("f0", "nope")])


def test_maybe_save_best_and_load_best(bench):
    model, reg, _ = _setup(bench)
    with pytest.raises(RuntimeError, match="no checkpoint saved"):
        reg.load_best()
    assert reg.maybe_save_best(0.5)
    saved = reg.W.detach().clone()
    assert not reg.maybe_save_best(0.4)
    assert not reg.maybe_save_best(float("nan"))
    _train_step(model, reg, torch.randn(8, model.n_inputs), torch.randn(8, model.n_outputs))
    assert not torch.equal(reg.W.detach(), saved)
    reg.load_best()
    assert torch.equal(reg.W.detach(), saved)
    assert reg.maybe_save_best(0.3, mode="min")


def test_state_dict_round_trip_excludes_gsnn(bench):
    model, reg, g = _setup(bench)
    _train_step(model, reg, torch.randn(8, model.n_inputs), torch.randn(8, model.n_outputs))
    state = reg.state_dict()
    assert not any(k.startswith("model") for k in state)
    _, other, _ = _setup(bench)
    other.load_state_dict(state)
    assert torch.equal(other.W, reg.W)
    assert torch.equal(other.gram, reg.gram)


def test_eval_mode_uses_running_stats_and_no_dropout(bench):
    """In eval mode the step z-scores with the running statistics (left unchanged) and
    applies no dropout: it equals AdamW on the unmasked dense reference."""
    model, reg, _ = _setup(bench, aggregators=("sum", "max"), dropout=0.5, lr=1e-2)
    _train_step(model, reg, torch.randn(8, model.n_inputs), torch.randn(8, model.n_outputs))
    reg.eval()
    names = ("x_mean", "x_var", "y_mean", "y_var")
    running = {k: getattr(reg, k).clone() for k in names}
    W = reg.W.detach().clone().requires_grad_(True)
    opt = torch.optim.AdamW([W], lr=reg.lr, weight_decay=reg.weight_decay)
    opt.load_state_dict(copy.deepcopy(reg.optimizer.state_dict()))  # its Adam moments
    reg.pre_forward()
    loss = torch.nn.functional.mse_loss(model(torch.randn(8, model.n_inputs)), torch.randn(8, 4))
    reg.arm_retained_grads()
    loss.backward()
    terms = torch.stack(_dense_terms(model, W, running=running))
    (terms.sum() + reg.ridge * W.square().sum()).backward()
    opt.step()
    out = reg.aux_step()
    assert out["aux_loss"] == pytest.approx(float(terms.detach().mean()), rel=1e-5)
    torch.testing.assert_close(reg.W.detach(), W.detach(), atol=1e-6, rtol=1e-5)
    for k in names:
        assert torch.equal(getattr(reg, k), running[k]), k
