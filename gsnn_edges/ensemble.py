"""Replicas of one job (``TrainSpec.replicas``): independent training runs that differ only
in their random numbers (initialisation, dropout, batch order), and how their score
matrices become one edge table.

Replicas share the data split and the validation edges (both follow
``training.seed``); replica ``r`` draws everything else from :func:`replica_seed`. Their
scores combine as the mean of per-replica percentile ranks (:func:`combine_scores`; why
ranks: ``benchmarks/README.md``, "Replicas"), their p-values by the Cauchy combination
(:func:`cauchy_combine`, valid under the strong dependence between replicas), and every
pair gets a ``stability`` (share of replicas with it in their top :data:`STABILITY_TOP_K`
candidates) and a ``score_se`` (standard error of its combined score over replicas).

numpy only: the service combines replicas that different workers trained.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from scipy import stats

__all__ = [
    "COMBINE",
    "COMBINES",
    "STABILITY_TOP_K",
    "EnsembleScores",
    "cauchy_combine",
    "combine_replicas",
    "combine_scores",
    "replica_seed",
    "stability",
]

# "The top rows a downstream service acts on": a replica's top 100 candidates.
STABILITY_TOP_K = 100
# How replicas' scores are put on one scale before averaging (combine_scores); the
# served table uses COMBINE, benchmarks/replicas.py compares them all
Combine = Literal["rank", "zscore"]
COMBINES: tuple[str, ...] = get_args(Combine)
COMBINE: Combine = "rank"


def replica_seed(seed: int, replica: int) -> int:
    """The seed of replica ``replica``'s random numbers: ``seed`` itself for replica 0 (so
    a one-replica job is the run it always was), otherwise drawn from ``(seed, replica)``
    by numpy's ``SeedSequence`` (independent streams, below ``2**63``)."""
    if replica == 0:
        return seed
    state = np.random.SeedSequence([seed, replica]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _off_diagonal_finite(m: np.ndarray) -> np.ndarray:
    ok = np.isfinite(m)
    np.fill_diagonal(ok, False)
    return ok


def _standardise(m: np.ndarray, how: Combine) -> np.ndarray:
    """One replica's scores on a common scale: percentile ranks in (0, 1] (ties share
    their mean rank) or z-scores, over its scored off-diagonal pairs; NaN elsewhere."""
    ok = _off_diagonal_finite(m)
    out = np.full(m.shape, np.nan)
    vals = m[ok].astype(float)
    if vals.size == 0:
        return out
    if how == "rank":
        out[ok] = stats.rankdata(vals) / vals.size
    else:
        sd = vals.std()
        out[ok] = (vals - vals.mean()) / (sd if sd > 0 else 1.0)
    return out


def combine_scores(
    scores: Sequence[np.ndarray], how: Combine = COMBINE
) -> tuple[np.ndarray, np.ndarray]:
    """The replicas' ``[N, N]`` score matrices as one: the mean of each pair's
    standardised score (:func:`_standardise`) over the replicas that scored it, and its
    standard error (``sd / sqrt(R)``, NaN with one replica). Where every replica
    ranks pair ``a`` above ``b``, so does the mean (the hybrid's tiers stay tiers)."""
    z = np.stack([_standardise(np.asarray(s), how) for s in scores])
    n = np.isfinite(z).sum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pairs no replica scored stay NaN
        mean = np.nanmean(z, axis=0)
        se = np.nanstd(z, axis=0, ddof=1) / np.sqrt(n) if len(scores) > 1 else n * np.nan
    return mean, se


def cauchy_combine(p_values: Sequence[np.ndarray]) -> np.ndarray:
    """One p-value per pair from the replicas' ``[N, N]`` p-values: the Cauchy
    combination ``T = mean_r cot(pi p_r)``, ``p = P(Cauchy > T)`` (Liu and Xie 2020),
    whose tail stays valid for arbitrarily dependent tests. Identical p-values combine to
    themselves; NaN where any replica has none."""
    p = np.clip(np.stack([np.asarray(x, dtype=float) for x in p_values]), 1e-300, 1 - 1e-15)
    t = (1.0 / np.tan(np.pi * p)).mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # arctan(1/t)/pi keeps precision in the far tail (t large) where 1/2 - arctan(t)/pi
        # would cancel
        out = np.where(t > 0, np.arctan(1.0 / t) / np.pi, 0.5 - np.arctan(t) / np.pi)
    return out


def stability(scores: Sequence[np.ndarray], candidates: np.ndarray, k: int) -> np.ndarray:
    """``[N, N]``: the share of replicas that rank each pair among their top ``k`` scored
    ``candidates`` (bool ``[N, N]``: pairs not in the graph, off the diagonal); NaN for
    pairs that are not candidates."""
    counts = np.zeros(candidates.shape)
    flat_idx = np.flatnonzero(candidates)
    for s in scores:  # R is small (<= TrainSpec's bound): one vectorised pass each
        vals = np.asarray(s, dtype=float).reshape(-1)[flat_idx]
        scored = np.isfinite(vals)
        kk = min(k, int(scored.sum()))
        if kk == 0:
            continue
        vals = np.where(scored, vals, -np.inf)
        top = np.argpartition(-vals, kk - 1)[:kk]
        counts.reshape(-1)[flat_idx[top]] += 1
    out = counts / len(scores)
    out[~candidates] = np.nan
    return out


@dataclass
class EnsembleScores:
    """What :func:`combine_replicas` gives the edge table: ``[N, N]`` each."""

    scores: np.ndarray
    p_values: np.ndarray
    score_se: np.ndarray
    stability: np.ndarray


def combine_replicas(
    scores: Sequence[np.ndarray],
    p_values: Sequence[np.ndarray],
    in_graph: np.ndarray,
    how: Combine = COMBINE,
    k: int = STABILITY_TOP_K,
) -> EnsembleScores:
    """The replicas' score and p-value matrices of one scorer as the ensemble's."""
    combined, se = combine_scores(scores, how)
    candidates = ~np.asarray(in_graph, dtype=bool)
    np.fill_diagonal(candidates, False)
    return EnsembleScores(combined, cauchy_combine(p_values), se, stability(scores, candidates, k))
