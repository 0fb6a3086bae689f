"""The state types the simulator, the reward function and the env share."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class TaskStatus(enum.IntEnum):
    """Where a task is in its life. Every arrived task ends COMPLETED, DROPPED or REJECTED."""

    PENDING = 0  # arrived, waiting for the allocator's decision
    QUEUED = 1  # in a device's queue
    RUNNING = 2  # in the batch a device is serving
    COMPLETED = 3  # served; ``answer`` and ``finished`` are set
    DROPPED = 4  # its deadline passed before its batch started (scenarios that drop)
    REJECTED = 5  # the allocator turned it away


@dataclass(slots=True, eq=False)
class Task:
    """One inference request and, once decided, what became of it.

    Attributes:
        id: position in the episode's arrival order.
        type: index into the scenario's task types.
        input_id: index of the real input in the zoo's serving pool.
        label: ground-truth class of that input.
        difficulty: corruption level of the input (0 = clean).
        priority: reward weight of the task's priority class.
        priority_class: index of that class.
        arrival: simulated arrival time, seconds.
        deadline: arrival plus the task type's SLO, seconds.
        plan / device: the action taken (-1 until dispatched).
        started / finished: when its batch started and finished.
        answer: the plan's predicted class; confidence: its probability.
        cost_usd / energy_j: this task's share of its batch's device cost and busy energy.
        stage / enqueued: the stage queue it waits in and since when.
        escalate: set when a cascade's first model was not confident enough; escalated: it
            then ran on the cascade's second model.
        member_answers: each ensemble member's answer (to learn online weights from).
        outputs / served: what :func:`mtenv.core.stages.prefetch` (a vector env's one forward
            pass per model across its simulators) computed before the task's batch started,
            which the batch then reads instead of running those models again. ``outputs``: an
            ensemble's member probabilities by model name; ``served``: the answer of any other
            plan, ``(plan, stage, answer, confidence, escalate)`` (``escalate`` ``None`` but at
            a cascade's first stage). ``None`` otherwise.
    """

    id: int
    type: int
    input_id: int
    label: int
    difficulty: int
    priority: float
    priority_class: int
    arrival: float
    deadline: float
    status: TaskStatus = TaskStatus.PENDING
    plan: int = -1
    device: int = -1
    started: float = math.nan
    finished: float = math.nan
    answer: int = -1
    confidence: float = math.nan
    cost_usd: float = 0.0
    energy_j: float = 0.0
    invalid_action: bool = False
    stage: int = -1
    enqueued: float = math.nan
    escalate: bool = False
    escalated: bool = False
    member_answers: tuple[int, ...] | None = None
    outputs: dict[str, np.ndarray] | None = None
    served: tuple[int, int, int, float, bool | None] | None = None

    @property
    def latency(self) -> float:
        """Seconds from arrival to completion (NaN until completed)."""
        return self.finished - self.arrival

    @property
    def on_time(self) -> bool:
        """Completed no later than its deadline."""
        return self.status is TaskStatus.COMPLETED and self.finished <= self.deadline

    @property
    def correct(self) -> bool:
        """Completed with the right answer (on time or not)."""
        return self.status is TaskStatus.COMPLETED and self.answer == self.label
