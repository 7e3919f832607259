import pytest
import torch

from gsnn_edges.device import adamw, model_device, resolve_device


def test_adamw_is_fused_on_cpu_and_steps_as_torchs_default_loop():
    torch.manual_seed(0)
    shapes = [(300,), (40, 8), (1,)]
    a = [torch.randn(s, requires_grad=True) for s in shapes]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    fused = adamw(a, lr=1e-2, weight_decay=0.05)
    plain = torch.optim.AdamW(b, lr=1e-2, weight_decay=0.05)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    for _ in range(5):
        grads = [torch.randn(s) for s in shapes]
        for params, opt in ((a, fused), (b, plain)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for p, q in zip(a, b, strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_cpu_device_resolves_and_is_found_on_a_model():
    assert resolve_device("cpu") == torch.device("cpu")
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
