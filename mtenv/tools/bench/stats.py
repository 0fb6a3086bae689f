"""The statistics of a benchmark: per scenario over seeds, and across scenarios.

Scores come as one sample per (scenario, policy, seed): the mean return of that seed's
evaluation episodes. Every policy meets the same workloads for a given seed, so two policies'
samples pair by seed.

* Per scenario: Student-t 95 % intervals over seeds (:func:`mtenv.tools.evaluation.summarize`)
  of a policy's mean and of a paired difference (:func:`paired_difference`, :func:`beats`), the
  share of the best-baseline→oracle headroom a policy closes (:func:`headroom_closed`), and
  min–max normalised scores (:func:`normalise`, :func:`normalisation_bounds`).
* Across scenarios, after Agarwal et al. (2021), "Deep RL at the edge of the statistical
  precipice" (the ``rliable`` library): the interquartile mean of the pooled scores
  (:func:`iqm`), the probability of improvement (:func:`probability_of_improvement`),
  performance profiles (:func:`performance_profile`) and stratified bootstrap percentile
  intervals of any of them (:func:`stratified_bootstrap`).

A *sample* of scores is either a (seeds, scenarios) matrix or a list of per-scenario 1-D arrays
(a *stratum* per scenario; their lengths may differ, e.g. when a sweep lost some cells). The
bootstrap resamples seeds within each scenario, so every scenario keeps its weight.

:func:`analyse` turns the episode records of a ``results.jsonl`` (:mod:`.records`) into an
:class:`Analysis`: every number that ``mtenv bench report`` prints or draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtenv.tools.evaluation import Summary, summarize

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
"""Each bootstrap interval draws from its own ``numpy.random.default_rng(BOOTSTRAP_SEED)``, so
an interval does not depend on which others were computed before it, and a report is the same
every time it is made."""
LEVEL = 0.95
_BATCH = 500  # bootstrap resamples evaluated at once

Sample = np.ndarray | Sequence[np.ndarray]

# --- per scenario ------------------------------------------------------------------------------


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


def normalisation_bounds(means: dict[str, float]) -> tuple[float, float, str, str]:
    """``(low, high, low_from, high_from)`` for one scenario's mean returns by policy: 0 is
    ``random``'s mean where present, else the lowest mean; 1 is ``oracle``'s where present, else
    the highest. ``low_from`` / ``high_from`` say which ("random", "lowest mean", ...)."""
    if "random" in means:
        low, low_from = means["random"], "random"
    else:
        low, low_from = min(means.values()), "lowest mean"
    if "oracle" in means:
        high, high_from = means["oracle"], "oracle"
    else:
        high, high_from = max(means.values()), "highest mean"
    return low, high, low_from, high_from


# --- across scenarios --------------------------------------------------------------------------


def iqm(scores: Sample) -> float:
    """Interquartile mean of all ``scores`` pooled: sort them, drop ``⌊n/4⌋`` from each end and
    average the rest, as ``scipy.stats.trim_mean(scores, 0.25)`` (rliable's IQM) does. For
    ``n`` divisible by 4 that is exactly the middle 50 %."""
    return float(_iqm(_single(scores))[0])


def probability_of_improvement(x: Sample, y: Sample) -> float:
    """P(X > Y) for two samples over the same scenarios: per scenario, over all pairs of a seed
    of ``x`` and a seed of ``y``, the share with ``x > y`` plus half the share of ties (the
    Mann–Whitney U statistic over the number of pairs); then the mean over scenarios. Unchanged
    by any increasing per-scenario normalisation of both."""
    return float(_improvement(_single(x), _single(y))[0])


def performance_profile(scores: Sample, taus: np.ndarray) -> np.ndarray:
    """The score distribution: for each threshold τ of ``taus``, the fraction of all pooled
    scores above τ (rliable's ``create_performance_profile`` with its default
    ``use_score_distribution=True``)."""
    return _profile(_single(scores), np.asarray(taus, dtype=float))[0]


def stratified_bootstrap(
    statistic: Callable[..., np.ndarray],
    *samples: Sample,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval (low, high arrays) of a statistic under a stratified bootstrap.

    One resample replaces, independently for each sample and each scenario, that scenario's
    seeds by as many drawn from them with replacement (rliable's ``StratifiedBootstrap``; with
    two samples its ``StratifiedIndependentBootstrap``). ``statistic`` is vectorised: it gets,
    per sample, a list of (resamples, seeds) arrays, one per scenario, and returns an array of
    shape (resamples,) or (resamples, k). The interval is the ``(1 − level)/2`` and
    ``(1 + level)/2`` quantiles of ``resamples`` values (linear interpolation)."""
    rng = np.random.default_rng(seed)
    strata = [_strata(s) for s in samples]
    chunks = []
    for start in range(0, resamples, _BATCH):
        b = min(_BATCH, resamples - start)
        drawn = [[c[rng.integers(0, c.size, size=(b, c.size))] for c in cs] for cs in strata]
        chunks.append(np.asarray(statistic(*drawn), dtype=float).reshape(b, -1))
    values = np.concatenate(chunks)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail], axis=0)
    return low, high


def stratified_bootstrap_ci(
    statistic: Callable[..., float],
    *matrices: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """:func:`stratified_bootstrap` of a scalar ``statistic(*matrices)`` of (seeds, scenarios)
    matrices, called once per resample on the resampled matrices."""

    def vectorised(*drawn: list[np.ndarray]) -> np.ndarray:
        stacked = [np.stack(columns, axis=-1) for columns in drawn]
        return np.array([statistic(*(m[b] for m in stacked)) for b in range(len(stacked[0]))])

    low, high = stratified_bootstrap(
        vectorised, *matrices, resamples=resamples, seed=seed, level=level
    )
    return float(low[0]), float(high[0])


def iqm_ci(scores: Sample) -> tuple[float, float]:
    """The stratified bootstrap interval of :func:`iqm`."""
    low, high = stratified_bootstrap(_iqm, scores)
    return float(low[0]), float(high[0])


def improvement_ci(x: Sample, y: Sample) -> tuple[float, float]:
    """The stratified (independent) bootstrap interval of :func:`probability_of_improvement`."""
    low, high = stratified_bootstrap(_improvement, x, y)
    return float(low[0]), float(high[0])


def profile_band(scores: Sample, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stratified bootstrap band of :func:`performance_profile`, per threshold."""
    taus = np.asarray(taus, dtype=float)
    return stratified_bootstrap(lambda cols: _profile(cols, taus), scores)


def t_band(curves: Sequence[np.ndarray], points: int = 50) -> dict[str, np.ndarray] | None:
    """Learning curves of several seeds (each an array of ``[env_step, return]`` rows) on a
    common grid of ``points`` steps, from the latest first step to the earliest last step (no
    extrapolation), each interpolated linearly; per step the mean and Student-t 95 % interval
    over seeds. ``None`` when no two points are shared."""
    curves = [np.asarray(c, dtype=float).reshape(-1, 2) for c in curves if len(c)]
    if not curves:
        return None
    start = max(float(c[0, 0]) for c in curves)
    stop = min(float(c[-1, 0]) for c in curves)
    if not stop > start:
        return None
    grid = np.linspace(start, stop, points)
    values = np.array([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
    stats = [summarize(values[:, i]) for i in range(points)]
    mean = np.array([s.mean for s in stats])
    half = np.array([s.ci95 for s in stats])
    return {"step": grid, "mean": mean, "low": mean - half, "high": mean + half}


def _strata(sample: Sample) -> list[np.ndarray]:
    """A sample as a list of non-empty per-scenario 1-D arrays (a matrix's columns)."""
    if isinstance(sample, np.ndarray):
        if sample.ndim == 2:
            return [sample[:, j].astype(float) for j in range(sample.shape[1])]
        return [sample.astype(float).ravel()]
    return [np.asarray(s, dtype=float).ravel() for s in sample if np.size(s)]


def _single(sample: Sample) -> list[np.ndarray]:
    """A sample as one resample: per scenario a (1, seeds) array."""
    return [s[None, :] for s in _strata(sample)]


def _iqm(strata: list[np.ndarray]) -> np.ndarray:
    pooled = np.sort(np.concatenate(strata, axis=1), axis=1)
    n = pooled.shape[1]
    if n == 0:
        return np.full(pooled.shape[0], math.nan)
    cut = int(0.25 * n)
    return pooled[:, cut : n - cut].mean(axis=1)


def _improvement(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} scenarios against {len(ys)}: the samples must align")
    per_scenario = [
        np.mean(x[:, :, None] > y[:, None, :], axis=(1, 2))
        + 0.5 * np.mean(x[:, :, None] == y[:, None, :], axis=(1, 2))
        for x, y in zip(xs, ys, strict=True)
    ]
    return np.mean(per_scenario, axis=0)


def _profile(strata: list[np.ndarray], taus: np.ndarray) -> np.ndarray:
    pooled = np.concatenate(strata, axis=1)
    return np.mean(pooled[:, :, None] > taus[None, None, :], axis=1)


# --- a results.jsonl analysed ------------------------------------------------------------------

HEADLINE = ("accuracy", "slo_attainment", "latency_p95_ms", "cost_usd", "reject_rate")
"""The episode metrics reported beside the return, as means over seeds."""
BASELINE, ORACLE_ROLE, TRAINED, OTHER = "baseline", "oracle", "trained", "other"
BEST_BASELINE = "best baseline"
"""The default reference: in each scenario, the deployable baseline of highest mean return."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % interval and the number of samples behind it."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, summary: Summary) -> Estimate:
        return cls(
            summary.mean, summary.mean - summary.ci95, summary.mean + summary.ci95, summary.n
        )

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or below 0 (False when undefined)."""
        return bool(self.low > 0 or self.high < 0)


@dataclass
class PolicyResult:
    """One policy on one scenario."""

    policy: str
    role: str
    seeds: list[int]
    per_seed: np.ndarray
    returns: Estimate
    normalised: float
    metrics: dict[str, float]
    difference: Estimate | None = None
    latency_cdf: np.ndarray | None = None
    curves: list[np.ndarray] = field(default_factory=list)


@dataclass
class ScenarioResult:
    """Every policy on one scenario, its reference and its normalisation."""

    name: str
    policies: dict[str, PolicyResult]
    best_baseline: str | None
    reference: str | None
    low: float
    high: float
    low_from: str
    high_from: str

    def scores(self, policy: str) -> np.ndarray:
        """The policy's normalised per-seed scores."""
        return normalise(self.policies[policy].per_seed, self.low, self.high)

    @property
    def normalisable(self) -> bool:
        return self.high > self.low


@dataclass
class Aggregate:
    """One policy across scenarios: IQM of its normalised scores, P(policy > reference)."""

    policy: str
    scenarios: int
    samples: int
    iqm: Estimate
    improvement: Estimate | None
    profile: np.ndarray
    profile_low: np.ndarray
    profile_high: np.ndarray


@dataclass
class Analysis:
    """Every number of a benchmark report."""

    scenarios: dict[str, ScenarioResult]
    policies: list[str]
    roles: dict[str, str]
    reference: str
    aggregates: list[Aggregate]
    taus: np.ndarray
    episodes: int
    notes: list[str]


def analyse(episodes: list[dict[str, Any]], reference: str | None = None) -> Analysis:
    """The per-scenario and across-scenario statistics of episode records.

    ``reference`` is a policy name, or ``None`` for each scenario's best baseline (the
    deployable baseline of highest mean return: ``mtenv.agents.policies.BASELINES``, the oracle
    and trained policies excluded). Raises ``ValueError`` for a reference found nowhere."""
    from mtenv.agents.policies import BASELINES, POLICIES

    notes: list[str] = []
    cells: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = {}
    hashes: dict[str, set[str]] = {}
    for r in episodes:
        cells.setdefault(r["scenario"], {}).setdefault(r["policy"], {}).setdefault(
            int(r["seed"]), []
        ).append(r)
        if r.get("scenario_hash"):
            hashes.setdefault(r["scenario"], set()).add(r["scenario_hash"])
    for name, found in sorted(hashes.items()):
        if len(found) > 1:
            notes.append(f"{name}: results from {len(found)} versions of the scenario are mixed")
    names = {p for per in cells.values() for p in per}
    if reference is not None and reference not in names:
        raise ValueError(
            f"reference policy {reference!r} is not in the results "
            f"(policies: {', '.join(sorted(names)) or 'none'})"
        )

    roles = {}
    for p in names:
        trained = any(
            r.get("train") for per in cells.values() for rs in per.get(p, {}).values() for r in rs
        )
        clairvoyant = p in POLICIES and POLICIES[p].clairvoyant
        roles[p] = (
            ORACLE_ROLE
            if clairvoyant
            else BASELINE
            if p in BASELINES
            else TRAINED
            if trained
            else OTHER
        )
    rank = {BASELINE: 0, OTHER: 1, TRAINED: 2, ORACLE_ROLE: 3}
    order = {p: i for i, p in enumerate(BASELINES)}
    policies = sorted(names, key=lambda p: (rank[roles[p]], order.get(p, 0), p))

    scenarios = {}
    for name in sorted(cells):
        result = _scenario(name, cells[name], policies, roles, reference)
        if result.reference is None:
            what = "no baseline" if reference is None else f"no {reference!r}"
            notes.append(f"{name}: {what} in the results, so no differences to a reference")
        if not result.normalisable:
            notes.append(
                f"{name}: normalisation undefined ({result.high_from} ≤ "
                f"{result.low_from}), left out of the across-scenario statistics"
            )
        scenarios[name] = result

    usable = [s for s in scenarios.values() if s.normalisable]
    rows = list(policies)
    if reference is None:
        rows.insert(sum(roles[p] in (BASELINE, OTHER) for p in policies), BEST_BASELINE)
    scores = {p: _pooled(usable, p) for p in rows}
    flat = np.concatenate([np.concatenate(v) for v in scores.values() if v] or [np.zeros(0)])
    taus = _tau_grid(flat)
    aggregates = []
    for p in rows:
        if not scores[p]:
            continue
        point, (low, high) = iqm(scores[p]), iqm_ci(scores[p])
        samples = sum(len(s) for s in scores[p])
        improvement = None
        if p != (reference or BEST_BASELINE):
            improvement = _improvement_over(list(scenarios.values()), p)
        profile_low, profile_high = profile_band(scores[p], taus)
        aggregates.append(
            Aggregate(
                p,
                len(scores[p]),
                samples,
                Estimate(point, low, high, samples),
                improvement,
                performance_profile(scores[p], taus),
                profile_low,
                profile_high,
            )
        )
    return Analysis(
        scenarios,
        policies,
        roles,
        reference or BEST_BASELINE,
        aggregates,
        taus,
        len(episodes),
        notes,
    )


def _scenario(
    name: str,
    cells: dict[str, dict[int, list[dict[str, Any]]]],
    policies: list[str],
    roles: dict[str, str],
    reference: str | None,
) -> ScenarioResult:
    results: dict[str, PolicyResult] = {}
    for p in policies:
        if p not in cells:
            continue
        seeds = sorted(cells[p])
        per_seed = np.array([np.mean([r["return"] for r in cells[p][k]]) for k in seeds])
        metrics = {
            m: float(np.mean([np.mean([_metric(r, m) for r in cells[p][k]]) for k in seeds]))
            for m in HEADLINE
        }
        cdfs = [r["latency_cdf_ms"] for k in seeds for r in cells[p][k] if r.get("latency_cdf_ms")]
        curves = []
        for k in seeds:
            curve = next(
                (
                    r["train"]["curve"]
                    for r in cells[p][k]
                    if r.get("train") and r["train"].get("curve")
                ),
                None,
            )
            if curve:
                curves.append(np.asarray(curve, dtype=float).reshape(-1, 2))
        results[p] = PolicyResult(
            p,
            roles[p],
            seeds,
            per_seed,
            Estimate.of(summarize(per_seed)),
            math.nan,
            metrics,
            latency_cdf=np.mean(np.asarray(cdfs, dtype=float), axis=0) if cdfs else None,
            curves=curves,
        )
    means = {p: r.returns.value for p, r in results.items()}
    baselines = [p for p in results if roles[p] == BASELINE]
    best = max(baselines, key=lambda p: means[p]) if baselines else None  # first of equals
    ref = best if reference is None else reference if reference in results else None
    low, high, low_from, high_from = normalisation_bounds(means)
    result = ScenarioResult(name, results, best, ref, low, high, low_from, high_from)
    for p, r in results.items():
        r.normalised = float(normalise(np.array([r.returns.value]), low, high)[0])
        if ref is not None and p != ref:
            r.difference = _paired(r, results[ref])
    return result


def _paired(x: PolicyResult, y: PolicyResult) -> Estimate:
    """``x − y`` paired on the seeds both have."""
    common = sorted(set(x.seeds) & set(y.seeds))
    xs = [x.per_seed[x.seeds.index(k)] for k in common]
    ys = [y.per_seed[y.seeds.index(k)] for k in common]
    return Estimate.of(paired_difference(xs, ys))


def _metric(record: dict[str, Any], name: str) -> float:
    value = (record.get("metrics") or {}).get(name)
    return math.nan if value is None else float(value)


def _pooled(scenarios: list[ScenarioResult], policy: str) -> list[np.ndarray]:
    """Per scenario where it ran, the policy's (or each scenario's best baseline's) normalised
    per-seed scores."""
    out = []
    for s in scenarios:
        name = s.best_baseline if policy == BEST_BASELINE else policy
        if name is not None and name in s.policies:
            out.append(s.scores(name))
    return out


def _improvement_over(scenarios: list[ScenarioResult], policy: str) -> Estimate | None:
    """P(policy > reference) over the scenarios that have both, with its bootstrap interval."""
    xs, ys = [], []
    for s in scenarios:
        name = s.best_baseline if policy == BEST_BASELINE else policy
        if s.reference is not None and name in s.policies:
            xs.append(s.policies[name].per_seed)
            ys.append(s.policies[s.reference].per_seed)
    if not xs:
        return None
    low, high = improvement_ci(xs, ys)
    return Estimate(probability_of_improvement(xs, ys), low, high, len(xs))


def _tau_grid(scores: np.ndarray, points: int = 101) -> np.ndarray:
    """Thresholds from min(0, lowest score) to max(1, highest), rounded outwards to 0.1."""
    finite = scores[np.isfinite(scores)]
    low = min(0.0, math.floor(10 * finite.min()) / 10) if finite.size else 0.0
    high = max(1.0, math.ceil(10 * finite.max()) / 10) if finite.size else 1.0
    return np.linspace(low, high, points)
