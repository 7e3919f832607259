"""Combining replicas' score matrices (gsnn_edges.ensemble) against direct references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gsnn_edges.ensemble import (
    cauchy_combine,
    combine_replicas,
    combine_scores,
    replica_seed,
    stability,
)


def _matrices(r: int, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(r):
        m = rng.normal(size=(n, n))
        m[0, 1] = np.nan  # a pair no replica scores
        out.append(m)
    return out


def test_replica_seed_keeps_replica_zero_and_draws_distinct_valid_seeds():
    seeds = [replica_seed(7, r) for r in range(16)]
    assert seeds[0] == 7 and len(set(seeds)) == 16
    assert all(0 <= s < 2**63 for s in seeds)
    assert replica_seed(7, 3) == replica_seed(7, 3) != replica_seed(8, 3)


def test_combine_scores_rank_is_the_mean_percentile_over_replicas():
    mats = _matrices(3, 6)
    combined, se = combine_scores(mats, "rank")
    off = ~np.eye(6, dtype=bool)
    off[0, 1] = False
    # reference: each replica's percentile among its scored off-diagonal pairs, pair by pair
    per = []
    for m in mats:
        vals = m[off]
        per.append({(i, j): (vals < m[i, j]).sum() + ((vals == m[i, j]).sum() + 1) / 2
                    for i, j in zip(*np.nonzero(off), strict=True)})  # fmt: skip
    for i, j in zip(*np.nonzero(off), strict=True):
        ranks = np.array([p[(i, j)] for p in per]) / off.sum()
        assert combined[i, j] == pytest.approx(ranks.mean())
        assert se[i, j] == pytest.approx(ranks.std(ddof=1) / np.sqrt(3))
    assert np.isnan(combined[0, 1]) and np.isnan(np.diag(combined)).all()


def test_combine_scores_zscore_and_a_pair_every_replica_prefers_stays_ahead():
    mats = _matrices(4, 5, seed=1)
    for m in mats:  # pair (2, 3) tops every replica, as the hybrid's tiers do
        m[2, 3] = np.nanmax(m) + 1
    combined, _ = combine_scores(mats, "zscore")
    off = ~np.eye(5, dtype=bool)
    off[0, 1] = False
    z = [(m - m[off].mean()) / m[off].std() for m in mats]
    np.testing.assert_allclose(combined[off], np.mean(z, axis=0)[off])
    assert np.nanargmax(combined) == 2 * 5 + 3
    _, se_one = combine_scores(mats[:1])
    assert np.isnan(se_one).all()  # one replica: no standard error


def test_cauchy_combine_matches_the_cauchy_tail_and_keeps_identical_p_values():
    rng = np.random.default_rng(2)
    p = [rng.uniform(1e-6, 1, size=(4, 4)) for _ in range(3)]
    t = np.mean([np.tan((0.5 - x) * np.pi) for x in p], axis=0)
    np.testing.assert_allclose(cauchy_combine(p), stats.cauchy.sf(t), rtol=1e-9)
    same = np.array([[1e-250, 0.3], [0.999, 0.5]])
    np.testing.assert_allclose(cauchy_combine([same, same, same]), same, rtol=1e-9)
    assert np.isnan(cauchy_combine([same, np.full((2, 2), np.nan)])).all()


def test_stability_counts_the_replicas_with_a_pair_in_their_top_k():
    mats = _matrices(3, 6, seed=3)
    candidates = ~np.eye(6, dtype=bool)
    candidates[4, 5] = False  # in the graph
    got = stability(mats, candidates, k=4)
    expect = np.zeros((6, 6))
    for m in mats:  # reference: sort the scored candidates, take the first k
        pairs = [(m[i, j], i, j) for i, j in zip(*np.nonzero(candidates), strict=True)
                 if np.isfinite(m[i, j])]  # fmt: skip
        for _, i, j in sorted(pairs, reverse=True)[:4]:
            expect[i, j] += 1 / 3
    np.testing.assert_allclose(got[candidates], expect[candidates])
    assert np.isnan(got[~candidates]).all()


def test_combine_replicas_bundles_scores_p_values_se_and_stability():
    mats = _matrices(2, 5, seed=4)
    p = [stats.norm.sf(m) for m in mats]
    in_graph = np.zeros((5, 5), dtype=bool)
    in_graph[1, 2] = True
    ens = combine_replicas(mats, p, in_graph, k=3)
    np.testing.assert_array_equal(ens.scores, combine_scores(mats)[0])
    np.testing.assert_array_equal(ens.p_values, cauchy_combine(p))
    assert np.isnan(ens.stability[1, 2]) and np.nansum(ens.stability) == pytest.approx(3.0)
