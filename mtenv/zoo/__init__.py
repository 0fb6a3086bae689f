"""mtenv's model zoo: real digit classifiers of different capacity, their data and profiles.

* :mod:`mtenv.zoo.data`: the bundled 8×8 digits, the fixed split, corruption levels and the
  input pools tasks draw from.
* :mod:`mtenv.zoo.models`: the architectures and their measured :class:`ModelStats`.
* :mod:`mtenv.zoo.store`: safetensors weights (``load_model``).
* :mod:`mtenv.zoo.train`: the recipes and the deterministic trainer (``train_zoo``).
* :mod:`mtenv.zoo.card`: the generated model card (``evaluate_zoo``, ``write_card``).
"""

from __future__ import annotations

from mtenv.zoo.card import evaluate_zoo, write_card
from mtenv.zoo.data import N_LEVELS, Pool, serving_pool, validation_pool
from mtenv.zoo.errors import ZooError
from mtenv.zoo.models import MODEL_NAMES, ModelStats, build_model, model_stats
from mtenv.zoo.store import load_model, weights_path
from mtenv.zoo.train import RECIPES, TrainRecipe, train_model, train_zoo

__all__ = [
    "MODEL_NAMES",
    "N_LEVELS",
    "RECIPES",
    "ModelStats",
    "Pool",
    "TrainRecipe",
    "ZooError",
    "build_model",
    "evaluate_zoo",
    "load_model",
    "model_stats",
    "serving_pool",
    "train_model",
    "train_zoo",
    "validation_pool",
    "weights_path",
    "write_card",
]
