"""The action catalog: static, public facts about every (plan, device) action of a scenario.

What a deployed allocator would know before serving a single request: from the model card,
how accurate each plan is on each task type at each difficulty level; from the price list and
the latency profiles, what one task costs in dollars and joules on each device. Policies read it
as ``env.unwrapped.catalog`` (an :class:`ActionCatalog`); nothing in it depends on the episode.

Accuracy is measured on the zoo's *validation* split (never the serving pool tasks are drawn
from), with the real models and the rules the simulator serves by: ensembles fuse their members'
real probabilities with their uniform or validation-fitted weights (an online ensemble with the
uniform weights it starts every episode from), cascades escalate where the first model's real
confidence is under the threshold (:func:`mtenv.core.plans.serve_pool`, as the zoo card
does). The numbers are computed once per process and plan.

This module imports neither torch nor the simulator at import time: the env imports it, and
``import mtenv`` must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mtenv.core.inference import InferenceEngine
    from mtenv.core.plans import Plan
    from mtenv.core.schema import RewardConfig
    from mtenv.core.simulator import Simulator


@dataclass(frozen=True)
class PlanQuality:
    """How one plan does on one task type's pool, per difficulty level.

    Attributes:
        accuracy: fraction answered right at each level, ``[n_levels]``.
        escalation_rate: fraction a cascade escalated at each level (0 for other plans).
    """

    accuracy: np.ndarray
    escalation_rate: np.ndarray


_QUALITY: dict[tuple[object, Plan, str, str, str], PlanQuality] = {}


def plan_quality(
    plan: Plan, task_type: str, engine: InferenceEngine, split: str = "validation"
) -> PlanQuality:
    """Accuracy and escalation rate of ``plan`` on ``task_type``'s ``split`` pool per level,
    served with ``engine``'s models exactly as the simulator serves one task at a time.
    Memoised per process (the weights and pools are fixed data of their zoo)."""
    key = (engine.zoo, plan, task_type, split, engine.device)
    quality = _QUALITY.get(key)
    if quality is None:
        from mtenv.core.plans import serve_pool

        pool = engine.zoo.pool_for(task_type, split)
        served = serve_pool(plan, engine, task_type, split)
        right, escalated = served.answer == pool.labels, served.escalated
        levels = [pool.levels == level for level in range(engine.zoo.n_levels)]
        quality = PlanQuality(
            accuracy=_frozen(np.array([right[at].mean() for at in levels])),
            escalation_rate=_frozen(np.array([escalated[at].mean() for at in levels])),
        )
        _QUALITY[key] = quality
    return quality


@dataclass(frozen=True, eq=False)
class ActionCatalog:
    """Static facts about a scenario's actions, indexed like the action space.

    Serving action ``a`` (``0 ≤ a < n_plans · n_devices``) is plan ``plan_of[a]`` on device
    ``device_of[a]``; the last action, ``reject_action``, rejects. Arrays are read-only.

    Attributes:
        plan_names / plan_kinds: per plan, its name and kind (``"single"``, ``"ensemble"``,
            ``"cascade"`` or ``"multitask"``).
        task_types / model_names / device_names: the scenario's, in the env's order.
        plan_models: ``[n_plans, n_models]`` bool, the models each plan may run.
        serves: ``[n_plans, n_task_types]`` bool, the task types each plan serves.
        fits: ``[n_plans, n_devices]`` bool, whether the plan's models fit in the device's memory.
        plan_of / device_of: ``[n_plans · n_devices]`` int64, the plan and device of each
            serving action.
        accuracy: ``[n_plans, n_task_types, n_levels]``, the plan's accuracy on the zoo's
            validation split per difficulty level; NaN where it does not serve the type.
        escalation_rate: same shape, the fraction of tasks a cascade sends on to its second
            model (0 for other plans, NaN where the plan does not serve the type).
        latency_s: ``[n_plans, n_devices]``, expected seconds of device time for one task alone
            in its batch, its models resident: the profiles' ``alpha + beta`` of every model the
            plan runs (a cascade's second model weighted by its expected escalation rate, a
            shared-trunk model's trunk plus the task type's head), averaged over the workload's
            mix of task types and difficulty levels.
        cost_usd / energy_j: ``[n_plans, n_devices]``, what that time costs, as the simulator
            charges it: the device's price per hour and busy power times ``latency_s``.
        penalty: ``[n_plans, n_devices]``, the reward the scenario takes off for that cost and
            energy (``cost_per_usd · cost_usd + energy_per_j · energy_j``).
    """

    plan_names: tuple[str, ...]
    plan_kinds: tuple[str, ...]
    task_types: tuple[str, ...]
    model_names: tuple[str, ...]
    device_names: tuple[str, ...]
    plan_models: np.ndarray
    serves: np.ndarray
    fits: np.ndarray
    plan_of: np.ndarray
    device_of: np.ndarray
    accuracy: np.ndarray
    escalation_rate: np.ndarray
    latency_s: np.ndarray
    cost_usd: np.ndarray
    energy_j: np.ndarray
    penalty: np.ndarray

    @property
    def n_plans(self) -> int:
        return len(self.plan_names)

    @property
    def n_devices(self) -> int:
        return len(self.device_names)

    @property
    def n_levels(self) -> int:
        return self.accuracy.shape[2]

    @property
    def reject_action(self) -> int:
        """The last action; also the number of serving actions."""
        return self.n_plans * self.n_devices

    def action(self, plan: int, device: int) -> int:
        """The action that serves with ``plan`` on ``device``."""
        return plan * self.n_devices + device


class _Probe:
    """A stand-in task for pricing a batch: the simulator's latency reads only its type."""

    __slots__ = ("type",)

    def __init__(self, task_type: int):
        self.type = task_type


def build_catalog(sim: Simulator, engine: InferenceEngine, reward: RewardConfig) -> ActionCatalog:
    """The catalog of ``sim``'s scenario, its accuracy measured with ``engine``'s models."""
    n_levels = engine.zoo.n_levels
    plans, task_types = sim.plans, list(sim.task_types)
    n_p, n_t, n_d = len(plans), len(task_types), len(sim.specs)
    accuracy = np.full((n_p, n_t, n_levels), np.nan)
    escalation = np.full((n_p, n_t, n_levels), np.nan)
    for p, plan in enumerate(plans):
        for t, name in enumerate(task_types):
            if sim.plan_serves[p, t]:
                quality = plan_quality(plan, name, engine)
                accuracy[p, t] = quality.accuracy
                escalation[p, t] = quality.escalation_rate

    mix = _workload_mix(sim, n_levels)  # [T, L], sums to one over the workload
    latency = np.zeros((n_p, n_d))
    for p in range(n_p):
        weights = mix * sim.plan_serves[p][:, None]
        weights = weights / weights.sum() if weights.sum() > 0 else weights
        first, second = sim.layout.first[p], sim.layout.escalation[p]
        for t in range(n_t):
            share = weights[t].sum()
            if share == 0:
                continue
            escalated = float(np.nansum(weights[t] * escalation[p, t])) / share
            for d in range(n_d):
                seconds = _batch_of_one(sim, first, d, t)
                if second >= 0:
                    seconds += escalated * _batch_of_one(sim, second, d, t)
                latency[p, d] += share * seconds
    price = np.array([s.price_per_hour for s in sim.specs]) / 3600.0
    watts = np.array([s.busy_watts for s in sim.specs])
    cost, energy = latency * price, latency * watts
    actions = np.arange(n_p * n_d)
    return ActionCatalog(
        plan_names=tuple(p.name for p in plans),
        plan_kinds=tuple(p.kind for p in plans),
        task_types=tuple(task_types),
        model_names=tuple(sim.models),
        device_names=tuple(sim.device_names),
        plan_models=_frozen(sim.plan_model_matrix.copy()),
        serves=_frozen(sim.plan_serves.copy()),
        fits=_frozen(sim.plan_fits.copy()),
        plan_of=_frozen(actions // n_d),
        device_of=_frozen(actions % n_d),
        accuracy=_frozen(accuracy),
        escalation_rate=_frozen(escalation),
        latency_s=_frozen(latency),
        cost_usd=_frozen(cost),
        energy_j=_frozen(energy),
        penalty=_frozen(reward.cost_per_usd * cost + reward.energy_per_j * energy),
    )


def _batch_of_one(sim: Simulator, stage: int, device: int, task_type: int) -> float:
    """Seconds the simulator charges for ``stage`` run on a batch of one task of the type."""
    return sim._batch_latency(stage, device, [_Probe(task_type)])  # type: ignore[list-item]


def _workload_mix(sim: Simulator, n_levels: int) -> np.ndarray:
    """``[n_task_types, n_levels]``: the share of arrivals of each type at each level."""
    workload = sim.scenario.workload
    shares = np.array([workload.task_types[t].share for t in sim.task_types], dtype=float)
    levels = np.array(workload.level_weights(n_levels))
    mix = np.outer(shares / shares.sum(), levels / levels.sum())
    return mix


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
