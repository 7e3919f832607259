"""Edge scorers of one training run on a common footing: a score matrix, its p-values, and
the combinations the service offers (``RegressorSpec.scorer``).

- ``magnitude``: the online regressor's ``W`` (the seed's method, SPEC section 4);
- ``score_test``: the score statistic of each missing edge at the chosen checkpoint
  (:mod:`gsnn_edges.inference.score_test`);
- ``observed_baseline``: linear regression on observed stand-ins, no network
  (:mod:`gsnn_edges.inference.observed_baseline`); latent targets are not scored (NaN);
- ``hybrid``: the observed baseline's ranking where it scores a pair, then the score
  test's for the pairs it cannot score (latent target or source); see
  :func:`hybrid_scores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from gsnn_edges.inference.observed_baseline import ObservedBaseline

__all__ = ["BASELINE_DEGREE", "PairScores", "chi2_log_sf", "hybrid_scores", "normal_equivalent"]

# Polynomial degree of the observed baseline's stand-ins in a training run: cubic beat
# linear on the families where it applies (benchmarks/README.md, "observed baseline").
BASELINE_DEGREE = 3


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

    def ranked(self) -> np.ndarray:
        """Scores with unscored pairs ranked last (``-inf``), for recovery metrics: a pair
        a scorer cannot score is a pair it does not recover."""
        return np.where(np.isnan(self.scores), -np.inf, self.scores)


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
    """Pairs the observed baseline scores (observed target, source with a stand-in) rank
    first, by its test; the others (latent target or source) after them, by the score test.

    ``score = tier + 1/2 + atan(z) / pi`` with ``tier`` 1 for the baseline's pairs and 0
    for the score test's, and ``z`` the :func:`normal_equivalent` of that test's log
    p-value (the partial F test's, continued by ``df1 * F`` against chi-square ``df1``
    where float64 underflows; chi-square ``n_block_pairs`` for ``Q``). So the integer
    part says which test scored the pair, and within a tier the order is the test's own,
    resolved far into the tail. Observed data first: where the baseline applies the
    ranking is the baseline's, never below it; putting both tests on one z scale instead
    lost 0.02 AUC on the benchmark, where the score test's statistics on latent targets
    run larger than the baseline's (``benchmarks/README.md``). p-values are each test's.

    Shapes:
        score_stat, score_p: ``[N, N]``; returns ``[N, N]`` each.
    """
    b = baseline
    use_base = np.isfinite(b.f_stat)
    with np.errstate(invalid="ignore", divide="ignore"):
        base_log_p = stats.f.logsf(b.f_stat, b.df1, b.df2)
    base_log_p = np.where(np.isneginf(base_log_p), chi2_log_sf(b.df1 * b.f_stat, b.df1), base_log_p)
    log_p = np.where(use_base, base_log_p, chi2_log_sf(score_stat, n_block_pairs))
    scores = use_base + 0.5 + np.arctan(normal_equivalent(log_p)) / np.pi
    p = np.where(use_base, b.p_values, score_p)
    np.fill_diagonal(scores, np.nan)
    np.fill_diagonal(p, np.nan)
    return PairScores(scores, p)
