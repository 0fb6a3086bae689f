"""The interface of every arrival process (:class:`ArrivalProcess`: seeding, buffering and
exhaustion) and what the processes share: the block size, parameter validation, and the
vectorised building blocks (strictly increasing times, inverting a piecewise-linear cumulative
intensity).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

import numpy as np

BLOCK = 1024
"""Number of arrival times generated per vectorised block (some processes use fewer)."""

INF = math.inf


# --------------------------------------------------------------------------------------------
# validation helpers


def number(name: str, value: object) -> float:
    """``value`` as a float, or ``ValueError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must be a number, got NaN")
    return out


def positive(name: str, value: object, *, allow_inf: bool = False) -> float:
    """A number > 0 (finite unless ``allow_inf``)."""
    out = number(name, value)
    if not out > 0 or (math.isinf(out) and not allow_inf):
        what = "> 0" if allow_inf else "finite and > 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def non_negative(name: str, value: object) -> float:
    """A finite number >= 0."""
    out = number(name, value)
    if not (out >= 0 and math.isfinite(out)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return out


# --------------------------------------------------------------------------------------------
# vectorised building blocks


def strictly_after(t: np.ndarray, prev: float) -> np.ndarray:
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
            x = math.nextafter(last, INF)
            out[i] = x
        last = x
    return np.asarray(out, dtype=np.float64)


def invert_cumulative(
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
    t[~positive] = INF
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

        Draws one 64-bit seed from ``rng`` for the process's own generator (see
        :mod:`mtenv.core.arrivals`), so equal generator states give identical arrival sequences.
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
            buf = [INF] * BLOCK
        else:
            block = self._generate(rng)
            buf = block.tolist()
            self._exhausted = buf[-1] == INF
        self._buf = buf
        return buf

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._PARAMS)
        return f"{type(self).__name__}({args})"
