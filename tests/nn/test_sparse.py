import subprocess
import sys
import warnings

import pytest
import torch

from gsnn_edges.nn.sparse import SparseLinear, _CSRMatMul, channel_to_edge, edge_to_channel


def _random_layer(n_rows=7, n_cols=5, nnz=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(n_rows * n_cols, generator=g)[:nnz]
    return SparseLinear(flat // n_cols, flat % n_cols, (n_rows, n_cols))


def test_sparse_linear_forward_and_grads_match_dense_reference():
    layer = _random_layer()
    x = torch.randn(5, 4, dtype=torch.float32, requires_grad=True)
    out = layer(x)
    dense = layer.to_dense().requires_grad_(True)
    ref = dense @ x + layer.bias[:, None]
    assert torch.allclose(out, ref, atol=1e-6)
    g = torch.randn_like(out)
    gw, gx, gb = torch.autograd.grad(out, (layer.weight, x, layer.bias), g)
    rd, rx, rb = torch.autograd.grad(ref, (dense, x, layer.bias), g)
    assert torch.allclose(gx, rx, atol=1e-5)
    assert torch.allclose(gb, rb, atol=1e-5)
    assert torch.allclose(gw, rd[layer.row, layer.col], atol=1e-5)


def test_sparse_linear_gradcheck_double():
    layer = _random_layer(4, 3, 6).double()
    w = layer.weight.detach().clone().requires_grad_(True)
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x: _CSRMatMul.apply(w, x, layer), (w, x))


def test_edge_to_channel_pattern_feeds_destination_channels_only():
    edge_dst = torch.tensor([0, 1, 1, 4])  # node 4 is not a function node (n_function=2)
    layer = edge_to_channel(edge_dst, n_function=2, channels=3)
    mask = layer.to_dense() != 0
    expected = torch.zeros(6, 4, dtype=torch.bool)
    expected[0:3, 0] = True
    expected[3:6, 1] = True
    expected[3:6, 2] = True
    assert torch.equal(mask, expected)


def test_channel_to_edge_pattern_and_bias_mask():
    edge_src = torch.tensor([0, 1, 3])  # edge 2 starts at an input (index 3 >= 2)
    layer = channel_to_edge(edge_src, n_function=2, channels=2)
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[0, 0:2] = True
    expected[1, 2:4] = True
    assert torch.equal(layer.to_dense() != 0, expected)
    with torch.no_grad():
        layer.bias.fill_(1.0)
    out = layer(torch.zeros(4, 2))
    assert torch.equal(out[:, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_sparse_linear_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="out of range"):
        SparseLinear(torch.tensor([0, 5]), torch.tensor([0, 1]), (3, 3))


def test_importing_the_sparse_layers_leaves_warning_filters_alone():
    code = (
        "import warnings, torch; before = list(warnings.filters); import gsnn_edges.nn.sparse; "
        "assert warnings.filters == before, 'filters changed at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sparse_products_do_not_warn_about_csr_beta():
    layer = SparseLinear(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 2]), (2, 3))
    x = torch.randn(3, 4, requires_grad=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        layer(x).sum().backward()
    assert not [w for w in seen if "beta" in str(w.message)]
    assert layer.weight.grad is not None and x.grad is not None
