import numpy as np
import torch

from gsnn_edges.inference import forward_selection as fs


def _psd_batch(rng, n=40, k=4):
    """PSD matrices ``A^T A`` of full rank, rank-deficient (a repeated column) and with a
    zero (padding) column, like the Grams of stand-ins partly inside a design."""
    out = []
    for case in range(n):
        A = rng.standard_normal((6, k))
        if case % 3 == 1:
            A[:, 2] = A[:, 0] - 0.5 * A[:, 1]
        if case % 3 == 2:
            A[:, 3] = 0.0
        out.append(A.T @ A)
    return np.stack(out), rng.standard_normal((n, k))


def test_cholesky_quadratic_form_matches_pseudo_inverse():
    rng = np.random.default_rng(0)
    H, b = _psd_batch(rng)
    # b inside H's range, as Q_i^T r is (r is orthogonal to the null directions)
    b = np.einsum("nij,nj->ni", H, b)
    num, rank, _ = fs._cholesky(torch.from_numpy(H), torch.from_numpy(b), 1e-9)
    ref = np.einsum("ni,nij,nj->n", b, np.linalg.pinv(H, hermitian=True), b)
    np.testing.assert_allclose(num.numpy(), ref, rtol=1e-8)
    np.testing.assert_array_equal(rank.numpy(), [np.linalg.matrix_rank(h) for h in H])


def test_orthonormalizer_whitens_the_kept_columns():
    rng = np.random.default_rng(1)
    H, b = _psd_batch(rng)
    _, rank, L = fs._cholesky(torch.from_numpy(H), torch.from_numpy(b), 1e-9)
    T = fs._orthonormalizer(L).numpy()
    kept = L.diagonal(dim1=-2, dim2=-1).numpy() > 0
    np.testing.assert_allclose(
        T.transpose(0, 2, 1) @ H @ T, np.eye(4) * kept[:, None, :], atol=1e-9
    )
    np.testing.assert_array_equal(kept.sum(1), rank.numpy())
    assert not T[~kept[:, None, :].repeat(4, 1)].any()  # dropped columns stay zero


def test_outside_basis_spans_the_columns_outside_the_design():
    """Against numpy: ``q`` is orthonormal, spans ``(I - U U^T) E``, and a column inside
    the design (or a copy of another) adds no rank."""
    rng = np.random.default_rng(1)
    S, w = 50, 4
    U = np.linalg.qr(rng.standard_normal((2, S, w)))[0]
    U[1, :, 3] = 0.0  # a dropped direction of the second design
    E = rng.standard_normal((2, S, 3))
    E[0, :, 1] = U[0] @ rng.standard_normal(w)  # inside the first design
    E[1, :, 2] = E[1, :, 0]  # a copy
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    q, rank = fs.outside_basis(torch.from_numpy(U), torch.from_numpy(E), 1e-12)
    q = q.numpy()
    np.testing.assert_array_equal(rank.numpy(), [2, 2])
    for g in range(2):
        kept = np.linalg.norm(q[g], axis=0) > 0.5
        assert kept.sum() == 2 and np.allclose(q[g][:, ~kept], 0.0)
        np.testing.assert_allclose(q[g][:, kept].T @ q[g][:, kept], np.eye(2), atol=1e-12)
        np.testing.assert_allclose(U[g].T @ q[g], 0.0, atol=1e-12)
        outside = E[g] - U[g] @ (U[g].T @ E[g])
        proj = q[g] @ (q[g].T @ outside)  # q's span holds every column's outside part
        np.testing.assert_allclose(proj, outside, atol=1e-12)
