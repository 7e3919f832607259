"""Edge-recovery metrics (SPEC section 6): AUC, MRR, top@k, BH q-values.

Pure numpy functions. A score matrix ``S[i, j]`` scores the candidate edge ``i -> j``.
Each candidate pair falls in one category: ``held_out`` (a positive), ``in_graph`` (an
edge of the training graph) or ``non_edge``; excluded pairs and (by default) the diagonal
are not scored at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gsnn_edges.graph import pair_indices

# Entries of one [N, chunk] comparison block in target_ranks (bounds memory, not a loop
# over pairs: a 2,000-node matrix with 100 positives is a single block).
_BLOCK = 1 << 24


# --------------------------------------------------------------------------- basic
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC via the Mann-Whitney U statistic, ties counted 1/2 (the same
    :func:`_auc_against` every score-matrix metric uses).

    Shapes:
        scores: [M]; labels: [M] (bool or 0/1). Any shape is flattened.

    Returns:
        The AUC, or NaN if either class is empty.
    """
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores has {scores.size} entries but labels has {labels.size}")
    labels = labels.astype(bool)
    return _auc_against(scores[labels], scores[~labels])


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve with one point per distinct score threshold, starting at (0, 0). A NaN
    score (a pair the scorer cannot score) ranks last, as in :func:`score_matrix_metrics`.

    Shapes:
        scores, labels: [M]; returns fpr, tpr: [T + 1] for T distinct scores.
    """
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores has {scores.size} entries but labels has {labels.size}")
    scores = np.where(np.isnan(scores), -np.inf, scores)
    if scores.size and (scores[1:] <= scores[:-1]).all():  # already ranked (a stored table)
        s, y = scores, labels.astype(bool)
    else:
        order = np.argsort(-scores, kind="mergesort")
        s, y = scores[order], labels[order].astype(bool)
    # thresholds end where the score changes (!= rather than diff: -inf - -inf is NaN)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1] if s.size else np.zeros(0, int)
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, tps] / y.sum()
        fpr = np.r_[0.0, fps] / (~y).sum()
    return fpr, tpr


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values).

    ``q_(i) = min_{k >= i} p_(k) m / k`` over the sorted p-values, clipped to ``[0, 1]``;
    NaN entries stay NaN and do not count in ``m``.

    Shapes:
        p: any shape; returns the same shape.
    """
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    bad = ok & ((flat < 0) | (flat > 1))
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1], got {flat[bad][0]!r}")
    vals = flat[ok]
    m = vals.size
    order = np.argsort(vals)  # ties get equal q-values whatever their order
    q_sorted = vals[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(q_sorted[::-1])[::-1]
    q_sorted = np.maximum(q_sorted, vals[order])  # q >= p exactly (p * m / m can round down)
    q = np.full(flat.shape, np.nan)
    q_ok = np.empty(m)
    q_ok[order] = np.clip(q_sorted, 0.0, 1.0)
    q[ok] = q_ok
    return q.reshape(p.shape)


# --------------------------------------------------------------------------- masks
def _pairs(arr: Any, n: int, name: str) -> np.ndarray:
    """Validate an int pair array ``[K, 2]`` with entries in ``[0, n)``."""
    a = np.asarray(arr if arr is not None else np.zeros((0, 2)))
    if a.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if a.ndim != 2 or a.shape[1] != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of shape [K, 2], got {a.shape}")
    bad = (a < 0) | (a >= n)
    if bad.any():
        row = int(np.flatnonzero(bad.any(1))[0])
        raise ValueError(f"{name} pair {tuple(a[row].tolist())} is out of range for N={n}")
    return a.astype(np.int64)


def _category_masks(
    S: np.ndarray,
    in_graph: np.ndarray,
    positives: Any,
    exclude: Any,
    exclude_self: bool,
    scored: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build ``(S, positives, scored, non_edge)``; ``scored`` and ``non_edge`` are [N, N].

    A NaN score marks a pair the scorer cannot score (e.g. the observed baseline's latent
    targets): it becomes ``-inf``, ranked below every scored pair (not recovered).
    """
    S = np.asarray(S, dtype=float)
    S = np.where(np.isnan(S), -np.inf, S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square [N, N] matrix, got shape {S.shape}")
    n = S.shape[0]
    in_graph = np.asarray(in_graph, dtype=bool)
    if in_graph.shape != S.shape:
        raise ValueError(f"in_graph has shape {in_graph.shape}, expected {S.shape}")
    pos, exc = _pairs(positives, n, "positives"), _pairs(exclude, n, "exclude")
    scored = np.ones((n, n), dtype=bool) if scored is None else scored.copy()
    if exclude_self:
        np.fill_diagonal(scored, False)
    scored[exc[:, 0], exc[:, 1]] = False
    is_pos = np.zeros((n, n), dtype=bool)
    is_pos[pos[:, 0], pos[:, 1]] = True
    _check_positives(pos, is_pos, scored, in_graph, S)
    return S, pos, scored, scored & ~in_graph & ~is_pos


def _check_positives(
    pos: np.ndarray, is_pos: np.ndarray, scored: np.ndarray, in_graph: np.ndarray, S: np.ndarray
) -> None:
    """Positives must be unique, scored and absent from the training graph."""
    if int(is_pos.sum()) != len(pos):
        _, idx, counts = np.unique(pos, axis=0, return_index=True, return_counts=True)
        raise ValueError(f"positive pair {tuple(pos[idx[counts > 1][0]].tolist())} is repeated")
    checks = (
        (~scored[pos[:, 0], pos[:, 1]], "is excluded (or a self pair) and cannot be scored"),
        (in_graph[pos[:, 0], pos[:, 1]], "is already in the training graph (in_graph)"),
    )
    for bad, why in checks:
        if bad.any():
            raise ValueError(f"positive pair {tuple(pos[np.argmax(bad)].tolist())} {why}")


# --------------------------------------------------------------------------- ranks
def _ranks_from_masks(
    S: np.ndarray, pos: np.ndarray, scored: np.ndarray, non_edge: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Raw and filtered ranks of each positive's source within its target column.

    ``rank = 1 + #{competitors with higher score} + 0.5 #{competitors with equal score}``.
    Raw competitors: scored sources other than ``s``; filtered: ``non_edge`` sources only.

    Shapes:
        S, scored, non_edge: [N, N]; pos: [P, 2]; returns two [P] arrays.
    """
    n, p = S.shape[0], len(pos)
    raw, filt = np.empty(p), np.empty(p)
    step = max(1, _BLOCK // max(n, 1))
    for start in range(0, p, step):  # blocks of positives, one block for typical sizes
        src, dst = pos[start : start + step, 0], pos[start : start + step, 1]
        cols = S[:, dst]  # [N, B]
        mine = S[src, dst]  # [B]
        gt, eq = cols > mine, cols == mine
        comp = scored[:, dst]
        comp[src, np.arange(len(src))] = False
        nf = non_edge[:, dst]
        raw[start : start + step] = 1 + (gt & comp).sum(0) + 0.5 * (eq & comp).sum(0)
        filt[start : start + step] = 1 + (gt & nf).sum(0) + 0.5 * (eq & nf).sum(0)
    return raw, filt


def target_ranks(
    S: np.ndarray,
    in_graph: np.ndarray,
    positives: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    exclude_self: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each positive's source among the scored sources of its target.

    Shapes:
        S, in_graph: [N, N]; positives: [P, 2] (src, dst); exclude: [Q, 2].
        Returns ``(raw_ranks, filtered_ranks)``, each [P] in the row order of positives.
    """
    S, pos, scored, non_edge = _category_masks(S, in_graph, positives, exclude, exclude_self)
    return _ranks_from_masks(S, pos, scored, non_edge)


def _auc_against(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Mann-Whitney AUC of few positives vs many negatives in ``O(M log P)``.

    With ``q`` the sorted positives, a negative ``x`` lies below ``P - right(x)``
    positives and ties ``right(x) - left(x)`` of them (``left/right = searchsorted``).
    ``right`` is only recomputed for the (rare) negatives that tie a positive.
    """
    n_pos, n_neg = pos_scores.size, neg_scores.size
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    q = np.sort(pos_scores)
    left = np.searchsorted(q, neg_scores, "left")
    tied = q[np.minimum(left, n_pos - 1)] == neg_scores
    n_ties = float((np.searchsorted(q, neg_scores[tied], "right") - left[tied]).sum())
    n_below = float((n_pos - left).sum()) - n_ties  # pairs with neg < pos
    return (n_below + 0.5 * n_ties) / (n_pos * n_neg)


def _summary(
    auc: float, raw: np.ndarray, filt: np.ndarray, top_k: Sequence[int]
) -> dict[str, float]:
    out: dict[str, float] = {"auc": auc}
    for prefix, r in (("", raw), ("filtered_", filt)):
        out[f"{prefix}mrr"] = float(np.mean(1.0 / r)) if r.size else float("nan")
        for k in top_k:
            out[f"{prefix}top@{k}"] = float(np.mean(r <= k)) if r.size else float("nan")
    out["n_positives"] = int(raw.size)
    return out


def _metrics_from_masks(
    S: np.ndarray,
    pos: np.ndarray,
    scored: np.ndarray,
    non_edge: np.ndarray,
    top_k: Sequence[int],
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    raw, filt = _ranks_from_masks(S, pos, scored, non_edge)
    auc = _auc_against(S[pos[:, 0], pos[:, 1]], S[non_edge])
    return _summary(auc, raw, filt, top_k), raw, filt


def score_matrix_metrics(
    S: np.ndarray,
    in_graph: np.ndarray,
    positives: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    exclude_self: bool = True,
    top_k: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """AUC, MRR and top@k of held-out positives in a dense score matrix.

    ``auc`` compares positives with ``non_edge`` pairs only; ``mrr`` / ``top@k`` use the
    raw ranks of :func:`target_ranks`, ``filtered_*`` the filtered ranks. NaN scores rank
    last (a pair the scorer cannot score is not recovered).

    Shapes:
        S, in_graph: [N, N]; positives: [P, 2]; exclude: [Q, 2].

    Returns:
        ``{"auc", "mrr", "top@k"..., "filtered_mrr", "filtered_top@k"..., "n_positives"}``.
    """
    S, pos, scored, non_edge = _category_masks(S, in_graph, positives, exclude, exclude_self)
    return _metrics_from_masks(S, pos, scored, non_edge, top_k)[0]


def named_pair_metrics(
    S: np.ndarray,
    in_graph: np.ndarray,
    names: Sequence[str],
    positive_edges: Iterable[Sequence[str]],
    *,
    exclude: Iterable[Sequence[str]] | None = None,
    top_k: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """:func:`score_matrix_metrics` of held-out ``(src, dst)`` function-node name pairs:
    the one home of "score my held-out edges" for every scorer.

    Raises:
        ValueError: a positive or excluded pair names an unknown node.
    """
    pos = pair_indices(positive_edges, names, "positive edge")
    exc = pair_indices(exclude or (), names, "excluded edge")
    return score_matrix_metrics(S, in_graph, pos, exclude=exc, top_k=tuple(top_k))


# --------------------------------------------------------------------------- tables
def edge_table_metrics(
    res: pd.DataFrame,
    positive_edges: Iterable[Sequence[str]],
    *,
    score_col: str = "score",
    top_k: Sequence[int] = (1, 3, 5),
    exclude: Iterable[Sequence[str]] = (),
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Metrics of a scored edge table (regressor / inferer output).

    The table's rows (columns ``src_func, dst_func, src_idx, dst_idx, <score_col>,
    has_edge``) define the scored pairs; pairs absent from the table are not scored.
    ``has_edge`` is the in-graph mask.

    Shapes:
        res: [R rows]; returns a per-positive frame [P] (src_func, dst_func, score, rank,
        filtered_rank) and the summary dict of :func:`score_matrix_metrics`.

    Raises:
        ValueError: missing column, or a positive / excluded edge with an unknown endpoint.
    """
    needed = ["src_func", "dst_func", "src_idx", "dst_idx", score_col, "has_edge"]
    missing = [c for c in needed if c not in res.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}")
    si, di = res["src_idx"].to_numpy(np.int64), res["dst_idx"].to_numpy(np.int64)
    n = int(max(si.max(initial=-1), di.max(initial=-1))) + 1
    names = np.full(n, "", dtype=object)
    names[si], names[di] = res["src_func"].astype(str), res["dst_func"].astype(str)
    S = np.zeros((n, n))
    S[si, di] = res[score_col].to_numpy(float)
    in_graph = np.zeros((n, n), dtype=bool)
    in_graph[si, di] = res["has_edge"].to_numpy(bool)
    present = np.zeros((n, n), dtype=bool)
    present[si, di] = True
    pos = pair_indices(positive_edges, names, "positive edge", among="in the score table")
    exc = pair_indices(exclude, names, "excluded edge", among="in the score table")
    S, pos, scored, non_edge = _category_masks(S, in_graph, pos, exc, True, scored=present)
    summary, raw, filt = _metrics_from_masks(S, pos, scored, non_edge, top_k)
    per = pd.DataFrame(
        {
            "src_func": names[pos[:, 0]],
            "dst_func": names[pos[:, 1]],
            "score": S[pos[:, 0], pos[:, 1]],
            "rank": raw,
            "filtered_rank": filt,
        }
    )
    return per, summary
