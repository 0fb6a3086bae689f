"""The reward function object: what a finished task is worth to the allocator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mtenv.core.schema import RewardConfig
from mtenv.core.tasks import Task, TaskStatus


@dataclass(frozen=True)
class TaskReward:
    """Scores a task once its fate is known, with the scenario's weights.

    * completed: ``priority · correct_weight · [answer right] · (1 on time, else late_credit)``
      minus ``latency_per_s · latency`` minus ``slo_miss`` if late minus the task's share of
      device cost (``cost_per_usd``) and busy energy (``energy_per_j``);
    * dropped (deadline passed while queued): ``-(slo_miss + latency_per_s · waited)`` minus the
      cost it incurred (none: it never ran);
    * rejected: ``-reject · priority``; an invalid action also costs ``invalid_action``;
    * in every case, a task whose true class has a ``miss_penalty`` and that was not answered
      right (wrong, rejected or dropped) costs ``miss_penalty · priority`` more.

    Args:
        weights: the scenario's reward block.
        task_types: the task type names, in the order of :attr:`Task.type` indices (what
            ``miss_penalty`` is keyed by).
    """

    weights: RewardConfig
    task_types: Sequence[str] = ()
    _miss: dict[tuple[int, int], float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {name: t for t, name in enumerate(self.task_types)}
        miss = {
            (index[name], label): penalty
            for name, by_class in self.weights.miss_penalty.items()
            if name in index
            for label, penalty in by_class.items()
        }
        object.__setattr__(self, "_miss", miss)

    def __call__(self, task: Task) -> float:
        value = self._earned(task)
        if self._miss and task.answer != task.label:
            value -= self._miss.get((task.type, task.label), 0.0) * task.priority
        return value

    def _earned(self, task: Task) -> float:
        w = self.weights
        if task.status is TaskStatus.REJECTED:
            return -w.reject * task.priority - (w.invalid_action if task.invalid_action else 0.0)
        if task.status is TaskStatus.DROPPED:
            return -w.slo_miss - w.latency_per_s * (task.finished - task.arrival)
        on_time = task.finished <= task.deadline
        credit = 1.0 if on_time else w.late_credit
        value = task.priority * w.correct * credit if task.answer == task.label else 0.0
        value -= w.latency_per_s * (task.finished - task.arrival)
        value -= 0.0 if on_time else w.slo_miss
        return value - w.cost_per_usd * task.cost_usd - w.energy_per_j * task.energy_j
