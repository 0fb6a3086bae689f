"""mtenv-triage: a worked-example zoo plug-in for mtenv (breast-cancer triage on tabular data).

Installing this package registers the zoo ``triage`` under mtenv's entry-point group
``mtenv.zoos``; a scenario selects it with ``zoo: triage``. The zoo has one task type,
``diagnose`` (30 standardised cell-nucleus features in, benign 0 / malignant 1 out), four models
of very different cost (``screen``, ``linear``, ``mlp``, ``deep``, see :mod:`mtenv_triage.models`)
and the Breast Cancer Wisconsin (Diagnostic) data, split and corrupted at four difficulty levels
(:mod:`mtenv_triage.data`). ``python -m mtenv_triage.train`` retrains the shipped weights.

Importing this module is cheap: it imports neither torch nor mtenv, and the data is read only
when a pool is first asked for.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

    from mtenv.zoo import Pool, Zoo

__all__ = ["scenario_path", "triage_zoo", "weights_path"]

__version__ = "0.1.0"

_DESCRIPTION = (
    "Breast Cancer Wisconsin (Diagnostic): benign or malignant from 30 cell-nucleus features, "
    "4 difficulty levels (masked, noisy and glitched features); a rule-based screen, logistic "
    "regression and two MLPs"
)


def weights_path(name: str) -> str:
    """Path of the shipped weights of model ``name``."""
    return str(files("mtenv_triage").joinpath("weights").joinpath(f"{name}.safetensors"))


def scenario_path() -> str:
    """Path of the shipped scenario ``triage.yaml``."""
    return str(files("mtenv_triage").joinpath("scenarios").joinpath("triage.yaml"))


def _pool(task_type: str, split: str) -> Pool:
    from mtenv_triage.data import make_pool

    return make_pool(split, task_type)


def _builder(name: str) -> Callable[[], nn.Module]:
    """A builder of model ``name`` that imports torch only when called."""

    def build() -> nn.Module:
        from mtenv_triage.models import build as build_model

        return build_model(name)

    build.__qualname__ = build.__name__ = f"build_{name}"
    return build


def triage_zoo() -> Zoo:
    """The ``triage`` zoo (what the ``mtenv.zoos`` entry point returns)."""
    from mtenv.zoo import TaskType, Zoo, ZooModel
    from mtenv_triage.data import N_LEVELS, TASK_TYPE
    from mtenv_triage.models import ARCHITECTURES, DESCRIPTIONS

    task_type = TaskType(TASK_TYPE, 2, (30,), "benign or malignant from 30 cell-nucleus features")
    models = tuple(
        ZooModel(name, _builder(name), (TASK_TYPE,), weights_path(name), DESCRIPTIONS[name])
        for name in ARCHITECTURES
    )
    return Zoo(
        name="triage",
        task_types=(task_type,),
        models=models,
        pool=_pool,
        n_levels=N_LEVELS,
        description=_DESCRIPTION,
    )
