import math

import pytest
import torch
import torch.nn.functional as F

from gsnn_edges.nn import GSNN
from gsnn_edges.simulate import simulate

from patching import set_existing


@pytest.fixture(scope="module")
def bench(benchmarks):
    """This module's benchmark: width 4 (8 function nodes)."""
    return benchmarks.graph(4)


def _model(graph, **kw):
    g = graph.partial
    args = dict(channels=3, layers=3, norm="none")
    args.update(kw)
    return GSNN(g.edge_index_dict, g.node_names_dict, **args)


def _dense_forward(model: GSNN, x: torch.Tensor) -> torch.Tensor:
    """Reference forward with dense masked matrices, batch-major, one node at a time."""
    n_f, ch = model.n_function, model.channels
    state = torch.zeros(x.shape[0], model.n_edges)
    for e in range(model.n_edges):
        s = int(model.edge_src[e])
        if model.input_node_mask[s]:
            state[:, e] = x[:, s - n_f]
    for block in model.ResBlocks:
        z = state @ block.lin_in.to_dense().t() + block.lin_in.bias
        if model.norm == "layer":
            z = (
                torch.cat([F.layer_norm(z[:, i * ch : (i + 1) * ch], (ch,)) for i in range(n_f)], 1)
                * block.norm.weight[:, 0]
                + block.norm.bias[:, 0]
            )
        h = F.elu(z)
        bias = block.lin_out.bias * (model.edge_src < n_f).float()
        out = h @ block.lin_out.to_dense().t() + bias
        state = out + torch.relu(block.residual_weight) * state
    state = state / math.sqrt(model.layers)
    y = torch.zeros(x.shape[0], model.n_outputs)
    for e in range(model.n_edges):
        d = int(model.edge_dst[e])
        if model.output_node_mask[d]:
            o = d - n_f - model.n_inputs
            deg = int((model.edge_dst == d).sum())
            y[:, o] += state[:, e] / math.sqrt(deg)
    return y


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_gsnn_forward_matches_dense_reference(bench, norm):
    model = _model(bench, norm=norm).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # break the zero-bias symmetry
    x = torch.randn(5, model.n_inputs)
    assert torch.allclose(model(x), _dense_forward(model, x), atol=1e-5)


def test_gsnn_counts_and_masks(bench):
    model = _model(bench)
    g = bench.partial
    n_edges = sum(v.shape[1] for v in g.edge_index_dict.values()) + g.n_function
    assert model.n_edges == n_edges
    assert model.channel_groups.tolist() == [i for i in range(g.n_function) for _ in range(3)]
    assert int(model.input_node_mask.sum()) == g.n_input
    assert int(model.output_node_mask.sum()) == g.n_output
    assert len(model.ResBlocks) == 3
    assert "function=8" in repr(model)


def test_gsnn_without_self_edges_has_fewer_edges(bench):
    a, b = _model(bench), _model(bench, add_function_self_edges=False)
    assert a.n_edges - b.n_edges == bench.partial.n_function


def test_gsnn_share_layers_shares_sparse_weights_not_norms(bench):
    model = _model(bench, share_layers=True, norm="layer")
    b0, b1 = model.ResBlocks[0], model.ResBlocks[1]
    assert b0.lin_in is b1.lin_in and b0.lin_out is b1.lin_out
    assert b0.norm is not b1.norm
    assert len(model.ResBlocks) == 3


@pytest.mark.parametrize("share_layers", [False, True])
def test_gsnn_reset_parameters_restores_the_init_and_resets_shared_layers_once(
    bench, share_layers, monkeypatch
):
    """After training-like changes, reset_parameters brings back 1 residual weights, unit
    norms, zero biases and fresh sparse and MLP weights; shared layers reset once."""
    model = _model(bench, share_layers=share_layers, norm="batch", node_mlp=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(3.0)
        for block in model.ResBlocks:
            block.norm.running_mean.add_(1.0)
    calls = []
    lin_in = type(model.ResBlocks[0].lin_in)
    original = lin_in.reset_parameters
    monkeypatch.setattr(
        lin_in, "reset_parameters", lambda self: (calls.append(id(self)), original(self))
    )
    model.reset_parameters()
    blocks = model.ResBlocks
    layers = {id(b.lin_in) for b in blocks} | {id(b.lin_out) for b in blocks} | {id(model.readout)}
    assert len(layers) == (3 if share_layers else 7)
    assert sorted(calls) == sorted(layers)  # each distinct sparse layer once
    for block in model.ResBlocks:
        assert block.residual_weight.item() == 1.0
        assert torch.equal(block.norm.weight, torch.ones_like(block.norm.weight))
        assert torch.equal(block.norm.running_mean, torch.zeros_like(block.norm.running_mean))
        assert block.lin_in.weight.abs().max() <= block.lin_in.init_bound.max()
        assert torch.equal(block.lin_in.bias, torch.zeros_like(block.lin_in.bias))
        first = block.node_mlp.net[0]
        assert first.weight.abs().max() <= 1 / math.sqrt(first.in_features)  # torch's default


@pytest.mark.parametrize("norm", ["layer", "batch", "groupbatch", "rms", "none"])
def test_gsnn_all_norms_train_and_give_finite_grads(bench, norm):
    model = _model(bench, norm=norm, node_mlp=True, dropout=0.1)
    y = model(torch.randn(8, model.n_inputs))
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_gsnn_checkpoint_gives_same_output_and_grads(bench):
    torch.manual_seed(1)
    plain = _model(bench, norm="layer")
    ckpt = _model(bench, norm="layer", checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(4, plain.n_inputs)
    ya, yb = plain(x), ckpt(x)
    assert torch.allclose(ya, yb, atol=1e-6)
    ga = torch.autograd.grad(ya.sum(), list(plain.parameters()))
    gb = torch.autograd.grad(yb.sum(), list(ckpt.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ga, gb, strict=True))


def test_gsnn_edge_mask_zero_silences_outputs(bench):
    model = _model(bench)
    y = model(torch.randn(3, model.n_inputs), edge_mask=torch.zeros(model.n_edges))
    assert torch.equal(y, torch.zeros_like(y))


def test_gsnn_stores_activations_only_when_asked(bench):
    model = _model(bench)
    model(torch.randn(2, model.n_inputs))
    assert model.ResBlocks[0]._last_pre_norm_activation is None
    set_existing(model, "_store_activations", True)
    model(torch.randn(2, model.n_inputs))
    z = model.ResBlocks[1]._last_pre_norm_activation
    assert z.shape == (2, model.n_function * model.channels)
    set_existing(model, "_store_activations", False)
    assert model.ResBlocks[1]._last_pre_norm_activation is None


def test_gsnn_rejects_wrong_input_width(bench):
    model = _model(bench)
    with pytest.raises(ValueError, match=r"x must have shape \[B, 4\]"):
        model(torch.randn(2, 5))


def test_gsnn_rejects_unknown_norm(bench):
    with pytest.raises(ValueError, match="norm must be one of"):
        _model(bench, norm="group")


def test_gsnn_default_init_is_fan_uniform_per_node_block(bench):
    """Every sparse entry starts in U(-1, 1) / sqrt(fan_in * fan_out) of its node block."""
    g = bench.partial
    torch.manual_seed(0)
    model = GSNN(g.edge_index_dict, g.node_names_dict, channels=5, layers=3, norm="none")
    ch, n_f = model.channels, model.n_function
    is_f = lambda v: v < n_f
    d_in = torch.bincount(model.edge_dst[is_f(model.edge_dst)], minlength=n_f)
    d_out = torch.bincount(model.edge_src[is_f(model.edge_src)], minlength=n_f)
    for block in model.ResBlocks:
        lin_in, lin_out = block.lin_in, block.lin_out
        node_in = lin_in.row // ch  # destination node of each lin_in entry
        bound_in = 1.0 / torch.sqrt((d_in[node_in] * ch).float())
        node_out = lin_out.col // ch  # source node of each lin_out entry
        bound_out = 1.0 / torch.sqrt((d_out[node_out] * ch).float())
        for w, bound in ((lin_in.weight, bound_in), (lin_out.weight, bound_out)):
            u = w.detach() / bound  # U(-1, 1) if the bound is right
            assert u.abs().max() <= 1.0 and u.abs().max() > 0.9
            assert abs(float(u.var()) - 1 / 3) < 0.1  # U(-1, 1) has variance 1/3
        assert not lin_in.bias.any() and not lin_out.bias.any()


def test_gsnn_init_gives_reference_activation_scale(benchmarks):
    """SPEC section 2: mean |pre-norm activation| ~0.05 per layer on the benchmark at init
    (the earlier He-style init gave 0.3-0.6)."""
    bench = benchmarks.graph(25)
    x = torch.as_tensor(simulate(bench.full, 256, seed=0)[0])
    g = bench.partial
    torch.manual_seed(0)
    model = GSNN(g.edge_index_dict, g.node_names_dict, 8, 6, norm="none")
    set_existing(model, "_store_activations", True)
    with torch.no_grad():
        model(x)
    scale = [float(b._last_pre_norm_activation.abs().mean()) for b in model.ResBlocks]
    assert all(0.03 < s < 0.08 for s in scale), scale
