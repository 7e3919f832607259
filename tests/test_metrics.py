import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gsnn_edges.metrics import (
    bh_qvalues,
    edge_table_metrics,
    roc_auc,
    roc_curve,
    score_matrix_metrics,
    target_ranks,
)

import references


def _brute_bh(p):
    m = len(p)
    return np.array(
        [
            min(1.0, min(p[j] * m / (np.sum(p <= p[j])) for j in range(m) if p[j] >= p[i]))
            for i in range(m)
        ]
    )


@pytest.fixture
def tied_problem():
    rng = np.random.default_rng(0)
    n = 12
    S = rng.integers(0, 4, (n, n)).astype(float)  # many ties
    in_graph = rng.random((n, n)) < 0.2
    np.fill_diagonal(in_graph, False)
    free = np.argwhere(~in_graph & ~np.eye(n, dtype=bool))
    pick = free[rng.choice(len(free), 14, replace=False)]
    pos, exclude = pick[:8], pick[8:]
    return S, in_graph, pos, exclude


def test_roc_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = rng.integers(0, 5, 40).astype(float)
        labels = rng.random(40) < 0.3
        expected = references.auc(scores[labels], scores[~labels])
        assert roc_auc(scores, labels) == pytest.approx(expected)


def test_roc_auc_edge_cases():
    assert roc_auc([1.0, 2.0, 3.0], [0, 1, 1]) == 1.0
    assert roc_auc([1.0, 1.0], [0, 1]) == 0.5
    assert np.isnan(roc_auc([1.0, 2.0], [1, 1]))
    with pytest.raises(ValueError, match="labels"):
        roc_auc([1.0, 2.0], [1])


def test_roc_curve_endpoints_and_area():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 6, 50).astype(float)
    labels = rng.random(50) < 0.4
    fpr, tpr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, labels))


def test_roc_curve_ranks_nan_scores_last_as_one_threshold():
    scores = np.array([0.9, np.nan, 0.4, np.nan, 0.1])
    labels = np.array([True, True, False, False, True])
    fpr, tpr = roc_curve(scores, labels)
    same = roc_curve(np.array([0.9, -1.0, 0.4, -1.0, 0.1]), labels)  # NaN = below all
    np.testing.assert_array_equal(fpr, same[0])
    np.testing.assert_array_equal(tpr, same[1])
    assert fpr.size == 5  # 4 distinct thresholds: both NaNs tie


def test_bh_qvalues_hand_computed():
    # sorted: 0.01 (k=1) -> 0.04, 0.03 (k=2) -> 0.06, 0.04 (k=3) -> 0.0533, 0.2 (k=4) -> 0.2
    # monotone from the top: 0.04, 0.0533, 0.0533, 0.2
    q = bh_qvalues(np.array([0.01, 0.04, 0.03, 0.2]))
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_bh_qvalues_matches_brute_force_and_keeps_shape():
    rng = np.random.default_rng(3)
    p = rng.random((6, 5)) ** 3
    p[0, :2] = p[1, 0]  # ties
    q = bh_qvalues(p)
    assert q.shape == (6, 5)
    np.testing.assert_allclose(q.ravel(), _brute_bh(p.ravel()))
    assert np.all(q >= p) and np.all(q <= 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_qvalues_matches_scipy_false_discovery_control(seed):
    """scipy's BH adjustment on p-values with ties, exact 0/1 and a block of signal; NaN
    entries are left out of m (scipy sees only the finite ones)."""
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(300), rng.random(40) * 1e-4, [0.0, 1.0, 0.5, 0.5]])
    p[:20] = p[20]  # ties
    rng.shuffle(p)
    np.testing.assert_allclose(bh_qvalues(p), stats.false_discovery_control(p), rtol=1e-12)
    with_nan = p.copy()
    with_nan[rng.choice(p.size, 25, replace=False)] = np.nan
    ok = ~np.isnan(with_nan)
    q = bh_qvalues(with_nan.reshape(-1, 4)).ravel()
    assert np.isnan(q[~ok]).all()
    np.testing.assert_allclose(q[ok], stats.false_discovery_control(with_nan[ok]), rtol=1e-12)


def test_bh_qvalues_never_below_p_after_rounding():
    p = np.array([0.11630562817018843, 0.9544139311118778, 0.49622070074149205])
    assert 0.9544139311118778 * 3 / 3 < 0.9544139311118778  # the round-off this guards
    q = bh_qvalues(p)
    assert np.all(q >= p) and q[1] == p[1]


def test_bh_qvalues_clips_nan_and_rejects_out_of_range():
    q = bh_qvalues(np.array([0.9, np.nan, 0.95]))
    assert np.isnan(q[1]) and np.all(q[[0, 2]] == 0.95)
    with pytest.raises(ValueError, match="1.5"):
        bh_qvalues(np.array([0.1, 1.5]))


def test_target_ranks_matches_brute_force(tied_problem):
    S, in_graph, pos, exclude = tied_problem
    raw, filt = target_ranks(S, in_graph, pos, exclude=exclude)
    eraw, efilt = references.ranks(S, in_graph, pos, exclude)
    np.testing.assert_allclose(raw, eraw)
    np.testing.assert_allclose(filt, efilt)
    assert np.all(filt <= raw)


def test_target_ranks_with_self_pairs_scored(tied_problem):
    S, in_graph, pos, exclude = tied_problem
    raw, filt = target_ranks(S, in_graph, pos, exclude=exclude, exclude_self=False)
    eraw, efilt = references.ranks(S, in_graph, pos, exclude, exclude_self=False)
    np.testing.assert_allclose(raw, eraw)
    np.testing.assert_allclose(filt, efilt)


def test_score_matrix_metrics_matches_brute_force(tied_problem):
    S, in_graph, pos, exclude = tied_problem
    m = score_matrix_metrics(S, in_graph, pos, exclude=exclude, top_k=(1, 2))
    n = S.shape[0]
    neg = np.ones((n, n), dtype=bool)
    neg[np.eye(n, dtype=bool) | in_graph] = False
    neg[tuple(exclude.T)] = False
    neg[tuple(pos.T)] = False
    assert m["auc"] == pytest.approx(references.auc(S[tuple(pos.T)], S[neg]))
    raw, filt = references.ranks(S, in_graph, pos, exclude)
    assert m["mrr"] == pytest.approx(np.mean(1 / raw))
    assert m["top@2"] == pytest.approx(np.mean(raw <= 2))
    assert m["filtered_mrr"] == pytest.approx(np.mean(1 / filt))
    assert m["filtered_top@1"] == pytest.approx(np.mean(filt <= 1))
    assert m["n_positives"] == len(pos)
    assert set(m) == {
        "auc",
        "mrr",
        "top@1",
        "top@2",
        "filtered_mrr",
        "filtered_top@1",
        "filtered_top@2",
        "n_positives",
    }


def test_score_matrix_metrics_exclude_removes_negatives():
    n = 4
    S = np.zeros((n, n))
    S[0, 1] = 1.0  # positive
    S[2, 1] = 5.0  # a negative that outscores it
    in_graph = np.zeros((n, n), dtype=bool)
    pos = np.array([[0, 1]])
    before = score_matrix_metrics(S, in_graph, pos)
    after = score_matrix_metrics(S, in_graph, pos, exclude=np.array([[2, 1]]))
    assert before["auc"] < 1.0 and before["mrr"] == 0.5
    assert after["auc"] == 1.0 and after["mrr"] == 1.0


def test_score_matrix_metrics_in_graph_not_negative():
    S = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    in_graph = np.zeros((3, 3), dtype=bool)
    in_graph[2, 1] = True
    m = score_matrix_metrics(S, in_graph, np.array([[0, 1]]))
    assert m["auc"] == 1.0  # the in-graph pair (2, 1) is not a negative
    assert m["mrr"] == 0.5 and m["filtered_mrr"] == 1.0


def test_score_matrix_metrics_rejects_bad_positives():
    S = np.zeros((3, 3))
    in_graph = np.zeros((3, 3), dtype=bool)
    in_graph[0, 1] = True
    with pytest.raises(ValueError, match=r"\(0, 1\).*in_graph"):
        score_matrix_metrics(S, in_graph, np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        score_matrix_metrics(S, in_graph, np.array([[2, 2]]))
    with pytest.raises(ValueError, match=r"\(0, 7\).*out of range"):
        score_matrix_metrics(S, in_graph, np.array([[0, 7]]))
    with pytest.raises(ValueError, match=r"\(1, 2\) is repeated"):
        score_matrix_metrics(S, in_graph, np.array([[1, 2], [1, 2]]))


def test_score_matrix_metrics_rank_nan_scores_last():
    """NaN marks a pair the scorer cannot score: it ranks below every scored pair, as a
    positive (not recovered) and as a negative (outranked by every scored positive)."""
    S = np.array([[0.0, 0.9, 0.1], [0.4, 0.0, np.nan], [np.nan, 0.5, 0.0]])
    in_graph = np.zeros((3, 3), dtype=bool)
    pos = np.array([[0, 1], [1, 2]])  # (1, 2) is unscored
    got = score_matrix_metrics(S, in_graph, pos)
    expected = score_matrix_metrics(np.nan_to_num(S, nan=-np.inf), in_graph, pos)
    assert got == expected
    # negatives 0.1, 0.4, 0.5, NaN: (0, 1) beats all four, (1, 2) ties only the NaN one
    assert got["auc"] == pytest.approx((4 + 0.5) / 8)
    assert got["mrr"] == pytest.approx((1 + 1 / 2) / 2)  # (0, 2) outranks (1, 2) in column 2


def _table(S, in_graph):
    n = S.shape[0]
    src, dst = np.nonzero(~np.eye(n, dtype=bool))
    names = np.array([f"f{i}" for i in range(n)])
    return pd.DataFrame(
        {
            "src_func": names[src],
            "dst_func": names[dst],
            "src_idx": src,
            "dst_idx": dst,
            "corr": S[src, dst],
            "has_edge": in_graph[src, dst],
            "p_value": 0.5,
            "q_value": 0.5,
        }
    )


def test_edge_table_metrics_matches_score_matrix(tied_problem):
    S, in_graph, pos, exclude = tied_problem
    res = _table(S, in_graph).sample(frac=1.0, random_state=0)  # row order is irrelevant
    named = [(f"f{s}", f"f{d}") for s, d in pos]
    excl = [(f"f{s}", f"f{d}") for s, d in exclude]
    per, summary = edge_table_metrics(res, named, score_col="corr", exclude=excl)
    assert summary == pytest.approx(score_matrix_metrics(S, in_graph, pos, exclude=exclude))
    raw, filt = target_ranks(S, in_graph, pos, exclude=exclude)
    assert list(per.columns) == ["src_func", "dst_func", "score", "rank", "filtered_rank"]
    assert list(zip(per.src_func, per.dst_func, strict=True)) == named
    np.testing.assert_allclose(per["rank"], raw)
    np.testing.assert_allclose(per["filtered_rank"], filt)
    np.testing.assert_allclose(per["score"], S[tuple(pos.T)])


def test_edge_table_metrics_missing_rows_are_not_scored():
    S = np.zeros((3, 3))
    S[0, 1], S[2, 1] = 1.0, 5.0
    res = _table(S, np.zeros((3, 3), dtype=bool))
    res = res[~((res.src_idx == 2) & (res.dst_idx == 1))]
    per, summary = edge_table_metrics(res.rename(columns={"corr": "score"}), [("f0", "f1")])
    assert per["rank"].tolist() == [1.0] and summary["auc"] == 1.0


def test_edge_table_metrics_unscored_rows_rank_last():
    S = np.array([[0.0, 0.9, 0.1], [0.4, 0.0, np.nan], [np.nan, 0.5, 0.0]])
    in_graph = np.zeros((3, 3), dtype=bool)
    res = _table(S, in_graph).rename(columns={"corr": "score"})
    _, summary = edge_table_metrics(res, [("f0", "f1"), ("f1", "f2")])
    assert summary == score_matrix_metrics(S, in_graph, np.array([[0, 1], [1, 2]]))


def test_edge_table_metrics_unknown_names():
    res = _table(np.zeros((3, 3)), np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"\('f0', 'zz'\)"):
        edge_table_metrics(res, [("f0", "zz")], score_col="corr")
    with pytest.raises(ValueError, match="'score'"):
        edge_table_metrics(res, [("f0", "f1")])


def test_score_matrix_metrics_large_matches_rank_sum_and_loop_references():
    """N = 2,000 (4M pairs), 100 positives: the vectorized metrics equal scipy's rank-sum
    AUC and the per-positive loop's ranks (~0.2 s on the dev container CPU, not asserted)."""
    rng = np.random.default_rng(4)
    n = 2000
    S = rng.standard_normal((n, n))
    in_graph = np.zeros((n, n), dtype=bool)
    pos = np.stack([rng.permutation(n)[:100], rng.permutation(n)[:100]], axis=1)
    pos = pos[pos[:, 0] != pos[:, 1]]
    S[tuple(pos.T)] += 3.0
    m = score_matrix_metrics(S, in_graph, pos)
    neg = ~np.eye(n, dtype=bool)
    neg[tuple(pos.T)] = False
    u = stats.mannwhitneyu(S[tuple(pos.T)], S[neg], method="asymptotic").statistic
    assert m["auc"] == pytest.approx(u / (len(pos) * neg.sum()), rel=1e-9)
    raw, filt = references.ranks(S, in_graph, pos, np.zeros((0, 2), dtype=int))
    assert m["mrr"] == pytest.approx(np.mean(1 / raw))
    assert m["filtered_mrr"] == pytest.approx(np.mean(1 / filt))
    assert m["top@5"] == pytest.approx(np.mean(raw <= 5))
    assert m["n_positives"] == len(pos)


def test_roc_curve_of_an_already_ranked_table_equals_the_sorted_one():
    """A stored table is score-sorted (NaN last): the curve skips its sort and must not
    change, ties included."""
    rng = np.random.default_rng(5)
    scores = np.r_[np.round(rng.normal(size=300), 1), [np.nan] * 7]
    labels = rng.random(scores.size) < 0.2
    order = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")
    ranked = roc_curve(scores[order], labels[order])
    shuffled = rng.permutation(scores.size)
    for got, want in zip(ranked, roc_curve(scores[shuffled], labels[shuffled]), strict=True):
        np.testing.assert_allclose(got, want)
