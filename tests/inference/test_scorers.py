import numpy as np
import pytest
from scipy import special, stats

from gsnn_edges.inference.observed_baseline import ObservedBaseline
from gsnn_edges.inference.scorers import (
    PairScores,
    chi2_log_sf,
    hybrid_scores,
    normal_equivalent,
)


@pytest.mark.parametrize("dof", [1, 2, 5])
def test_normal_equivalent_of_the_chi2_tail_is_exact_and_does_not_saturate(dof):
    p = np.logspace(-300, np.log10(0.5), 40)
    z = normal_equivalent(chi2_log_sf(stats.chi2.isf(p, dof), dof))
    np.testing.assert_allclose(z, stats.norm.isf(p), rtol=1e-6, atol=1e-9)
    far = np.array([1e3, 1e4, 1e5, 1e6])  # log p from -500 to -5e5: p underflows past 1e4
    log_p = chi2_log_sf(far, dof)
    assert np.isfinite(log_p).all() and np.all(np.diff(log_p) < 0)
    finite = stats.chi2.logsf(far[:1], dof)
    assert log_p[0] == pytest.approx(finite[0])
    # the expansion continues the exact tail where it is still representable
    assert chi2_log_sf(1400.0, dof) == pytest.approx(
        (dof / 2 - 1) * np.log(700.0) - 700.0 - special.gammaln(dof / 2), rel=2e-3
    )
    assert np.all(np.diff(normal_equivalent(log_p)) > 0)


def test_hybrid_ranks_the_baselines_pairs_first_then_the_score_tests():
    nan = np.nan
    r = np.array([[nan, 0.4, nan], [0.9, nan, nan], [0.2, 1.0, nan]])  # column 2: latent
    base = ObservedBaseline(
        scores=r,
        p_values=np.where(np.isnan(r), nan, 0.01),
        observed_target=np.array([True, True, False]),
        has_features=np.ones(3, bool),
    )
    q = np.arange(9.0).reshape(3, 3) + 1
    q_p = stats.chi2.sf(q, 4)
    out = hybrid_scores(base, q, q_p, 4)
    squash = lambda x: 0.5 + np.arctan(x) / np.pi
    assert out.scores[1, 0] == pytest.approx(1 + squash(np.arctanh(0.9)))
    assert out.scores[2, 1] == 2.0 and out.p_values[1, 0] == 0.01  # R = 1 tops the tier
    assert out.scores[0, 2] == pytest.approx(squash(stats.norm.isf(stats.chi2.sf(3.0, 4))))
    assert out.p_values[0, 2] == q_p[0, 2]
    assert np.isnan(np.diag(out.scores)).all() and np.isnan(np.diag(out.p_values)).all()
    assert out.n_scored == 6
    tier, off = np.isfinite(r), ~np.eye(3, dtype=bool)
    assert out.scores[tier & off].min() > out.scores[~tier & off].max()  # baseline first
    order = lambda m: np.argsort(m[tier & off])
    assert np.array_equal(order(out.scores), order(r))  # within the tier: the baseline's
    huge = hybrid_scores(base, q * 1e4, q_p, 4).scores  # p underflows: order still resolved
    assert np.all(np.diff(huge[~tier & off][np.argsort(q[~tier & off])]) > 0)


def test_pair_scores_count_scored_off_diagonal_pairs():
    s = PairScores(np.array([[np.nan, 0.2], [np.nan, 0.7]]), np.full((2, 2), np.nan))
    assert s.n_scored == 1
