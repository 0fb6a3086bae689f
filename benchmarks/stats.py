"""The statistics of the learning study (``benchmarks/study.py``), as small pure functions.

Scores come as one sample per seed: the mean return of that seed's held-out episodes. Every
policy meets the same workloads for a given seed, so two policies' samples pair by seed.

* Per scenario: Student-t 95 % intervals over seeds (:func:`mtenv.tools.evaluation.summarize`),
  of a policy's mean and of a paired difference (:func:`paired_difference`, :func:`beats`), and
  the share of the best-baseline→oracle headroom a learner closes (:func:`headroom_closed`).
* Across scenarios, after Agarwal et al. (2021), "Deep RL at the edge of the statistical
  precipice" (the ``rliable`` library), for score matrices of shape (seeds, scenarios):
  min–max normalised scores (:func:`normalise`), the interquartile mean (:func:`iqm`), the
  probability of improvement (:func:`probability_of_improvement`) and stratified bootstrap
  percentile intervals (:func:`stratified_bootstrap_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from mtenv.tools.evaluation import Summary, summarize

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
"""Each bootstrap interval draws from its own ``numpy.random.default_rng(BOOTSTRAP_SEED)``, so
an interval does not depend on which others were computed before it."""


def paired_difference(x: Sequence[float], y: Sequence[float]) -> Summary:
    """Mean and Student-t 95 % half-width over seeds of ``x[k] − y[k]``, for two policies'
    per-seed scores ``x`` and ``y`` on the same seeds. Its mean equals ``mean(x) − mean(y)``."""
    return summarize(a - b for a, b in zip(x, y, strict=True))


def beats(difference: Summary) -> bool:
    """Whether a paired difference is positive with its 95 % interval excluding 0, i.e.
    ``mean − ci95 > 0``. False when the interval is undefined (fewer than two seeds)."""
    return bool(difference.mean - difference.ci95 > 0)


def headroom_closed(learner: float, best: float, oracle: float) -> float:
    """The share of the headroom a learner closes: ``(learner − best) / (oracle − best)`` for
    the mean returns of the learner, the best baseline and the oracle. 1 means the learner
    matches the oracle, 0 the best baseline, a negative share that it falls below the best
    baseline. NaN when there is no headroom (``oracle ≤ best``)."""
    headroom = oracle - best
    return (learner - best) / headroom if headroom > 0 else math.nan


def normalise(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """Min–max normalised scores ``(x − low) / (high − low)``: 0 at ``low`` (the scenario's mean
    random return), 1 at ``high`` (its mean oracle return). All NaN when ``high == low``."""
    scores = np.asarray(scores, dtype=float)
    if high == low:
        return np.full_like(scores, math.nan)
    return (scores - low) / (high - low)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all ``scores`` pooled: sort them, drop ``⌊n/4⌋`` from each end and
    average the rest, as ``scipy.stats.trim_mean(scores, 0.25)`` (rliable's IQM) does. For
    ``n`` divisible by 4 that is exactly the middle 50 %."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    if x.size == 0:
        return math.nan
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for score matrices ``x`` and ``y`` of shape (seeds, scenarios): per scenario,
    over all pairs of a seed of ``x`` and a seed of ``y``, the share with ``x > y`` plus half
    the share of ties (the Mann–Whitney U statistic over the number of pairs); then the mean over
    scenarios. Unchanged by any increasing per-scenario normalisation of both."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    per_scenario = [
        np.mean(x[:, j, None] > y[None, :, j]) + 0.5 * np.mean(x[:, j, None] == y[None, :, j])
        for j in range(x.shape[1])
    ]
    return float(np.mean(per_scenario))


def stratified_bootstrap_ci(
    statistic: Callable[..., float],
    *matrices: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(*matrices)`` under a stratified bootstrap.

    Each matrix has shape (seeds, scenarios). One resample replaces, independently for each
    matrix and each scenario (column), its seeds by as many drawn from them with replacement,
    so every scenario keeps its weight; ``statistic`` is evaluated on the resampled matrices.
    The interval is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of ``resamples`` such
    values. With two matrices this is rliable's independent stratified bootstrap, as used for
    the probability of improvement."""
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for b in range(resamples):
        values[b] = statistic(*(_resample(np.asarray(m, dtype=float), rng) for m in matrices))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _resample(matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``matrix`` with each column's rows drawn with replacement from that column."""
    rows, columns = matrix.shape
    picks = rng.integers(0, rows, size=(rows, columns))
    return matrix[picks, np.arange(columns)]
