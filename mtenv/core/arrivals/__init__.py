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

The processes live in :mod:`~mtenv.core.arrivals.base` (the interface and what every process
shares), :mod:`~mtenv.core.arrivals.stationary` (Poisson, Gamma, on/off),
:mod:`~mtenv.core.arrivals.time_varying` (spike or step, diurnal) and
:mod:`~mtenv.core.arrivals.replay` (trace replay); all are importable from here.

Only numpy is used: the simulator knows nothing of Gymnasium, pygame or SB3.
"""

from __future__ import annotations

from mtenv.core.arrivals.base import BLOCK, ArrivalProcess
from mtenv.core.arrivals.replay import TraceArrivals
from mtenv.core.arrivals.stationary import GammaArrivals, OnOffArrivals, PoissonArrivals
from mtenv.core.arrivals.time_varying import DiurnalArrivals, SpikeArrivals

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

ARRIVAL_PROCESSES: dict[str, type[ArrivalProcess]] = {
    "poisson": PoissonArrivals,
    "gamma": GammaArrivals,
    "onoff": OnOffArrivals,
    "diurnal": DiurnalArrivals,
    "spike": SpikeArrivals,
    "trace": TraceArrivals,
}
"""Process classes by the short name a scenario file may use."""
