"""The task types the zoo serves: their names, class counts, input shapes and input pools.

* ``classify``: which digit an 8×8 image shows; 10 classes; inputs ``[1, 8, 8]``.
* ``localize``: which cell of a 3×3 grid over a 16×16 canvas holds the centre of the pasted
  digit; 9 classes; inputs ``[1, 16, 16]`` (see :func:`mtenv.zoo.data.localize_examples`).

The simulator finds a task's inputs with :func:`pool_for` and the number of classes of its
answers in :data:`N_CLASSES`; every model's :class:`~mtenv.zoo.models.ModelStats` lists the task
types it serves.
"""

from __future__ import annotations

from mtenv.messages import unknown_name
from mtenv.zoo.data import (
    CANVAS_SIZE,
    N_CELLS,
    N_DIGITS,
    Pool,
    localize_serving_pool,
    localize_validation_pool,
    serving_pool,
    validation_pool,
)
from mtenv.zoo.errors import ZooError

__all__ = ["INPUT_SHAPES", "N_CLASSES", "TASK_TYPES", "check_task_type", "pool_for"]

TASK_TYPES: tuple[str, ...] = ("classify", "localize")
"""Every task type, in a fixed order (the order of a multi-task model's heads)."""

N_CLASSES: dict[str, int] = {"classify": N_DIGITS, "localize": N_CELLS}
"""Number of classes (length of a model's probability vector) per task type. Read-only."""

INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "classify": (1, 8, 8),
    "localize": (1, CANVAS_SIZE, CANVAS_SIZE),
}
"""Shape ``(channels, height, width)`` of one input per task type. Read-only."""


def check_task_type(task_type: str) -> str:
    """Return ``task_type`` if the zoo knows it, else raise :class:`ZooError` suggesting one."""
    if task_type in TASK_TYPES:
        return task_type
    raise ZooError(unknown_name("task type", task_type, TASK_TYPES))


def pool_for(task_type: str, split: str = "serving") -> Pool:
    """The cached input :class:`Pool` of ``task_type`` on ``split`` (``serving`` by default).

    ``split`` is ``"serving"`` (what tasks are drawn from and the card is computed on) or
    ``"validation"`` (for tuning thresholds, weights or policies).
    """
    pools = {
        ("classify", "serving"): serving_pool,
        ("classify", "validation"): validation_pool,
        ("localize", "serving"): localize_serving_pool,
        ("localize", "validation"): localize_validation_pool,
    }
    key = (check_task_type(task_type), split)
    if key not in pools:
        raise ZooError(f"unknown pool split {split!r}: expected 'serving' or 'validation'")
    return pools[key]()
