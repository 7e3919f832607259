"""NodeNorm against torch.nn.functional, in NodeNorm's feature-major layout ``[C, B]``."""

import pytest
import torch
import torch.nn.functional as F

from gsnn_edges.nn.norms import NodeNorm

N, CH, B = 5, 3, 16  # nodes, channels per node, batch


def _norm(kind: str) -> NodeNorm:
    """A NodeNorm with non-trivial affine parameters."""
    norm = NodeNorm(kind, N, CH, momentum=0.3)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn_like(p))
    return norm


def _batch(step: int) -> torch.Tensor:
    """``[C, B]`` with per-channel scales and offsets that differ from step to step."""
    gen = torch.Generator().manual_seed(step)
    scale = torch.rand(N * CH, 1, generator=gen) * 3 + 0.1
    return torch.randn(N * CH, B, generator=gen) * scale + torch.randn(N * CH, 1, generator=gen)


def _affine(norm: NodeNorm, out_bc: torch.Tensor) -> torch.Tensor:
    """``out * weight + bias`` for a batch-major ``[B, C]`` output; returns ``[C, B]``."""
    out = out_bc.t() * norm.weight
    return out + norm.bias if norm.bias is not None else out


def _nodes(z: torch.Tensor) -> torch.Tensor:
    """``[C, B]`` -> ``[B, N, CH]``: each node's channels on the last axis."""
    return z.t().reshape(B, N, CH)


def _groupbatch_input(z: torch.Tensor) -> torch.Tensor:
    """``[C, B]`` -> ``[CH, N, B]``: F.batch_norm's channel axis is the node."""
    return z.reshape(N, CH, B).transpose(0, 1)


def test_node_norm_layer_matches_f_layer_norm():
    norm, z = _norm("layer"), _batch(0)
    ref = F.layer_norm(_nodes(z), (CH,), eps=norm.eps).reshape(B, N * CH)
    torch.testing.assert_close(norm(z), _affine(norm, ref))


def test_node_norm_rms_matches_f_rms_norm():
    norm, z = _norm("rms"), _batch(0)
    assert norm.bias is None
    ref = F.rms_norm(_nodes(z), (CH,), eps=norm.eps).reshape(B, N * CH)
    torch.testing.assert_close(norm(z), _affine(norm, ref))


def test_node_norm_none_is_identity():
    z = _batch(0)
    assert torch.equal(NodeNorm("none", N, CH)(z), z)


def _reference_batch(kind: str, z: torch.Tensor, mean, var, training: bool, momentum: float):
    """F.batch_norm per channel (``batch``) or per node over channels and batch
    (``groupbatch``), without the affine part; updates ``mean``/``var`` in training."""
    if kind == "batch":
        return F.batch_norm(z.t(), mean, var, training=training, momentum=momentum)
    out = F.batch_norm(_groupbatch_input(z), mean, var, training=training, momentum=momentum)
    return out.transpose(0, 1).reshape(N * CH, B).t()


@pytest.mark.parametrize("kind", ["batch", "groupbatch"])
def test_node_norm_batch_variants_match_f_batch_norm_in_training_and_eval(kind):
    """Training steps normalise with the batch statistics and move the running ones as
    F.batch_norm does (unbiased variance, momentum); eval then uses the running ones."""
    norm = _norm(kind)
    size = N * CH if kind == "batch" else N
    mean, var = torch.zeros(size), torch.ones(size)
    assert norm.running_mean.shape == (size,)
    norm.train()
    for step in range(4):
        z = _batch(step)
        ref = _reference_batch(kind, z, mean, var, training=True, momentum=norm.momentum)
        torch.testing.assert_close(norm(z), _affine(norm, ref))
    torch.testing.assert_close(norm.running_mean, mean)
    torch.testing.assert_close(norm.running_var, var)
    norm.eval()
    z = _batch(10)
    ref = _reference_batch(kind, z, mean, var, training=False, momentum=norm.momentum)
    torch.testing.assert_close(norm(z), _affine(norm, ref))
    torch.testing.assert_close(norm.running_mean, mean)  # eval leaves them alone


def test_node_norm_groupbatch_statistics_are_per_node():
    """Written out: node i's channels share one mean and biased variance over the batch."""
    norm, z = NodeNorm("groupbatch", N, CH), _batch(3)
    g = z.reshape(N, CH * B)
    ref = (g - g.mean(1, keepdim=True)) / torch.sqrt(g.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(z), ref.reshape(N * CH, B))


def test_node_norm_rejects_unknown_kind():
    with pytest.raises(ValueError, match="norm must be one of .* got 'group'"):
        NodeNorm("group", N, CH)
