"""Arrival processes: when the simulator's inference tasks arrive.

Every process is an :class:`ArrivalProcess`: ``reset(rng)`` restarts it at simulated time 0, and
each ``next_arrival()`` returns the absolute time (seconds) of the next task. ``mean_rate`` is the
long-run number of arrivals per second, used to normalise observation features.

Processes
---------
* :class:`PoissonArrivals`: homogeneous Poisson, exponential gaps of mean ``1/rate``.
* :class:`GammaArrivals`: renewal process with Gamma gaps of a chosen coefficient of variation
  (Clockwork / AlpaServe use this to dial burstiness: ``cv > 1`` is burstier than Poisson).
* :class:`OnOffArrivals`: two-state Markov-modulated Poisson process (MMPP), bursts and lulls.
* :class:`DiurnalArrivals`: non-homogeneous Poisson with a sinusoidal daily (or any) cycle.
* :class:`SpikeArrivals`: piecewise-constant rate, a spike (or a dip) of chosen length, or a step.
* :class:`TraceArrivals`: replay of recorded timestamps (see :mod:`mtenv.core.traces`),
  rate-scaled and
  optionally looped.

Determinism and speed
---------------------
``next_arrival`` is on the simulator's hot path (once per env step), so no process draws one random
number per call. Arrival times are generated in vectorised blocks of about :data:`BLOCK` with
numpy, kept as a Python list, and handed out one by one (a list index per call).

``reset(rng)`` draws exactly one 64-bit seed from ``rng`` and builds the process's own generator
from it. So the process depends only on the state of ``rng`` at ``reset`` (equal states give the
identical sequence of times), the caller's generator advances by one draw whatever the number of
arrivals consumed, and other consumers of ``rng`` cannot perturb the arrival stream mid-episode.

Times are strictly increasing for the random processes: a gap that rounds to zero in floating point
(a Gamma gap with a tiny shape, or a gap far below the resolution of a large absolute time) is
widened to one unit in the last place, so the simulator's event order is always total. A trace may
repeat a timestamp (its times are non-decreasing). A process that can have no further arrivals
(a non-looping trace that has run out, or a step down to rate 0) returns ``math.inf`` from then on.

Only numpy is used: the simulator knows nothing of Gymnasium, pygame or SB3.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ARRIVAL_PROCESSES",
    "BLOCK",
    "ArrivalProcess",
    "DiurnalArrivals",
    "GammaArrivals",
    "OnOffArrivals",
    "PoissonArrivals",
    "SpikeArrivals",
    "TraceArrivals",
]

BLOCK = 1024
"""Number of arrival times generated per vectorised block (some processes use fewer)."""

_INF = math.inf


# --------------------------------------------------------------------------------------------
# validation helpers


def _number(name: str, value: object) -> float:
    """``value`` as a float, or ``ValueError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must be a number, got NaN")
    return out


def _positive(name: str, value: object, *, allow_inf: bool = False) -> float:
    """A number > 0 (finite unless ``allow_inf``)."""
    out = _number(name, value)
    if not out > 0 or (math.isinf(out) and not allow_inf):
        what = "> 0" if allow_inf else "finite and > 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def _non_negative(name: str, value: object) -> float:
    """A finite number >= 0."""
    out = _number(name, value)
    if not (out >= 0 and math.isfinite(out)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return out


# --------------------------------------------------------------------------------------------
# vectorised building blocks


def _strictly_after(t: np.ndarray, prev: float) -> np.ndarray:
    """Make ``t`` (non-decreasing up to rounding) strictly increasing and strictly after ``prev``.

    Each time not above its predecessor is moved to the next representable float above it. This
    only moves times by ulps, where floating point has already merged two distinct arrivals. The
    common case (nothing to fix) is one vectorised comparison.
    """
    if t[0] > prev and bool(np.all(t[1:] > t[:-1])):
        return t
    out = t.tolist()
    last = prev
    for i, x in enumerate(out):
        if x <= last:
            x = math.nextafter(last, _INF)
            out[i] = x
        last = x
    return np.asarray(out, dtype=np.float64)


def _invert_cumulative(
    s: np.ndarray, starts: np.ndarray, cum: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Map unit-rate Poisson times ``s`` through the inverse of a piecewise-linear Λ.

    Time-change theorem: if ``s_1 < s_2 < ...`` are the arrival times of a unit-rate Poisson
    process and ``Λ(t) = ∫₀ᵗ λ(u) du`` is the cumulative intensity, then ``Λ⁻¹(s_i)`` are the
    arrival times of a Poisson process of intensity ``λ(t)``. For a piecewise-constant ``λ``
    (segment ``j`` starts at ``starts[j]`` with rate ``rates[j]`` and ``Λ(starts[j]) = cum[j]``)
    the inverse is ``t = starts[j] + (s - cum[j]) / rates[j]`` where ``j`` is the last segment
    with ``cum[j] <= s``. Zero-rate segments have zero width in Λ, so ``searchsorted(side="right")``
    skips them: that is the memorylessness argument "move to the switch time and redraw" done
    exactly for a whole block at once. The last segment is open-ended; if its rate is 0, times
    beyond it are ``inf`` (no further arrivals).
    """
    j = np.searchsorted(cum, s, side="right") - 1
    np.maximum(j, 0, out=j)
    rate = rates[j]
    positive = rate > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = starts[j] + (s - cum[j]) / np.where(positive, rate, 1.0)
    t[~positive] = _INF
    return t


# --------------------------------------------------------------------------------------------
# the interface


class ArrivalProcess(ABC):
    """A stream of task arrival times on the simulator's clock (seconds from the episode start).

    Subclasses implement :meth:`_restart` (set the state for time 0), :meth:`_generate` (the next
    block of absolute times, a non-empty float64 array continuing the stream) and
    :attr:`mean_rate`. The base class owns seeding, buffering and exhaustion.
    """

    _PARAMS: tuple[str, ...] = ()
    """Constructor parameters shown by ``repr``."""

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None
        self._buf: list[float] = []
        self._pos = 0
        self._exhausted = False

    # public API ---------------------------------------------------------------------------

    def reset(self, rng: np.random.Generator) -> None:
        """Restart the process at time 0, taking all randomness from ``rng``.

        Draws one 64-bit seed from ``rng`` for the process's own generator (see the module
        docstring), so equal generator states give identical arrival sequences.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        seed = int(rng.integers(0, 2**63, dtype=np.int64))
        own = np.random.default_rng(seed)
        self._rng = own
        self._buf = []
        self._pos = 0
        self._exhausted = False
        self._restart(own)

    def next_arrival(self) -> float:
        """Absolute simulated time (s) of the next arrival; ``math.inf`` once there are none."""
        pos = self._pos
        buf = self._buf
        if pos >= len(buf):
            buf = self._refill()
            pos = 0
        self._pos = pos + 1
        return buf[pos]

    @property
    @abstractmethod
    def mean_rate(self) -> float:
        """Long-run arrivals per second (normalises observation features)."""

    # subclass hooks -------------------------------------------------------------------------

    @abstractmethod
    def _restart(self, rng: np.random.Generator) -> None:
        """Set the state for a fresh stream starting at time 0."""

    @abstractmethod
    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        """The next block of absolute arrival times (non-empty, continuing the stream)."""

    # internals ------------------------------------------------------------------------------

    def _refill(self) -> list[float]:
        rng = self._rng
        if rng is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(rng) before next_arrival()")
        if self._exhausted:
            buf = [_INF] * BLOCK
        else:
            block = self._generate(rng)
            buf = block.tolist()
            self._exhausted = buf[-1] == _INF
        self._buf = buf
        return buf

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._PARAMS)
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------------------------
# renewal processes


class PoissonArrivals(ArrivalProcess):
    """Homogeneous Poisson arrivals: independent exponential gaps with mean ``1/rate``.

    The memoryless baseline of queueing theory (M/·/· queues): counts in any window of length
    ``w`` are Poisson(``rate·w``), so their variance equals their mean.

    Args:
        rate: arrivals per second, finite and > 0.
    """

    _PARAMS = ("rate",)

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = _positive("rate", rate)
        self._t = 0.0

    @property
    def mean_rate(self) -> float:
        return self.rate

    def _restart(self, rng: np.random.Generator) -> None:
        self._t = 0.0

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        t = self._t + np.cumsum(rng.exponential(1.0 / self.rate, BLOCK))
        t = _strictly_after(t, self._t)
        self._t = float(t[-1])
        return t


class GammaArrivals(ArrivalProcess):
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
        super().__init__()
        self.rate = _positive("rate", rate)
        self.cv = _positive("cv", cv)
        self.shape = 1.0 / self.cv**2
        self.scale = self.cv**2 / self.rate
        self._t = 0.0

    @property
    def mean_rate(self) -> float:
        return self.rate

    def _restart(self, rng: np.random.Generator) -> None:
        self._t = 0.0

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        t = self._t + np.cumsum(rng.gamma(self.shape, self.scale, BLOCK))
        t = _strictly_after(t, self._t)
        self._t = float(t[-1])
        return t


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
    ``_invert_cumulative``); a zero-rate OFF sojourn simply maps no arrivals. The cost is linear
    in the number of state switches, so sojourns far shorter than the gaps between arrivals (where
    the MMPP is indistinguishable from Poisson anyway) are slow to simulate.

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
        self.rate_on = _non_negative("rate_on", rate_on)
        self.rate_off = _non_negative("rate_off", rate_off)
        self.mean_on_s = _positive("mean_on_s", mean_on_s)
        self.mean_off_s = _positive("mean_off_s", mean_off_s)
        if self.rate_on == 0 and self.rate_off == 0:
            raise ValueError("rate_on and rate_off are both 0: at least one must be > 0")
        cycle = self.mean_on_s + self.mean_off_s
        self._p_on = self.mean_on_s / cycle
        # Expected Λ (expected arrivals) per ON+OFF cycle; sizes the blocks.
        per_cycle = self.rate_on * self.mean_on_s + self.rate_off * self.mean_off_s
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
        t = _invert_cumulative(s, self._starts, self._cum, self._rates)
        # Later unit-rate times are larger: segments before the current one are done.
        k = int(np.searchsorted(self._cum, self._s, side="right")) - 1
        if k > 0:
            self._starts = self._starts[k:]
            self._cum = self._cum[k:]
            self._rates = self._rates[k:]
        t = _strictly_after(t, self._t)
        self._t = float(t[-1])
        return t


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
        self.base_rate = _positive("base_rate", base_rate)
        self.spike_rate = _non_negative("spike_rate", spike_rate)
        self.start_s = _non_negative("start_s", start_s)
        self.duration_s = _positive("duration_s", duration_s, allow_inf=True)
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
        t = _invert_cumulative(s, self._starts, self._cum, self._rates)
        t = _strictly_after(t, self._t)
        self._t = float(t[-1])
        return t


# --------------------------------------------------------------------------------------------
# smooth intensity (sampled by thinning)


class DiurnalArrivals(ArrivalProcess):
    """Non-homogeneous Poisson arrivals following a sinusoidal cycle (a day, or any period).

        λ(t) = mean_rate · (1 + amplitude · sin(2π (t/period_s + phase)))

    ``phase`` is a fraction of a period: ``phase = 0.25`` starts at the peak, ``0.75`` at the
    trough. Over whole periods the mean rate is ``mean_rate``; with ``amplitude = 1`` the trough
    is silent. Sampled exactly by thinning (Lewis & Shedler, 1979): candidates from a homogeneous
    Poisson process at ``λ_max = mean_rate·(1 + amplitude)``, each kept with probability
    ``λ(t)/λ_max``. The acceptance rate is ``1/(1 + amplitude) >= 1/2``, so a block of candidates
    costs at most twice its arrivals.

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
        self._mean_rate = _positive("mean_rate", mean_rate)
        self.amplitude = _non_negative("amplitude", amplitude)
        if self.amplitude > 1:
            raise ValueError(f"amplitude must be between 0 and 1, got {amplitude!r}")
        self.period_s = _positive("period_s", period_s)
        self.phase = _number("phase", phase)
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
            tc = self._tc + np.cumsum(rng.exponential(1.0 / self.rate_max, n))
            self._tc = float(tc[-1])
            u = rng.random(n)
            x = np.mod(tc / self.period_s + self.phase, 1.0)
            keep = u * (1.0 + a) < 1.0 + a * np.sin(2.0 * np.pi * x)
            t = tc[keep]
            if t.size:
                t = _strictly_after(t, self._t)
                self._t = float(t[-1])
                return t


# --------------------------------------------------------------------------------------------
# trace replay


class TraceArrivals(ArrivalProcess):
    """Replay of recorded arrival timestamps, optionally rate-scaled and looped.

    ``timestamps`` (seconds, non-decreasing, at least two, with a positive span) are shifted so
    the first is 0. Arrival ``i`` of copy ``c`` of the trace happens at

        (timestamps[i] + c · loop_period_s) / rate_scale,   loop_period_s = span + span/(n − 1),

    i.e. each repeat starts one mean inter-arrival gap after the previous copy's last arrival.
    ``rate_scale > 1`` compresses time, multiplying the rate. Without ``loop`` the stream ends
    after one copy and ``next_arrival`` returns ``inf``. Equal timestamps replay as simultaneous
    arrivals. Deterministic: ``reset`` draws its seed like every process but uses no randomness.

    ``mean_rate = n / loop_period_s · rate_scale = (n − 1)/span · rate_scale``: the exact
    long-run rate of the looped replay (the reciprocal of the mean gap, scaled).

    Load trace files with :func:`mtenv.core.traces.load_timestamps_csv` or
    :func:`mtenv.core.traces.load_counts_csv`.

    Args:
        timestamps: 1-D sequence of arrival times (s), finite and non-decreasing.
        rate_scale: time compression factor, finite and > 0.
        loop: repeat the trace forever (default) or end after one pass.
    """

    _PARAMS = ("rate_scale", "loop")

    def __init__(
        self, timestamps: Sequence[float] | np.ndarray, rate_scale: float = 1.0, loop: bool = True
    ) -> None:
        super().__init__()
        try:
            ts = np.array(timestamps, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"timestamps must be a 1-D array of numbers: {err}") from err
        if ts.ndim != 1:
            raise ValueError(f"timestamps must be 1-D, got shape {ts.shape}")
        if ts.size < 2:
            raise ValueError(f"timestamps must hold at least 2 times, got {ts.size}")
        if not np.all(np.isfinite(ts)):
            raise ValueError("timestamps must be finite (no NaN or inf)")
        if np.any(np.diff(ts) < 0):
            i = int(np.argmax(np.diff(ts) < 0)) + 1
            raise ValueError(
                f"timestamps must be sorted ascending: timestamps[{i}] = {ts[i]!r} comes after "
                f"{ts[i - 1]!r} (mtenv.core.traces loaders sort for you)"
            )
        ts -= ts[0]
        span = float(ts[-1])
        if not span > 0:
            raise ValueError("timestamps must span a positive time (all times are equal)")
        if not isinstance(loop, (bool, np.bool_)):
            raise ValueError(f"loop must be a bool, got {loop!r}")
        self.rate_scale = _positive("rate_scale", rate_scale)
        self.loop = bool(loop)
        ts.flags.writeable = False
        self.timestamps = ts
        self.span_s = span
        self.loop_period_s = span + span / (ts.size - 1)
        self._copy = 0
        self._next = 0

    @property
    def mean_rate(self) -> float:
        return self.timestamps.size / self.loop_period_s * self.rate_scale

    def _restart(self, rng: np.random.Generator) -> None:
        self._copy = 0
        self._next = 0

    def _generate(self, rng: np.random.Generator) -> np.ndarray:
        n = self.timestamps.size
        if self._next >= n:
            if not self.loop:
                return np.array([_INF])
            self._copy += 1
            self._next = 0
        chunk = self.timestamps[self._next : self._next + BLOCK]
        self._next += chunk.size
        return (chunk + self._copy * self.loop_period_s) / self.rate_scale

    def __repr__(self) -> str:
        return (
            f"TraceArrivals(<{self.timestamps.size} timestamps over {self.span_s:g} s>, "
            f"rate_scale={self.rate_scale!r}, loop={self.loop!r})"
        )


ARRIVAL_PROCESSES: dict[str, type[ArrivalProcess]] = {
    "poisson": PoissonArrivals,
    "gamma": GammaArrivals,
    "onoff": OnOffArrivals,
    "diurnal": DiurnalArrivals,
    "spike": SpikeArrivals,
    "trace": TraceArrivals,
}
"""Process classes by the short name a scenario file may use."""
