"""Time-varying arrival processes: a spike (or dip, or step) of the rate in one window, and a
sinusoidal (diurnal) cycle.
"""

from __future__ import annotations

import math

import numpy as np

from mtenv.core.arrivals.base import (
    BLOCK,
    ArrivalProcess,
    invert_cumulative,
    non_negative,
    number,
    positive,
    strictly_after,
)

# --------------------------------------------------------------------------------------------
# piecewise-constant intensity (sampled exactly by time change)


class SpikeArrivals(ArrivalProcess):
    """Poisson arrivals at ``base_rate`` with a spike (or a dip) to ``spike_rate`` in one window.

    The rate is ``spike_rate`` on ``[start_s, start_s + duration_s)`` and ``base_rate``
    elsewhere; an infinite ``duration_s`` is a step that never returns (a step to 0 ends the
    stream: ``next_arrival`` returns ``inf`` after the last arrival before ``start_s``). The
    process is a Poisson process with piecewise-constant intensity, sampled exactly by inverting
    its piecewise-linear cumulative intensity on unit-rate Poisson times (time-change theorem):
    arrivals straddling a rate change are handled by memorylessness, no approximation.

    ``mean_rate`` is ``base_rate``: the long-run rate when the spike is finite, and the nominal
    load before the change for a step, so that observation features normalised by it show the
    spike or step as a departure from normal. (For a step, the long-run rate is ``spike_rate``.)

    Args:
        base_rate: arrivals per second outside the window, finite and > 0.
        spike_rate: arrivals per second inside the window, finite and >= 0 (0 is an outage).
        start_s: start of the window (s), finite and >= 0.
        duration_s: length of the window (s), > 0; ``math.inf`` for a step.
    """

    _PARAMS = ("base_rate", "spike_rate", "start_s", "duration_s")

    def __init__(
        self, base_rate: float, spike_rate: float, start_s: float, duration_s: float
    ) -> None:
        super().__init__()
        self.base_rate = positive("base_rate", base_rate)
        self.spike_rate = non_negative("spike_rate", spike_rate)
        self.start_s = non_negative("start_s", start_s)
        self.duration_s = positive("duration_s", duration_s, allow_inf=True)
        b, s, d = self.base_rate, self.spike_rate, self.duration_s
        starts = [0.0, self.start_s]
        cum = [0.0, b * self.start_s]
        rates = [b, s]
        if math.isfinite(d):
            starts.append(self.start_s + d)
            cum.append(b * self.start_s + s * d)
            rates.append(b)
        self._starts = np.array(starts)
        self._cum = np.array(cum)
        self._rates = np.array(rates)
        self._s = 0.0
        self._t = 0.0

    @property
    def mean_rate(self) -> float:
        return self.base_rate

    def intensity(self, t: float) -> float:
        """The arrival rate λ(t) at time ``t`` (s)."""
        end = self.start_s + self.duration_s
        return self.spike_rate if self.start_s <= t < end else self.base_rate

    def _restart(self, rng: np.random.Generator) -> None:
        self._s = 0.0
        self._t = 0.0

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        s = self._s + np.cumsum(rng.standard_exponential(BLOCK))
        self._s = float(s[-1])
        t = invert_cumulative(s, self._starts, self._cum, self._rates)
        t = strictly_after(t, self._t)
        self._t = float(t[-1])
        return t


# --------------------------------------------------------------------------------------------
# smooth intensity (sampled by thinning)

_PHASE_LIMIT = 2.0**52
"""Cycles after which a float64 time no longer resolves the phase: a diurnal stream ends there."""


class DiurnalArrivals(ArrivalProcess):
    """Non-homogeneous Poisson arrivals following a sinusoidal cycle (a day, or any period).

        λ(t) = mean_rate · (1 + amplitude · sin(2π (t/period_s + phase)))

    ``phase`` is a fraction of a period: ``phase = 0.25`` starts at the peak, ``0.75`` at the
    trough. Over whole periods the mean rate is ``mean_rate``; with ``amplitude = 1`` the trough
    is silent. Sampled exactly by thinning (Lewis & Shedler, 1979): candidates from a homogeneous
    Poisson process at ``λ_max = mean_rate·(1 + amplitude)``, each kept with probability
    ``λ(t)/λ_max``. The acceptance rate is ``1/(1 + amplitude) >= 1/2``, so a block of candidates
    costs at most twice its arrivals. The stream ends (``inf``) once simulated time reaches 2⁵²
    periods, where float64 no longer resolves the phase.

    Args:
        mean_rate: average arrivals per second, finite and > 0.
        amplitude: relative swing, 0 <= amplitude <= 1.
        period_s: length of one cycle (s), finite and > 0 (86 400 for a day).
        phase: offset of the cycle in periods, finite.
    """

    _PARAMS = ("mean_rate", "amplitude", "period_s", "phase")

    def __init__(
        self, mean_rate: float, amplitude: float, period_s: float, phase: float = 0.0
    ) -> None:
        super().__init__()
        self._mean_rate = positive("mean_rate", mean_rate)
        self.amplitude = non_negative("amplitude", amplitude)
        if self.amplitude > 1:
            raise ValueError(f"amplitude must be between 0 and 1, got {amplitude!r}")
        self.period_s = positive("period_s", period_s)
        self.phase = number("phase", phase)
        if not math.isfinite(self.phase):
            raise ValueError(f"phase must be finite, got {phase!r}")
        self.rate_max = self._mean_rate * (1.0 + self.amplitude)
        self._candidates = math.ceil(BLOCK * (1.0 + self.amplitude))
        self._tc = 0.0  # last candidate time
        self._t = 0.0  # last accepted time

    @property
    def mean_rate(self) -> float:
        return self._mean_rate

    def intensity(self, t: float) -> float:
        """The arrival rate λ(t) at time ``t`` (s)."""
        x = (t / self.period_s + self.phase) % 1.0
        return self._mean_rate * (1.0 + self.amplitude * math.sin(2.0 * math.pi * x))

    def _restart(self, rng: np.random.Generator) -> None:
        self._tc = 0.0
        self._t = 0.0

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        a = self.amplitude
        n = self._candidates
        while True:
            if not self._tc / self.period_s < _PHASE_LIMIT:
                # Past this time float64 no longer resolves the phase within a cycle (or time
                # overflowed): the cycle is meaningless, so the stream ends instead of spinning.
                return np.array([math.inf])
            tc = self._tc + np.cumsum(rng.exponential(1.0 / self.rate_max, n))
            self._tc = float(tc[-1])
            u = rng.random(n)
            x = np.mod(tc / self.period_s + self.phase, 1.0)
            keep = u * (1.0 + a) < 1.0 + a * np.sin(2.0 * np.pi * x)
            t = tc[keep]
            if t.size:
                t = strictly_after(t, self._t)
                self._t = float(t[-1])
                return t
