"""Trace replay: :class:`TraceArrivals` replays recorded arrival timestamps, rate-scaled and
optionally looped (the files are read by :mod:`mtenv.core.traces`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtenv.core.arrivals.base import BLOCK, INF, ArrivalProcess, positive


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
        self.rate_scale = positive("rate_scale", rate_scale)
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
                return np.array([INF])
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
