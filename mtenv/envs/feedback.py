"""Per-task feedback: what became of the tasks settled during a step, as ``info["feedback"]``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from mtenv.core.tasks import Task, TaskStatus


class Feedback(Mapping[str, np.ndarray]):
    """The tasks settled during one step, one entry per task in each equal-length array.

    A read-only mapping (``feedback["reward"]``) of numpy arrays:

    * ``action`` (int64): the action that served the task; ``reject_action`` if it was rejected;
    * ``reward`` (float64): what the task earned (:class:`~mtenv.core.reward.TaskReward`); they sum
      to the step's reward;
    * ``correct`` (bool): completed with the right answer, on time or not;
    * ``on_time`` (bool): completed by its deadline;
    * ``task_type`` (int64) and ``difficulty`` (int64): the task's type index and level;
    * ``decision_step`` (int64): the step of the episode (0 for the first ``step`` after
      ``reset``) that decided the task. Tasks arrive in order and each step decides one, so a
      learner can move a task's reward back to the decision that earned it.

    The arrays are built on first access, so a caller that never reads them costs the step
    nothing. A mapping rather than a ``dict`` so that vector envs, which stack equal-shape info
    arrays across envs, keep one :class:`Feedback` per env instead.
    """

    KEYS = ("action", "reward", "correct", "on_time", "task_type", "difficulty", "decision_step")

    __slots__ = ("_arrays", "_source")

    def __init__(self, tasks: list[Task], rewards: list[float], n_devices: int, reject: int):
        """Feedback on ``tasks`` (settled this step), which earned ``rewards``."""
        self._source: tuple[list[Task], list[float], int, int] | None = (
            tasks,
            rewards,
            n_devices,
            reject,
        )
        self._arrays: dict[str, np.ndarray] | None = None

    def _built(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            assert self._source is not None
            tasks, rewards, n_devices, reject = self._source
            rejected = TaskStatus.REJECTED
            ints = np.array(
                [
                    (
                        reject if t.status is rejected else t.plan * n_devices + t.device,
                        t.type,
                        t.difficulty,
                        t.id,
                    )
                    for t in tasks
                ],
                dtype=np.int64,
            ).reshape(-1, 4)
            flags = np.array([(t.correct, t.on_time) for t in tasks], dtype=bool).reshape(-1, 2)
            arrays = {
                "action": ints[:, 0],
                "reward": np.array(rewards, dtype=np.float64),
                "correct": flags[:, 0],
                "on_time": flags[:, 1],
                "task_type": ints[:, 1],
                "difficulty": ints[:, 2],
                "decision_step": ints[:, 3],
            }
            for array in arrays.values():
                array.flags.writeable = False
            self._arrays, self._source = arrays, None
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    @property
    def n_tasks(self) -> int:
        """How many tasks were settled."""
        return len(self._source[0]) if self._source is not None else len(self["action"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Feedback):
            return NotImplemented
        return all(np.array_equal(self[k], other[k]) for k in self.KEYS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Feedback({', '.join(f'{k}={self[k]!r}' for k in self.KEYS)})"

    def __getstate__(self) -> dict[str, np.ndarray]:
        return self._built()

    def __setstate__(self, arrays: dict[str, np.ndarray]) -> None:
        self._source, self._arrays = None, arrays


NO_FEEDBACK = Feedback([], [], 1, 0)
"""The feedback of a step that settled no task (and of ``reset``)."""
NO_FEEDBACK._built()
