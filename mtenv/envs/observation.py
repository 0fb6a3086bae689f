"""The observation: one flat float32 vector per decision, written for the env, named for agents.

The vector is five blocks, in this order (``T`` task types, ``D`` devices, ``M`` models,
``P`` plans)::

    task      task.type=<t> (one-hot, T), task.priority, task.difficulty
    devices   per device: <d>.queue, <d>.wait, <d>.free_memory, <d>.resident=<m> (M),
              <d>.utilization
    actions   est:<plan>@<d> (P × D), the task's expected completion time under each action;
              load:<plan>@<d> (P × D), the weight loading it would wait for;
              cost:<plan>@<d> (P × D), its cost and energy penalty
    plans     accuracy:<plan> (P), the card's accuracy for this task's type and difficulty
    load      load.arrival_rate, load.slo_miss, episode.progress

Everything a catalog-based heuristic reads is there: a learner sees what least-loaded, INFaaS or
most-accurate decide by.

:class:`ObservationLayout` is that order, written once: it names every entry (the env's
``feature_names``) and knows where each quantity sits, so a policy reads ``layout.wait(obs)``
instead of hard-coding offsets. :class:`ObservationWriter` fills the vector for the env from the
simulator's state. What each entry means is documented on
:class:`~mtenv.envs.task_allocation.TaskAllocationEnv`.

:func:`serving_grid` and :func:`argbest` are the two helpers every catalog-based policy uses:
the mask as a ``[plan, device]`` grid, and the lexicographic choice with a deterministic
tie-break.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym

    from mtenv.core.simulator import Simulator
    from mtenv.core.tasks import Task
    from mtenv.envs.catalog import ActionCatalog

DEVICE_FEATURES = ("queue", "wait", "free_memory")
"""Each device's first entries; its resident models and utilisation follow."""
ACTION_BLOCKS = ("est", "load", "cost")
"""The per-(plan, device) blocks, in order."""
LOAD_FEATURES = ("load.arrival_rate", "load.slo_miss", "episode.progress")
_MISS_EWMA = 0.05  # weight of the newest settled task in the recent SLO-miss rate (~20 tasks)


@dataclass(frozen=True)
class ObservationLayout:
    """Where each named quantity sits in the observation vector.

    Build it with :meth:`build` from a scenario's names, or with :meth:`of` from an env. Every
    accessor takes one observation (as ``step`` returns it) and reads it; none keeps state.

    Attributes:
        names: every entry's name, in order (the env's ``feature_names``).
        type_at: ``[n_task_types]`` indices of the ``task.type=<name>`` one-hot.
        priority_at / difficulty_at: indices of ``task.priority`` and ``task.difficulty``.
        device_at: ``[n_devices, width]`` the block of each device: ``<dev>.queue``,
            ``<dev>.wait``, ``<dev>.free_memory``, one ``<dev>.resident=<model>`` per model,
            ``<dev>.utilization``.
        est_at: ``[n_plans, n_devices]`` indices of ``est:<plan>@<dev>``.
        load_cost_at / cost_at: the same for ``load:<plan>@<dev>`` and ``cost:<plan>@<dev>``.
        accuracy_at: ``[n_plans]`` indices of ``accuracy:<plan>``.
        load_at: index of ``load.arrival_rate``; ``load.slo_miss`` and ``episode.progress``
            follow it.
        n_levels: difficulty levels (the observation scales the level by ``n_levels - 1``).
    """

    names: tuple[str, ...]
    type_at: np.ndarray
    priority_at: int
    difficulty_at: int
    device_at: np.ndarray
    est_at: np.ndarray
    load_cost_at: np.ndarray
    cost_at: np.ndarray
    accuracy_at: np.ndarray
    load_at: int
    n_levels: int

    @classmethod
    def build(
        cls,
        task_types: Sequence[str],
        device_names: Sequence[str],
        model_names: Sequence[str],
        plan_names: Sequence[str],
        n_levels: int,
    ) -> ObservationLayout:
        """The layout of a scenario with these names (in the env's order)."""
        names = [f"task.type={t}" for t in task_types] + ["task.priority", "task.difficulty"]
        for dev in device_names:
            names += [f"{dev}.{feature}" for feature in DEVICE_FEATURES]
            names += [f"{dev}.resident={m}" for m in model_names]
            names.append(f"{dev}.utilization")
        for block in ACTION_BLOCKS:
            names += [f"{block}:{p}@{d}" for p in plan_names for d in device_names]
        names += [f"accuracy:{p}" for p in plan_names]
        names += LOAD_FEATURES
        n_types, n_devices, n_plans = len(task_types), len(device_names), len(plan_names)
        width = len(DEVICE_FEATURES) + len(model_names) + 1
        start = n_types + 2
        est_start = start + n_devices * width
        grid = n_plans * n_devices

        def action_block(k: int) -> np.ndarray:
            first = est_start + k * grid
            return np.arange(first, first + grid).reshape(n_plans, n_devices)

        plans_start = est_start + len(ACTION_BLOCKS) * grid
        return cls(
            names=tuple(names),
            type_at=np.arange(n_types),
            priority_at=n_types,
            difficulty_at=n_types + 1,
            device_at=np.arange(start, est_start).reshape(n_devices, width),
            est_at=action_block(0),
            load_cost_at=action_block(1),
            cost_at=action_block(2),
            accuracy_at=np.arange(plans_start, plans_start + n_plans),
            load_at=plans_start + n_plans,
            n_levels=n_levels,
        )

    @classmethod
    def of(cls, env: gym.Env) -> ObservationLayout:
        """The layout of ``env``'s observation, from the names in its ``catalog``; raises
        ``ValueError`` naming the first expected feature its ``feature_names`` lack."""
        base = env.unwrapped
        c = base.catalog
        layout = cls.build(c.task_types, c.device_names, c.model_names, c.plan_names, c.n_levels)
        if tuple(base.feature_names) != layout.names:
            present = set(base.feature_names)
            missing = [n for n in layout.names if n not in present] or [
                next(n for n, m in zip(layout.names, base.feature_names, strict=False) if n != m)
            ]
            raise ValueError(
                f"observation has no feature {missing[0]!r} where expected "
                f"(in env.unwrapped.feature_names)"
            )
        return layout

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def queue_at(self) -> np.ndarray:
        """``[n_devices]`` indices of ``<dev>.queue``."""
        return self.device_at[:, 0]

    @property
    def wait_at(self) -> np.ndarray:
        """``[n_devices]`` indices of ``<dev>.wait``."""
        return self.device_at[:, 1]

    @property
    def resident_at(self) -> np.ndarray:
        """``[n_devices, n_models]`` indices of ``<dev>.resident=<model>``."""
        return self.device_at[:, len(DEVICE_FEATURES) : -1]

    def task_type(self, obs: np.ndarray) -> int:
        """Index of the task's type (into the catalog's ``task_types``)."""
        return int(np.argmax(obs[self.type_at]))

    def difficulty_level(self, obs: np.ndarray) -> int:
        """The task's difficulty level, 0 (clean) to ``n_levels - 1``."""
        return round(float(obs[self.difficulty_at]) * (self.n_levels - 1))

    def priority(self, obs: np.ndarray) -> float:
        """The task's priority weight ÷ the scenario's largest."""
        return float(obs[self.priority_at])

    def wait(self, obs: np.ndarray) -> np.ndarray:
        """``[n_devices]`` expected wait before a new task could start ÷ the task's SLO."""
        return obs[self.wait_at]

    def queue(self, obs: np.ndarray) -> np.ndarray:
        """``[n_devices]`` queued tasks ÷ the device's max batch."""
        return obs[self.queue_at]

    def est(self, obs: np.ndarray) -> np.ndarray:
        """``[n_plans, n_devices]`` expected completion time of the task under each action
        ÷ its SLO (≤ 1 means on time; clipped at the observation's bound)."""
        return obs[self.est_at]

    def utilization(self, obs: np.ndarray) -> np.ndarray:
        """``[n_devices]`` recent busy fraction of each device."""
        return obs[self.device_at[:, -1]]

    def arrival_rate(self, obs: np.ndarray) -> float:
        """Recent arrivals per second ÷ the arrival process's mean rate."""
        return float(obs[self.load_at])

    def slo_miss(self, obs: np.ndarray) -> float:
        """Recent fraction of served tasks that finished late."""
        return float(obs[self.load_at + 1])

    def accuracy(self, obs: np.ndarray) -> np.ndarray:
        """``[n_plans]`` the card's accuracy of each plan for this task's type and difficulty
        (0 for plans that do not serve the type)."""
        return obs[self.accuracy_at]

    def cost(self, obs: np.ndarray) -> np.ndarray:
        """``[n_plans, n_devices]`` the cost and energy penalty of one task under each action
        ÷ the scenario's largest priority weight."""
        return obs[self.cost_at]

    def resident(self, obs: np.ndarray) -> np.ndarray:
        """``[n_devices, n_models]`` bool: the model's weights are on the device."""
        return obs[self.resident_at] > 0.5


class ObservationWriter:
    """Writes the observation of the task being decided, from the simulator's state, into one
    reusable buffer (the returned vector is a fresh float32 copy, clipped at ``clip``).

    Besides the simulator's state it keeps three running statistics: each device's utilisation
    and the arrival rate, exponentially averaged over the scenario's ``ewma_tau_s``, and the
    recent fraction of late completions (each settled task weighs 5 %).

    The two time averages are bias-corrected: each is divided by the weight its window has
    gathered since the episode began, so an episode shorter than ``ewma_tau_s`` (every shipped
    one is) sees the utilisation and arrival rate of the episode so far, not a value still pinned
    to its starting point. Over episodes much longer than ``ewma_tau_s`` they converge to the
    plain exponential averages.
    """

    def __init__(self, sim: Simulator, layout: ObservationLayout, catalog: ActionCatalog):
        scenario = sim.scenario
        self.sim, self.layout = sim, layout
        self.clip = float(scenario.observation.clip)
        self.tau = scenario.observation.ewma_tau_s
        entries = scenario.device_entries()
        self._inv_max_batch = 1.0 / np.array([e.max_batch for e in entries], dtype=float)
        self._max_priority = scenario.workload.max_priority
        self._mean_rate = sim.generator.arrivals.mean_rate
        self._type_onehot = np.eye(len(layout.type_at))
        # the card's accuracy per [task type, level, plan]; 0 where a plan does not serve the type
        self._accuracy = np.nan_to_num(catalog.accuracy, nan=0.0).transpose(1, 2, 0).copy()
        self._cost = catalog.penalty / self._max_priority
        self._busy_avg, self._busy_weight = np.zeros(len(entries)), 0.0
        self._views()

    def _views(self) -> None:
        """Views into one reusable buffer for each block (rebuilt after unpickling)."""
        layout = self.layout
        self._obs = np.zeros(layout.size)
        devices = layout.difficulty_at + 1  # where the device blocks start
        actions = devices + layout.device_at.size
        self._per_dev = self._obs[devices:actions].reshape(layout.device_at.shape)
        self._util = self._per_dev[:, -1]
        grid = layout.est_at.size
        blocks = self._obs[actions : actions + len(ACTION_BLOCKS) * grid]
        self._est, self._load, cost = blocks.reshape(len(ACTION_BLOCKS), *layout.est_at.shape)
        cost[:] = self._cost
        self._types = slice(int(layout.type_at[0]), int(layout.type_at[-1]) + 1)
        self._accuracies = slice(int(layout.accuracy_at[0]), int(layout.accuracy_at[-1]) + 1)
        n_devices = len(self._inv_max_batch)
        self._busy = np.zeros(n_devices)
        self._wait = np.zeros(n_devices)
        self._seen_residency = -1

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling copies numpy views apart; rebuild them over a fresh buffer (``write`` fills
        # every other block again).
        self.__dict__.update(state)
        self._views()
        self._write_utilization()

    def _write_utilization(self) -> None:
        """The bias-corrected utilisation: the running average ÷ the weight gathered so far."""
        if self._busy_weight > 0:
            np.multiply(self._busy_avg, 1.0 / self._busy_weight, out=self._util)
        else:
            self._util[:] = 0.0

    def reset(self, task: Task) -> None:
        """A new episode, whose first task is ``task``."""
        n_devices = len(self._inv_max_batch)
        self._last_time = 0.0
        self._last_busy = np.zeros(n_devices)
        self._busy_avg = np.zeros(n_devices)
        self._busy_weight = 0.0
        self._write_utilization()
        self._seen_residency = -1
        # One arrival at the process's mean rate stands for the time before the episode.
        self._arrivals_avg = 1.0
        self._elapsed_avg = 1.0 / self._mean_rate if self._mean_rate > 0 else math.inf
        self._last_arrival = task.arrival
        self._miss = 0.0

    def arrived(self, task: Task) -> None:
        """The arrival rate as decayed arrivals ÷ decayed elapsed time (both over τ)."""
        dt = task.arrival - self._last_arrival
        decay = math.exp(-dt / self.tau)
        self._arrivals_avg = self._arrivals_avg * decay + 1.0
        self._elapsed_avg = self._elapsed_avg * decay + self.tau * (1.0 - decay)
        self._last_arrival = task.arrival

    def settled(self, task: Task, late: bool) -> None:
        """A served task finished (``late``: after its deadline)."""
        self._miss += _MISS_EWMA * late - _MISS_EWMA * self._miss

    def write(self, task: Task) -> np.ndarray:
        """The observation of ``task``, the one being decided.

        Written in place with few numpy calls, each on a whole block: per-call overhead, not
        arithmetic, is what a small observation costs."""
        sim, obs, layout = self.sim, self._obs, self.layout
        inv_slo = 1.0 / max(task.deadline - task.arrival, 1e-9)
        obs[self._types] = self._type_onehot[task.type]
        obs[layout.priority_at] = task.priority / self._max_priority
        obs[layout.difficulty_at] = task.difficulty / max(layout.n_levels - 1, 1)

        now = sim.now
        dt = now - self._last_time
        if dt > 0:
            busy, last = sim.busy_time(out=self._busy), self._last_busy
            decay = math.exp(-dt / self.tau)
            self._busy_avg *= decay
            np.subtract(busy, last, out=last)
            last *= (1.0 - decay) / dt
            self._busy_avg += last
            self._busy_weight = self._busy_weight * decay + (1.0 - decay)
            self._last_time, self._busy, self._last_busy = now, last, busy
            self._write_utilization()
        per_dev = self._per_dev
        if self._seen_residency != sim.residency_version:
            self._seen_residency = sim.residency_version
            per_dev[:, 2] = sim.free_memory()
            per_dev[:, 3:-1] = sim.resident
            self._missing_load = sim.missing_load_s()
            self._est_base = self._missing_load + sim.plan_alpha + sim.plan_beta
        wait = sim.expected_wait(out=self._wait)
        np.multiply(sim.queue_len, self._inv_max_batch, out=per_dev[:, 0])
        np.multiply(wait, inv_slo, out=per_dev[:, 1])
        np.add(self._est_base, wait, out=self._est)
        self._est *= inv_slo
        np.multiply(self._missing_load, inv_slo, out=self._load)
        obs[self._accuracies] = self._accuracy[task.type, task.difficulty]
        g = layout.load_at
        obs[g] = (
            self._arrivals_avg / (self._elapsed_avg * self._mean_rate)
            if self._mean_rate > 0
            else 0.0
        )
        obs[g + 1] = self._miss
        obs[g + 2] = sim.arrived / sim.episode_tasks
        return np.minimum(obs, self.clip, dtype=np.float32)


def serving_grid(mask: np.ndarray, n_plans: int, n_devices: int) -> np.ndarray:
    """The serving part of an action mask as a ``[n_plans, n_devices]`` bool grid (action
    ``p · n_devices + d`` is cell ``[p, d]``)."""
    return np.asarray(mask[: n_plans * n_devices], dtype=bool).reshape(n_plans, n_devices)


def argbest(candidates: np.ndarray, *keys: np.ndarray) -> int:
    """The flat index (the action) of the candidate cell with the lexicographically smallest
    ``keys`` (each broadcast to the grid's shape; the first key decides first), ties going to
    the lowest index; ``-1`` when there is no candidate."""
    flat = np.flatnonzero(candidates)
    if flat.size == 0:
        return -1
    columns = [np.broadcast_to(k, candidates.shape).ravel()[flat] for k in keys]
    order = np.lexsort([flat, *reversed(columns)])
    return int(flat[order[0]])
