"""Stationary arrival processes: Poisson, Gamma renewal, and the on/off Markov-modulated Poisson
process (MMPP), whose long-run rate does not change over time.
"""

from __future__ import annotations

import math

import numpy as np

from mtenv.core.arrivals.base import (
    BLOCK,
    ArrivalProcess,
    invert_cumulative,
    non_negative,
    positive,
    strictly_after,
)
from mtenv.core.limits import MIN_ARRIVALS_PER_CYCLE

# --------------------------------------------------------------------------------------------
# renewal processes


class _RenewalArrivals(ArrivalProcess):
    """Arrivals separated by independent, identically distributed gaps of mean ``1/rate``
    (drawn a block at a time by :meth:`_gaps`), the first one gap after time 0."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = positive("rate", rate)
        self._t = 0.0

    @property
    def mean_rate(self) -> float:
        return self.rate

    def _restart(self, rng: np.random.Generator) -> None:
        self._t = 0.0

    def _gaps(self, rng: np.random.Generator) -> np.ndarray:
        """The next ``BLOCK`` gaps (s)."""
        raise NotImplementedError

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        t = strictly_after(self._t + np.cumsum(self._gaps(rng)), self._t)
        self._t = float(t[-1])
        return t


class PoissonArrivals(_RenewalArrivals):
    """Homogeneous Poisson arrivals: independent exponential gaps with mean ``1/rate``.

    The memoryless baseline of queueing theory (M/·/· queues): counts in any window of length
    ``w`` are Poisson(``rate·w``), so their variance equals their mean.

    Args:
        rate: arrivals per second, finite and > 0.
    """

    _PARAMS = ("rate",)

    def _gaps(self, rng: np.random.Generator) -> np.ndarray:
        return rng.exponential(1.0 / self.rate, BLOCK)


class GammaArrivals(_RenewalArrivals):
    """Renewal process with Gamma gaps of mean ``1/rate`` and coefficient of variation ``cv``.

    Gap ``X ~ Gamma(k, θ)`` with shape ``k = 1/cv²`` and scale ``θ = cv²/rate``, so
    ``E[X] = kθ = 1/rate`` and ``sd(X)/E[X] = 1/√k = cv``. ``cv = 1`` is the Poisson process,
    ``cv > 1`` is bursty (many short gaps, a few long ones), ``cv < 1`` is smoother than Poisson.
    This is the arrival model of Clockwork and AlpaServe. Over a long window ``T`` the count has
    mean ``≈ rate·T`` and variance ``≈ cv²·rate·T``.

    The process is an ordinary renewal process started by an (uncounted) arrival at time 0, so
    the first arrival comes after one full gap.

    Args:
        rate: arrivals per second, finite and > 0.
        cv: coefficient of variation of the gaps, finite and > 0.
    """

    _PARAMS = ("rate", "cv")

    def __init__(self, rate: float, cv: float) -> None:
        super().__init__(rate)
        self.cv = positive("cv", cv)
        self.shape = 1.0 / self.cv**2
        self.scale = self.cv**2 / self.rate

    def _gaps(self, rng: np.random.Generator) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, BLOCK)


# --------------------------------------------------------------------------------------------
# piecewise-constant intensity (sampled exactly by time change)


class OnOffArrivals(ArrivalProcess):
    """Two-state Markov-modulated Poisson process (MMPP): bursts (ON) and lulls (OFF).

    A hidden state alternates between ON and OFF with exponential sojourns of means
    ``mean_on_s`` and ``mean_off_s``; while in a state, tasks arrive as a Poisson process at that
    state's rate (``rate_off`` may be 0: silence between bursts). The start state is drawn from the
    stationary distribution ``P(ON) = mean_on/(mean_on + mean_off)``; by memorylessness the
    remaining sojourn is again exponential, so the process is stationary from time 0 and

        mean_rate = (rate_on·mean_on + rate_off·mean_off) / (mean_on + mean_off).

    Counts are overdispersed: with switching rates ``r_on = 1/mean_on``, ``r_off = 1/mean_off``
    and stationary probabilities ``π_on, π_off``, the index of dispersion of counts in a window
    of length ``w`` is

        I(w) = 1 + 2(rate_on − rate_off)²·π_on·π_off / ((r_on + r_off)·mean_rate)
                 · (1 − (1 − e^{−(r_on+r_off)w}) / ((r_on + r_off)w)),

    which is > 1 whenever the rates differ (Fischer & Meier-Hellstern, "The MMPP cookbook").

    Sampling is exact and vectorised: the state path gives a piecewise-constant intensity whose
    cumulative Λ is inverted on a block of unit-rate Poisson times (time-change theorem, see
    ``invert_cumulative``); a zero-rate OFF sojourn simply maps no arrivals. The cost is linear
    in the number of state switches, so sojourns far shorter than the gaps between arrivals (where
    the MMPP is indistinguishable from Poisson anyway) are slow to simulate: fewer than
    :data:`~mtenv.core.limits.MIN_ARRIVALS_PER_CYCLE` expected arrivals per cycle is refused.

    Args:
        rate_on: arrivals per second while ON, finite and >= 0.
        rate_off: arrivals per second while OFF, finite and >= 0 (not both 0).
        mean_on_s: mean ON sojourn (s), finite and > 0.
        mean_off_s: mean OFF sojourn (s), finite and > 0.
    """

    _PARAMS = ("rate_on", "rate_off", "mean_on_s", "mean_off_s")
    _MAX_SEGMENTS = 1 << 16
    """Bound on state segments drawn per chunk (limits memory when switching is very fast)."""

    def __init__(
        self, rate_on: float, rate_off: float, mean_on_s: float, mean_off_s: float
    ) -> None:
        super().__init__()
        self.rate_on = non_negative("rate_on", rate_on)
        self.rate_off = non_negative("rate_off", rate_off)
        self.mean_on_s = positive("mean_on_s", mean_on_s)
        self.mean_off_s = positive("mean_off_s", mean_off_s)
        if self.rate_on == 0 and self.rate_off == 0:
            raise ValueError("rate_on and rate_off are both 0: at least one must be > 0")
        cycle = self.mean_on_s + self.mean_off_s
        self._p_on = self.mean_on_s / cycle
        # Expected Λ (expected arrivals) per ON+OFF cycle; sizes the blocks.
        per_cycle = self.rate_on * self.mean_on_s + self.rate_off * self.mean_off_s
        if not per_cycle >= MIN_ARRIVALS_PER_CYCLE:
            # Each switch costs a draw: the stream would take unbounded work per arrival.
            raise ValueError(
                "expected arrivals per on/off cycle (rate_on·mean_on_s + rate_off·mean_off_s) "
                f"must be >= {MIN_ARRIVALS_PER_CYCLE:g}, got {per_cycle:.3g}"
            )
        # Fewer arrivals per block when there are many state switches per arrival.
        self._block = int(max(16, min(BLOCK, per_cycle * self._MAX_SEGMENTS / 4)))
        self._cycles = int(min(self._MAX_SEGMENTS // 2, math.ceil(1.25 * self._block / per_cycle)))
        self._cycles = max(self._cycles, 4)
        self._restart_state(True)

    @property
    def mean_rate(self) -> float:
        return (self.rate_on * self.mean_on_s + self.rate_off * self.mean_off_s) / (
            self.mean_on_s + self.mean_off_s
        )

    def _restart_state(self, on: bool) -> None:
        self._s = 0.0  # unit-rate clock
        self._t = 0.0  # last arrival time
        self._starts = np.zeros(0)
        self._cum = np.zeros(0)
        self._rates = np.zeros(0)
        self._end_t = 0.0  # end of the last drawn segment, and Λ there
        self._end_cum = 0.0
        self._next_on = on  # state of the next segment to draw

    def _restart(self, rng: np.random.Generator) -> None:
        self._restart_state(bool(rng.random() < self._p_on))

    def _extend(self, rng: np.random.Generator, target: float) -> None:
        """Draw state sojourns until Λ at the end of the drawn path exceeds ``target``."""
        if self._next_on:
            means = (self.mean_on_s, self.mean_off_s)
            rates = (self.rate_on, self.rate_off)
        else:
            means = (self.mean_off_s, self.mean_on_s)
            rates = (self.rate_off, self.rate_on)
        parts_t = [self._starts]
        parts_c = [self._cum]
        parts_r = [self._rates]
        while self._end_cum <= target:
            n = self._cycles
            dur = rng.standard_exponential(2 * n) * np.tile(means, n)
            rate = np.tile(rates, n)
            ct = np.cumsum(dur)
            cc = np.cumsum(dur * rate)
            parts_t.append(self._end_t + np.concatenate(([0.0], ct[:-1])))
            parts_c.append(self._end_cum + np.concatenate(([0.0], cc[:-1])))
            parts_r.append(rate)
            self._end_t += float(ct[-1])
            self._end_cum += float(cc[-1])
        # An even number of segments was drawn, so the next segment's state is unchanged.
        self._starts = np.concatenate(parts_t)
        self._cum = np.concatenate(parts_c)
        self._rates = np.concatenate(parts_r)

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        s = self._s + np.cumsum(rng.standard_exponential(self._block))
        self._s = float(s[-1])
        self._extend(rng, self._s)
        t = invert_cumulative(s, self._starts, self._cum, self._rates)
        # Later unit-rate times are larger: segments before the current one are done.
        k = int(np.searchsorted(self._cum, self._s, side="right")) - 1
        if k > 0:
            self._starts = self._starts[k:]
            self._cum = self._cum[k:]
            self._rates = self._rates[k:]
        t = strictly_after(t, self._t)
        self._t = float(t[-1])
        return t
