import numpy as np
import pytest
import torch
from scipy.stats import norm

from gsnn_edges.inference.moments import (
    PairMoments,
    combine_pairs,
    fisher_z_pvalues,
    moments_compute,
    moments_init,
    moments_update,
    padded_parents,
)

P, B, N = 3, 300, 7


@pytest.fixture(scope="module")
def data():
    """Random features with cross-correlations and targets that depend on them."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, B, N))
    X[:, :, 1] += 0.6 * X[:, :, 0]
    X[:, :, 4] += 0.5 * X[:, :, 2] - 0.3 * X[:, :, 3]
    Y = rng.standard_normal((P, B, N)) + 0.5 * X[:, :, [3, 2, 0, 1, 6, 5, 4]]
    Y[:, :, 2] += 0.4 * X[:, :, 1] - 0.3 * X[:, :, 3]
    X, Y = X + 2.0, Y - 1.0  # non-zero means exercise the centering
    parents = np.zeros((N, N), dtype=bool)
    parents[[0, 1, 3], 2] = True  # target 2: three parents
    parents[[2, 6], 5] = True
    parents[4, 0] = True
    return X, Y, parents


def _stream(X, Y, *, full, sizes=(64, 1, 100, 135)):
    state = moments_init(P, N, full=full)
    start = 0
    for size in sizes:  # uneven batches
        sl = slice(start, start + size)
        state = moments_update(state, torch.from_numpy(X[:, sl]), torch.from_numpy(Y[:, sl]))
        start += size
    assert start == X.shape[1]
    return state


def _pearson_ref(X, Y):
    return np.stack([np.corrcoef(X[p].T, Y[p].T)[:N, N:] for p in range(P)])


def _residual(v, S):
    design = np.column_stack([np.ones(len(v)), S])
    return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]


def _partial_ref(X, Y, parents):
    out = np.empty((P, N, N))
    for p in range(P):
        for i in range(N):
            for j in range(N):
                S = X[p][:, [s for s in np.flatnonzero(parents[:, j]) if s != i]]
                rx, ry = _residual(X[p][:, i], S), _residual(Y[p][:, j], S)
                out[p, i, j] = np.corrcoef(rx, ry)[0, 1]
    return out


def test_moments_streamed_pearson_matches_numpy_corrcoef(data):
    X, Y, _ = data
    r, k = moments_compute(_stream(X, Y, full=False))
    assert r.shape == (P, N, N) and r.dtype == torch.float64
    np.testing.assert_allclose(r.numpy(), _pearson_ref(X, Y), atol=1e-10)
    assert not k.any()


def test_moments_streamed_equals_one_shot(data):
    X, Y, _ = data
    streamed = _stream(X, Y, full=True)
    one = moments_update(moments_init(P, N, full=True), torch.from_numpy(X), torch.from_numpy(Y))
    for a, b in zip(streamed, one, strict=True):
        torch.testing.assert_close(a, b)
    assert float(streamed.n) == B


def test_moments_update_is_pure(data):
    X, Y, _ = data
    state = moments_init(P, N, full=True)
    new = moments_update(state, torch.from_numpy(X[:, :10]), torch.from_numpy(Y[:, :10]))
    assert float(state.n) == 0 and not state.sxy.any() and not state.sxx_full.any()
    assert float(new.n) == 10


def test_moments_partial_matches_lstsq_reference(data):
    X, Y, parents = data
    state = _stream(X, Y, full=True)
    ref = _partial_ref(X, Y, parents)
    r, k = moments_compute(state, parents=torch.from_numpy(parents), ridge=0.0)
    np.testing.assert_allclose(r.numpy(), ref, atol=1e-10)
    r_ridge, _ = moments_compute(state, parents=torch.from_numpy(parents))
    np.testing.assert_allclose(r_ridge.numpy(), ref, atol=1e-5)
    deg = parents.sum(0)
    np.testing.assert_array_equal(k.numpy(), deg[None, :] - parents)


def test_moments_partial_without_parents_equals_pearson(data):
    X, Y, _ = data
    state = _stream(X, Y, full=True)
    r, k = moments_compute(state, parents=torch.zeros(N, N, dtype=torch.bool))
    torch.testing.assert_close(r, moments_compute(state)[0])
    assert not k.any()


def test_moments_partial_ignores_self_parent(data):
    X, Y, parents = data
    state = _stream(X, Y, full=True)
    with_self = parents | np.eye(N, dtype=bool)
    a, ka = moments_compute(state, parents=torch.from_numpy(parents))
    b, kb = moments_compute(state, parents=torch.from_numpy(with_self))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ka, kb)


def test_moments_partial_chunked_matches_unchunked(data, monkeypatch):
    import gsnn_edges.inference.moments as mod

    X, Y, parents = data
    state = _stream(X, Y, full=True)
    whole = moments_compute(state, parents=torch.from_numpy(parents))[0]
    monkeypatch.setattr(mod, "_CHUNK_ENTRIES", 1)  # one target per chunk
    torch.testing.assert_close(moments_compute(state, parents=torch.from_numpy(parents))[0], whole)


def test_moments_constant_column_is_nan(data):
    X, Y, parents = data
    X, Y = X.copy(), Y.copy()
    X[0, :, 3] = 0.7
    Y[1, :, 5] = -2.0
    state = _stream(X, Y, full=True)
    for kwargs in ({}, {"parents": torch.from_numpy(parents)}):
        r = moments_compute(state, **kwargs)[0].numpy()
        assert np.isnan(r[0, 3, :]).all() and np.isnan(r[1, :, 5]).all()
        assert np.isnan(r).sum() == 2 * N  # only those two lines (they lie in different pairs)
        assert np.isfinite(r[2]).all()


def test_moments_partial_needs_full_state(data):
    X, Y, parents = data
    with pytest.raises(RuntimeError, match="full=True"):
        moments_compute(_stream(X, Y, full=False), parents=torch.from_numpy(parents))


def test_moments_compute_needs_two_rows():
    with pytest.raises(RuntimeError, match="at least 2 rows"):
        moments_compute(moments_init(P, N))


def test_moments_update_rejects_bad_shapes():
    state = moments_init(P, N)
    with pytest.raises(ValueError, match=r"\[P, B, N\]"):
        moments_update(state, torch.zeros(P, 4, N), torch.zeros(P, 4, N + 1))
    with pytest.raises(ValueError, match=r"\[P, B, N\]"):
        moments_update(state, torch.zeros(P + 1, 4, N), torch.zeros(P + 1, 4, N))


def test_padded_parents():
    parents = torch.zeros(4, 4, dtype=torch.bool)
    parents[[0, 2, 3], 1] = True
    parents[1, 3] = True
    idx, valid = padded_parents(parents)
    assert idx.shape == valid.shape == (4, 3)
    assert idx[1].tolist() == [0, 2, 3] and valid[1].all()
    assert idx[3, 0] == 1 and valid[3].tolist() == [True, False, False]
    assert not valid[0].any()
    for j in range(4):  # padding entries are distinct non-parents
        assert not parents[idx[j][~valid[j]], j].any()
        assert len(set(idx[j].tolist())) == 3


def test_combine_pairs_mean_and_max_ignore_nan():
    nan = float("nan")
    r = torch.tensor([[[0.2, nan], [nan, -0.4]], [[0.6, 0.1], [nan, -0.2]]])
    torch.testing.assert_close(combine_pairs(r, "mean"), torch.tensor([[0.4, 0.1], [0.0, -0.3]]))
    torch.testing.assert_close(combine_pairs(r, "max"), torch.tensor([[0.6, 0.1], [0.0, -0.2]]))
    with pytest.raises(ValueError, match="'median'"):
        combine_pairs(r, "median")


def test_fisher_z_pvalues_matches_scipy_and_is_monotone():
    r = torch.linspace(-0.9, 0.9, 19, dtype=torch.float64)
    p = fisher_z_pvalues(r, 100.0, 2)
    ref = norm.sf(np.arctanh(r.numpy()) * np.sqrt(100 - 3 - 2))
    np.testing.assert_allclose(p.numpy(), ref, rtol=1e-9, atol=1e-15)
    assert ((p >= 0) & (p <= 1)).all() and (p.diff() <= 0).all()  # saturates at 0, 1
    assert fisher_z_pvalues(torch.tensor([0.0]), 100.0).item() == pytest.approx(0.5)
    k = torch.tensor([0, 5])
    assert fisher_z_pvalues(torch.tensor([0.9, 0.9]), 8.0, k).tolist()[1] == 1.0  # df <= 0
    assert fisher_z_pvalues(torch.tensor([1.0]), 50.0).item() == 0.0


def test_pair_moments_buffers_match_functions_and_reset(data):
    X, Y, parents = data
    mod = PairMoments(P, N, full=True)
    assert {"n", "sx", "sy", "sxx", "syy", "sxy", "sxx_full"} <= set(mod.state_dict())
    mod.update(torch.from_numpy(X[:, :150]), torch.from_numpy(Y[:, :150]))
    sxy = mod.sxy
    mod.update(torch.from_numpy(X[:, 150:]), torch.from_numpy(Y[:, 150:]))
    assert mod.sxy is sxy  # accumulates in place: no new [P, N, N] buffers per batch
    want = moments_compute(_stream(X, Y, full=True), parents=torch.from_numpy(parents))
    got = mod.compute(parents=torch.from_numpy(parents))
    torch.testing.assert_close(got[0], want[0], equal_nan=True)
    clone = PairMoments(P, N, full=True)
    clone.load_state_dict(mod.state_dict())
    torch.testing.assert_close(clone.compute()[0], mod.compute()[0])
    mod.reset()
    assert float(mod.n) == 0 and not mod.sxy.any()
    assert "pairs=3" in repr(mod)
