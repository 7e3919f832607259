"""Edge scorers of one training run on a common footing: a score matrix, its p-values, and
the combinations the service offers (``RegressorSpec.scorer``).

- ``magnitude``: the online regressor's ``W`` (the seed's method, SPEC section 4);
- ``score_test``: the score statistic of each missing edge at the chosen checkpoint
  (:mod:`gsnn_edges.inference.score_test`);
- ``observed_baseline``: linear regression on observed stand-ins, no network
  (:mod:`gsnn_edges.inference.observed_baseline`); latent targets are not scored (NaN);
- ``hybrid``: the observed baseline's ranking where it scores a pair, then the score
  test's for the pairs it cannot score (latent target or source, or an observed source
  downstream of its target); see
  :func:`hybrid_scores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from gsnn_edges.inference.observed_baseline import ObservedBaseline

__all__ = ["PairScores", "chi2_log_sf", "hybrid_scores", "normal_equivalent"]


@dataclass
class PairScores:
    """Scores ``[N, N]`` (higher = more likely an edge, NaN = not scored) and one-sided
    p-values ``[N, N]`` (NaN where not scored) of every function -> function pair."""

    scores: np.ndarray
    p_values: np.ndarray

    @property
    def n_scored(self) -> int:
        """Off-diagonal pairs with a score."""
        ok = np.isfinite(self.scores)
        return int(ok.sum() - np.trace(ok))


def chi2_log_sf(stat: np.ndarray, dof: np.ndarray | float) -> np.ndarray:
    """``log P(chi2_dof > stat)``, also where the tail underflows float64 (``p < 1e-308``):
    there the leading term of the upper-tail expansion,
    ``(k/2 - 1) log(x/2) - x/2 - lgamma(k/2)``, takes over."""
    x, k = np.asarray(stat, dtype=float), np.asarray(dof, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = stats.chi2.logsf(x, k)
        tail = (k / 2 - 1) * np.log(x / 2) - x / 2 - special.gammaln(k / 2)
    return np.where(np.isneginf(exact) & (x > 0), tail, exact)


def normal_equivalent(log_p: np.ndarray) -> np.ndarray:
    """The z with ``P(N(0, 1) > z) = p``, from ``log p`` (no saturation where ``p``
    underflows), so tests with different null distributions rank on one scale."""
    with np.errstate(invalid="ignore"):
        return -special.ndtri_exp(np.asarray(log_p, dtype=float))


def hybrid_scores(
    baseline: ObservedBaseline, score_stat: np.ndarray, score_p: np.ndarray, n_block_pairs: int
) -> PairScores:
    """Pairs the observed baseline scores (observed target, source with a stand-in, not
    an observed source downstream of the target) rank first, in the baseline's order; the
    others after them, in the score test's order.

    ``score = tier + 1/2 + atan(x) / pi``: ``tier`` 1 and ``x = atanh(R)`` (the baseline's
    partial correlation) for the baseline's pairs, ``tier`` 0 and ``x`` the
    :func:`normal_equivalent` of the score test's chi-square ``n_block_pairs`` log p-value
    for the others. The integer part says which test scored the pair; within a tier the
    order is that scorer's own, so where the baseline applies the ranking is exactly
    the baseline's (never below it). Putting both tests on one z scale instead lost 0.02
    AUC on the benchmark, where the score test's statistics on latent targets run larger
    than the baseline's (``benchmarks/README.md``). p-values are each test's own.

    Shapes:
        score_stat, score_p: ``[N, N]``; returns ``[N, N]`` each.
    """
    use_base = np.isfinite(baseline.scores)
    with np.errstate(divide="ignore"):
        base_x = np.arctanh(np.clip(baseline.scores, 0.0, 1.0))
    test_x = normal_equivalent(chi2_log_sf(score_stat, n_block_pairs))
    scores = use_base + 0.5 + np.arctan(np.where(use_base, base_x, test_x)) / np.pi
    p = np.where(use_base, baseline.p_values, score_p)
    np.fill_diagonal(scores, np.nan)
    np.fill_diagonal(p, np.nan)
    return PairScores(scores, p)
