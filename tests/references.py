"""Ranking metrics written out by definition: the references metric tests compare with.

Loops over positives and candidate sources, no shared code with gsnn_edges.metrics.
NaN scores rank below every number (a pair a scorer cannot score is not recovered).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


def _ranked(scores) -> np.ndarray:
    return np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)


def auc(pos, neg) -> float:
    """P(positive > negative) + P(tie) / 2 over every (positive, negative) pair."""
    total = 0.0
    for p in _ranked(pos):
        for n in _ranked(neg):
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def ranks(S, in_graph, pos, exclude, exclude_self=True) -> tuple[np.ndarray, np.ndarray]:
    """Raw and filtered rank of each positive ``(s, d)`` among the sources of ``d``."""
    S = _ranked(S)
    n = S.shape[0]
    excl = {tuple(e) for e in exclude}
    posset = {tuple(p) for p in pos}
    raw, filt = [], []
    for s, d in pos:
        r, f = 1.0, 1.0
        for i in range(n):
            if i == s or (exclude_self and i == d) or (i, d) in excl:
                continue
            w = 1.0 if S[i, d] > S[s, d] else 0.5 if S[i, d] == S[s, d] else 0.0
            r += w
            if not in_graph[i, d] and (i, d) not in posset:
                f += w
        raw.append(r)
        filt.append(f)
    return np.array(raw), np.array(filt)


def table_auc(edges: pd.DataFrame, positives: Iterable[Sequence[str]]) -> float:
    """AUC of ``positives`` against every other pair of an edge table (``src``, ``dst``,
    ``score``, ``has_edge`` columns) that is not in the graph."""
    wanted = {tuple(p) for p in positives}
    pairs = zip(edges["src"], edges["dst"], strict=True)
    is_pos = np.array([pair in wanted for pair in pairs])
    assert is_pos.sum() == len(wanted), "a positive pair is missing from the table"
    neg = ~is_pos & ~edges["has_edge"].to_numpy(bool)
    return auc(edges["score"][is_pos], edges["score"][neg])


def named_metrics(S, in_graph, names, positives, exclude=()) -> dict[str, float]:
    """``auc`` and ``mrr`` of ``(src, dst)`` name pairs in a score matrix ``S [N, N]``:
    negatives are the off-diagonal pairs outside the graph, the positives and ``exclude``."""
    index = {name: i for i, name in enumerate(names)}
    pos = np.array([(index[s], index[d]) for s, d in positives])
    excl = np.array([(index[s], index[d]) for s, d in exclude]).reshape(-1, 2)
    neg = ~np.eye(len(names), dtype=bool) & ~np.asarray(in_graph, dtype=bool)
    neg[tuple(pos.T)] = False
    neg[tuple(excl.T)] = False
    raw, _ = ranks(S, in_graph, pos, excl)
    return {"auc": auc(S[tuple(pos.T)], S[neg]), "mrr": float(np.mean(1 / raw))}


def confirmed_pairs(pairs: Iterable[Sequence], top: int) -> list[tuple]:
    """The pairs a confirmation of ``top`` takes from candidates ranked best first: in
    order, passing over a pair whose reverse came before it (a loop over rows)."""
    ranked, taken = set(), []
    for src, dst in pairs:
        if (dst, src) not in ranked:
            taken.append((src, dst))
        ranked.add((src, dst))
    return taken[:top]
