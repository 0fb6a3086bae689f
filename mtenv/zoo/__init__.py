"""mtenv's model zoos: real models, the data they serve and their profiles.

A zoo is a plug-in (:mod:`mtenv.zoo.registry`: :class:`Zoo`, :func:`register_zoo`, the
``mtenv.zoos`` entry-point group); ``digits`` is built in (:mod:`mtenv.zoo.digits`) and the
modules below are its parts:

* :mod:`mtenv.zoo.data`: the bundled 8×8 digits, the fixed split, corruption levels, the
  16×16 localize canvases and the input pools tasks draw from.
* :mod:`mtenv.zoo.task_types`: the task types (``classify``, ``localize``), their class counts and
  :func:`pool_for`.
* :mod:`mtenv.zoo.models`: the architectures (classifiers, distilled students, localizers, the
  shared-trunk :class:`MultiTaskNet`) and their measured :class:`ModelStats`.
* :mod:`mtenv.zoo.store`: safetensors weights (``load_model``).
* :mod:`mtenv.zoo.train`: the recipes, the distillation losses and the deterministic trainer
  (``train_zoo``).
* :mod:`mtenv.zoo.card`: the generated model card (``evaluate_zoo``, ``write_card``).

``mtenv.zoo.N_CLASSES`` is the per-task-type mapping ``{"classify": 10, "localize": 9}``;
``mtenv.zoo.data.N_CLASSES`` stays the number of digits (10).
"""

from __future__ import annotations

from mtenv.zoo.card import CardSection, evaluate_zoo, write_card
from mtenv.zoo.data import (
    N_LEVELS,
    Pool,
    localize_serving_pool,
    localize_validation_pool,
    serving_pool,
    to_canvas,
    validation_pool,
)
from mtenv.zoo.errors import ZooError
from mtenv.zoo.models import (
    MODEL_NAMES,
    ModelStats,
    MultiTaskNet,
    build_model,
    measure_stats,
    model_stats,
    task_logits,
)
from mtenv.zoo.registry import (
    DEFAULT_ZOO,
    ENTRY_POINT_GROUP,
    TaskType,
    Zoo,
    ZooModel,
    get_zoo,
    register_zoo,
    unregister_zoo,
    zoo_names,
    zoo_source,
)
from mtenv.zoo.store import load_model, load_weights, save_weights, weights_path
from mtenv.zoo.task_types import INPUT_SHAPES, N_CLASSES, TASK_TYPES, pool_for
from mtenv.zoo.train import RECIPES, TrainRecipe, train_model, train_zoo

__all__ = [
    "DEFAULT_ZOO",
    "ENTRY_POINT_GROUP",
    "INPUT_SHAPES",
    "MODEL_NAMES",
    "N_CLASSES",
    "N_LEVELS",
    "RECIPES",
    "TASK_TYPES",
    "CardSection",
    "ModelStats",
    "MultiTaskNet",
    "Pool",
    "TaskType",
    "TrainRecipe",
    "Zoo",
    "ZooError",
    "ZooModel",
    "build_model",
    "evaluate_zoo",
    "get_zoo",
    "load_model",
    "load_weights",
    "localize_serving_pool",
    "localize_validation_pool",
    "measure_stats",
    "model_stats",
    "pool_for",
    "register_zoo",
    "save_weights",
    "serving_pool",
    "task_logits",
    "to_canvas",
    "train_model",
    "train_zoo",
    "unregister_zoo",
    "validation_pool",
    "weights_path",
    "write_card",
    "zoo_names",
    "zoo_source",
]
