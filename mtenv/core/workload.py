"""The task generator: what arrives, when, and how hard (the problem distribution).

A :class:`TaskGenerator` owns the arrival process and draws each task's type, priority class,
difficulty and real input from the serving pool, all from the generator it is reset with. It
draws in blocks so that one task costs a few attribute reads, not a handful of numpy calls.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from mtenv.core.arrivals import (
    ArrivalProcess,
    DiurnalArrivals,
    GammaArrivals,
    OnOffArrivals,
    PoissonArrivals,
    SpikeArrivals,
    TraceArrivals,
)
from mtenv.core.schema import (
    DiurnalConfig,
    GammaConfig,
    OnOffConfig,
    PoissonConfig,
    Scenario,
    ScenarioError,
    SpikeConfig,
    TraceConfig,
    WorkloadConfig,
)
from mtenv.core.tasks import Task
from mtenv.core.traces import TraceError, load_counts_csv, load_timestamps_csv
from mtenv.zoo import Pool

_BLOCK = 1024


def make_arrivals(config: object, base_dir: Path | None = None) -> ArrivalProcess:
    """The arrival process a scenario's ``workload.arrivals`` block describes."""
    if isinstance(config, PoissonConfig):
        return PoissonArrivals(config.rate)
    if isinstance(config, GammaConfig):
        return GammaArrivals(config.rate, config.cv)
    if isinstance(config, OnOffConfig):
        return OnOffArrivals(config.rate_on, config.rate_off, config.mean_on_s, config.mean_off_s)
    if isinstance(config, DiurnalConfig):
        return DiurnalArrivals(config.mean_rate, config.amplitude, config.period_s, config.phase)
    if isinstance(config, SpikeConfig):
        return SpikeArrivals(config.base_rate, config.spike_rate, config.start_s, config.duration_s)
    if isinstance(config, TraceConfig):
        path = Path(config.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            stamps = _load_trace(path, config.format)
        except (TraceError, OSError) as exc:
            raise ScenarioError(f"workload.arrivals.path: {exc}") from None
        return TraceArrivals(stamps, rate_scale=config.rate_scale, loop=config.loop)
    raise TypeError(f"unknown arrival configuration {config!r}")


def _load_trace(path: Path, fmt: str) -> np.ndarray:
    """The arrival times of a trace file, read once per version of the file: validating a
    scenario reads its trace, and building the env right after reads it again."""
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is None or not info.st_size:
        return _read_trace(path, fmt)  # let the reader say what is wrong
    return _cached_trace(os.path.realpath(path), fmt, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached_trace(path: str, fmt: str, size: int, mtime_ns: int) -> np.ndarray:
    stamps = _read_trace(Path(path), fmt)
    stamps.flags.writeable = False
    return stamps


def _read_trace(path: Path, fmt: str) -> np.ndarray:
    load = load_counts_csv if fmt == "minute_counts" else load_timestamps_csv
    return load(path)


class TaskGenerator:
    """Draws the episode's tasks.

    Args:
        workload: the scenario's workload block.
        pools: the serving pool of each task type, where the tasks' inputs come from.
        arrivals: the arrival process (built by :func:`make_arrivals`).
        n_levels: the zoo's number of difficulty levels.
    """

    def __init__(
        self,
        workload: WorkloadConfig,
        pools: dict[str, Pool],
        arrivals: ArrivalProcess,
        n_levels: int,
    ):
        self.arrivals = arrivals
        self.task_types = list(workload.task_types)
        self.pools = [pools[t] for t in self.task_types]
        self.slo_s = np.array([t.slo_ms / 1e3 for t in workload.task_types.values()])
        self._type_p = _normalised([t.share for t in workload.task_types.values()])
        self._level_p = _normalised(workload.level_weights(n_levels))
        self.priority_weights = np.array([p.weight for p in workload.priorities])
        self._priority_p = _normalised([p.share for p in workload.priorities])
        # Python lists: per-task reads of numpy scalars would dominate next_task().
        self._labels: list[list[int]] = [pool.labels.tolist() for pool in self.pools]
        self._levels: list[list[int]] = [pool.levels.tolist() for pool in self.pools]
        self._per_level = [pool.n_per_level for pool in self.pools]
        self._priorities: list[float] = self.priority_weights.tolist()
        self._slo: list[float] = self.slo_s.tolist()
        self._time_scale = 1.0 / workload.load_scale
        self._rng = np.random.default_rng(0)
        self._cursor = _BLOCK
        self._next_id = 0

    def reset(self, rng: np.random.Generator) -> None:
        """Start a new episode drawing from ``rng``."""
        self._rng = rng
        self.arrivals.reset(rng)
        self._cursor = _BLOCK
        self._next_id = 0

    def next_task(self) -> Task:
        """The next task to arrive, with its arrival time."""
        if self._cursor == _BLOCK:
            self._refill()
        k = self._cursor
        self._cursor += 1
        arrival = self.arrivals.next_arrival() * self._time_scale
        t = self._types[k]
        input_id = self._inputs[k]
        pclass = self._classes[k]
        task = Task(
            id=self._next_id,
            type=t,
            input_id=input_id,
            label=self._labels[t][input_id],
            difficulty=self._levels[t][input_id],
            priority=self._priorities[pclass],
            priority_class=pclass,
            arrival=arrival,
            deadline=arrival + self._slo[t],
        )
        self._next_id += 1
        return task

    def _refill(self) -> None:
        rng = self._rng
        types = rng.choice(len(self._type_p), size=_BLOCK, p=self._type_p)
        levels = rng.choice(len(self._level_p), size=_BLOCK, p=self._level_p)
        per_level = np.asarray(self._per_level)[types]
        inputs = levels * per_level + (rng.random(_BLOCK) * per_level).astype(np.int64)
        self._types = types.tolist()
        self._inputs = inputs.tolist()
        self._classes = rng.choice(len(self._priority_p), size=_BLOCK, p=self._priority_p).tolist()
        self._cursor = 0


def _normalised(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def task_generator(scenario: Scenario, pools: dict[str, Pool], n_levels: int) -> TaskGenerator:
    """The generator for a scenario, resolving trace paths against the scenario's folder."""
    base = Path(scenario.source).parent if scenario.source else None
    arrivals = make_arrivals(scenario.workload.arrivals, base)
    return TaskGenerator(scenario.workload, pools, arrivals, n_levels)
