"""Plans: how one task is served by the zoo's models.

A plan names the models it runs and how their outputs become one answer. The action space pairs
every plan with every device, so a plan is the unit an allocator chooses between. A plan does not
know about time: its latency on a device comes from :mod:`mtenv.profiles`, summed over the members
it runs one after another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """One way of serving a task.

    Attributes:
        name: unique name within a scenario, shown in tables and the action labels.
        kind: ``"single"`` (one model answers).
        models: the zoo models this plan runs, in execution order.
        task_type: the task type the plan serves.
    """

    name: str
    kind: str
    models: tuple[str, ...]
    task_type: str = "classify"

    def fuse(self, member_probs: list[np.ndarray]) -> np.ndarray:
        """Combine the members' class probabilities ([B, C] each) into the plan's answer."""
        if self.kind == "single":
            return member_probs[0]
        raise ValueError(f"plan {self.name!r}: unknown kind {self.kind!r}")


def single(model: str, task_type: str = "classify") -> Plan:
    """The plan that serves a task with one model; named after the model."""
    return Plan(name=model, kind="single", models=(model,), task_type=task_type)
