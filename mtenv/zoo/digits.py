"""The built-in ``digits`` zoo as a :class:`~mtenv.zoo.registry.Zoo`: the 8×8-digits models of
:mod:`mtenv.zoo.models` with their shipped weights, the ``classify`` and ``localize`` task types
and their pools (:mod:`mtenv.zoo.data`). Every scenario that names no zoo runs on it."""

from __future__ import annotations

from mtenv.zoo.data import N_LEVELS
from mtenv.zoo.models import _ZOO
from mtenv.zoo.registry import TaskType, Zoo, ZooModel
from mtenv.zoo.store import RETRAIN_HINT, weights_path
from mtenv.zoo.task_types import INPUT_SHAPES, N_CLASSES, TASK_TYPES, pool_for

_DESCRIPTIONS = {
    "classify": "which digit an 8×8 image shows",
    "localize": "which cell of a 3×3 grid over a 16×16 canvas holds the digit's centre",
}


def _first_line(build: object) -> str:
    return (getattr(build, "__doc__", None) or "").strip().split("\n")[0]


DIGITS = Zoo(
    name="digits",
    task_types=tuple(
        TaskType(t, N_CLASSES[t], INPUT_SHAPES[t], _DESCRIPTIONS[t]) for t in TASK_TYPES
    ),
    models=tuple(
        ZooModel(name, entry.build, entry.task_types, weights_path(name), _first_line(entry.build))
        for name, entry in _ZOO.items()
    ),
    pool=pool_for,
    n_levels=N_LEVELS,
    retrain=RETRAIN_HINT,
    description="digit classifiers, distilled students, localizers and a shared-trunk model "
    "on the 8×8 digits",
)
"""The built-in zoo."""
