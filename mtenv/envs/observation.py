"""Reading the env's flat observation by feature name, for policies that reason about it.

:class:`ObservationLayout` finds each quantity a hand-written policy needs (the task's type,
difficulty and priority; each device's queue, expected wait and resident models; each action's
expected completion time) by its name in ``env.unwrapped.feature_names``, so a policy never
hard-codes offsets, and fails at construction, naming the feature, if one is missing.

:func:`serving_grid` and :func:`argbest` are the two helpers every catalog-based policy uses:
the mask as a ``[plan, device]`` grid, and the lexicographic choice with a deterministic
tie-break.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class ObservationLayout:
    """Where each named quantity sits in the observation vector.

    Build it with :meth:`of`. Every accessor takes one observation (as ``step`` returns it) and
    reads it; none keeps state.

    Attributes:
        type_at: ``[n_task_types]`` indices of the ``task.type=<name>`` one-hot.
        priority_at / difficulty_at: indices of ``task.priority`` and ``task.difficulty``.
        queue_at / wait_at: ``[n_devices]`` indices of ``<dev>.queue`` and ``<dev>.wait``.
        est_at: ``[n_plans, n_devices]`` indices of ``est:<plan>@<dev>``.
        resident_at: ``[n_devices, n_models]`` indices of ``<dev>.resident=<model>``.
        n_levels: difficulty levels (the observation scales the level by ``n_levels - 1``).
    """

    type_at: np.ndarray
    priority_at: int
    difficulty_at: int
    queue_at: np.ndarray
    wait_at: np.ndarray
    est_at: np.ndarray
    resident_at: np.ndarray
    n_levels: int

    @classmethod
    def of(cls, env: gym.Env) -> ObservationLayout:
        """The layout of ``env``'s observation, from its ``feature_names`` and the names in its
        ``catalog``; raises ``ValueError`` naming the first expected feature that is missing."""
        base = env.unwrapped
        catalog = base.catalog
        index = {name: i for i, name in enumerate(base.feature_names)}

        def at(names: list[str]) -> np.ndarray:
            missing = [n for n in names if n not in index]
            if missing:
                raise ValueError(
                    f"observation has no feature {missing[0]!r} "
                    f"(expected in env.unwrapped.feature_names)"
                )
            return np.array([index[n] for n in names], dtype=np.int64)

        devices, plans, models = catalog.device_names, catalog.plan_names, catalog.model_names
        return cls(
            type_at=at([f"task.type={t}" for t in catalog.task_types]),
            priority_at=int(at(["task.priority"])[0]),
            difficulty_at=int(at(["task.difficulty"])[0]),
            queue_at=at([f"{d}.queue" for d in devices]),
            wait_at=at([f"{d}.wait" for d in devices]),
            est_at=at([f"est:{p}@{d}" for p in plans for d in devices]).reshape(
                len(plans), len(devices)
            ),
            resident_at=at([f"{d}.resident={m}" for d in devices for m in models]).reshape(
                len(devices), len(models)
            ),
            n_levels=catalog.n_levels,
        )

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

    def resident(self, obs: np.ndarray) -> np.ndarray:
        """``[n_devices, n_models]`` bool: the model's weights are on the device."""
        return obs[self.resident_at] > 0.5


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
