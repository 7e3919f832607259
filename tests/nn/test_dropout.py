import pytest
import torch

from gsnn_edges.nn.dropout import Dropout, draw_keep_mask, keep_cut, keep_scale


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_dropout_is_inverted_bernoulli_with_the_rate_asked(rate):
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    out = Dropout(rate).train()(x)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / (1 - rate)], rel=1e-4)
    dropped = (out == 0).double()
    assert abs(float(dropped.mean()) - rate) < 0.002  # 1M entries: se <= 5e-4
    assert abs(float(out.double().mean()) - 1.0) < 0.003


def test_dropout_entries_are_independent_within_and_across_words_and_calls():
    """Four consecutive entries share one 64-bit random word: none may be correlated with
    its neighbours (each lane position has its own rate), nor with the next call's."""
    torch.manual_seed(1)
    x = torch.ones(400_000)
    drop = Dropout(0.3).train()
    a, b = (drop(x) == 0).double(), (drop(x) == 0).double()
    lanes = a.view(-1, 4)
    assert (lanes.mean(0) - 0.3).abs().max() < 0.005
    corr = torch.corrcoef(lanes.t())[~torch.eye(4, dtype=bool)]
    assert corr.abs().max() < 0.01
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.01


def test_dropout_gradient_is_the_same_mask():
    torch.manual_seed(2)
    x = torch.randn(64, 300, requires_grad=True)
    out = Dropout(0.25).train()(x)
    (out * 3.0).sum().backward()
    mask = torch.where(out == 0, 0.0, out.detach() / x.detach())
    assert torch.allclose(x.grad, 3.0 * mask)
    kept = mask[out != 0]
    assert 0 < kept.numel() < mask.numel()
    assert torch.allclose(kept, torch.full_like(kept, keep_scale(0.25)))


def test_dropout_is_the_identity_in_eval_mode_and_at_rate_zero():
    x = torch.randn(8, 5)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0).train()(x) is x


def test_keep_masks_reuse_a_scratch_word_buffer_and_fill_out():
    torch.manual_seed(3)
    out, words = torch.empty(7, 9), torch.empty(100, dtype=torch.int64)  # more words than needed
    mask = draw_keep_mask(0.5, out, words)
    assert mask.data_ptr() == out.data_ptr() and set(out.unique().tolist()) == {0.0, 1.0}
    torch.manual_seed(3)
    assert torch.equal(draw_keep_mask(0.5, torch.empty(7, 9)), out)  # same draw without scratch


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1 - 1e-6])
def test_rates_the_masks_cannot_resolve_are_refused(rate):
    with pytest.raises(ValueError, match="dropout"):
        Dropout(rate) if rate < 0 else keep_cut(rate)
