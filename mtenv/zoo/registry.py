"""Zoos as plug-ins: what a zoo is, how one is registered, and how scenarios find it.

A zoo is the set of real models a scenario allocates tasks to, with the data they serve: its
task types (class counts, input shapes), its models (``torch.nn.Module`` builders, the task
types each serves, safetensors weights) and its labelled input pools, one per task type and
split, every input tagged with a difficulty level. The shipped 8×8-digits zoo is ``digits``
(:mod:`mtenv.zoo.digits`), the default of every scenario; a scenario names another with
``zoo: NAME`` and never runs code itself.

Zoos come from three places:

* built in: ``digits``;
* installed packages, through the entry-point group ``mtenv.zoos`` (the name of the entry point
  is the zoo's name; its object is a :class:`Zoo` or a function of no arguments returning one)::

      [project.entry-points."mtenv.zoos"]
      triage = "mtenv_triage:triage_zoo"

* a script, at run time: ``register_zoo(my_zoo)``.

Entry points are loaded only when their zoo is asked for, so listing zoos imports nothing. A
zoo's models are profiled from the modules themselves (FLOPs counted by PyTorch's own counter,
weight bytes), never typed in, exactly as the digits are, unless a model brings its latency
measured on real devices (:attr:`ZooModel.latency_ms`); :meth:`Zoo.check` says what is missing
or inconsistent before anything runs.

Example, a zoo of two linear models on random data::

    import numpy as np, torch
    from torch import nn
    from mtenv.zoo import Pool, TaskType, Zoo, ZooModel, register_zoo, save_weights

    def pool(task_type, split):
        rng = np.random.default_rng(0 if split == "serving" else 1)
        x = torch.from_numpy(rng.normal(size=(2 * 50, 4)).astype(np.float32))
        return Pool(inputs=x, labels=(x[:, 0] > 0).long().numpy(),
                    levels=np.repeat(np.arange(2), 50), n_per_level=50, task_type=task_type)

    models = []
    for name in ("small", "big"):
        torch.manual_seed(0)
        save_weights(nn.Linear(4, 2), f"{name}.safetensors", {"architecture": name})
        models.append(ZooModel(name, lambda: nn.Linear(4, 2), ("sign",), f"{name}.safetensors"))
    register_zoo(Zoo("toy", (TaskType("sign", 2, (4,)),), tuple(models), pool, n_levels=2))
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn

from mtenv.messages import excerpt, unknown_name
from mtenv.zoo.data import Pool
from mtenv.zoo.errors import ZooError
from mtenv.zoo.models import ModelStats, MultiTaskNet, measure_stats

__all__ = [
    "DEFAULT_ZOO",
    "ENTRY_POINT_GROUP",
    "REGISTERED_AT_RUN_TIME",
    "SPLITS",
    "TaskType",
    "Zoo",
    "ZooModel",
    "get_zoo",
    "register_zoo",
    "unregister_zoo",
    "zoo_names",
    "zoo_source",
]

ENTRY_POINT_GROUP = "mtenv.zoos"
"""The entry-point group packages register zoos under."""

DEFAULT_ZOO = "digits"
"""The zoo of a scenario that names none."""

REGISTERED_AT_RUN_TIME = "registered at run time"
"""What :func:`zoo_source` says of a zoo passed to :func:`register_zoo`: it lives in this
process only (pool and Ray workers do not see it)."""

SPLITS = ("serving", "validation")
"""Every zoo has both: tasks draw their inputs from ``serving`` (the zoo card is computed on it
too); ``validation`` is for fitting (ensemble weights, thresholds, the catalog's accuracies)."""


@dataclass(frozen=True)
class TaskType:
    """One kind of task a zoo serves."""

    name: str
    """The task type's name, as scenarios write it under ``workload.task_types``."""
    n_classes: int
    """Length of a model's probability vector for this task type (its answers are 0..n-1)."""
    input_shape: tuple[int, ...]
    """Shape of one input, without the batch dimension."""
    description: str = ""
    """One line for ``mtenv zoo list`` and the card."""


@dataclass(frozen=True)
class ZooModel:
    """One model of a zoo: how to build it, what it serves and where its weights are."""

    name: str
    """The model's name, as scenarios write it under ``models``."""
    build: Callable[[], nn.Module]
    """Returns a freshly initialised module (weights are loaded into it afterwards). A
    :class:`~mtenv.zoo.models.MultiTaskNet` serves several task types with a shared trunk."""
    task_types: tuple[str, ...]
    """The task types it serves (every head's, for a multi-task model)."""
    weights: str | os.PathLike[str]
    """Its safetensors file: every tensor of the built module's state dict, nothing else."""
    description: str = ""
    """One line for the card."""
    latency_ms: Mapping[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    """Measured latency per device kind (``"t4"``, ``"a100"``, ...): ``(alpha_ms, beta_ms)``,
    the fixed time of a batch and the time each task adds. On those kinds it replaces the
    profile derived from FLOPs and weight bytes, exactly as a scenario's ``profile.overrides``
    entry does (and such an entry still wins)."""


@dataclass(frozen=True, eq=False)
class Zoo:
    """A set of real models and the labelled data they serve (see the module docstring).

    Args:
        name: the zoo's name (what scenarios write as ``zoo:``).
        task_types: every task type, in a fixed order (a multi-task model's heads follow it).
        models: every model.
        pool: ``pool(task_type, split)`` returns the :class:`~mtenv.zoo.data.Pool` of a task type
            on a split (``"serving"`` or ``"validation"``). Called once per pair, then cached.
            Inputs are laid out by level: input ``level * n_per_level + j`` is base input ``j``
            at that difficulty level (the same base inputs at every level).
        n_levels: number of difficulty levels (0 = easiest).
        description: one line for ``mtenv zoo list``.
        retrain: how to regenerate the weights, said when a weights file is missing or wrong.
    """

    name: str
    task_types: tuple[TaskType, ...]
    models: tuple[ZooModel, ...]
    pool: Callable[[str, str], Pool]
    n_levels: int
    description: str = ""
    retrain: str = "retrain the model or reinstall the package that ships it"
    _pools: dict[tuple[str, str], Pool] = field(default_factory=dict, init=False, repr=False)
    _stats: dict[str, ModelStats] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __reduce__(self) -> tuple[Callable[[str], Zoo], tuple[str]]:
        # A zoo holds functions; a pickled env refers to its zoo by name and finds it again.
        return get_zoo, (self.name,)

    # --- names ---------------------------------------------------------------------------------

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every model's name, in the zoo's order."""
        return tuple(m.name for m in self.models)

    @property
    def task_type_names(self) -> tuple[str, ...]:
        """Every task type's name, in the zoo's order."""
        return tuple(t.name for t in self.task_types)

    @property
    def n_classes(self) -> dict[str, int]:
        """Number of classes per task type."""
        return {t.name: t.n_classes for t in self.task_types}

    def model(self, name: str) -> ZooModel:
        """The model called ``name``; an unknown name raises :class:`ZooError` suggesting one."""
        for model in self.models:
            if model.name == name:
                return model
        raise ZooError(f"zoo {self.name!r}: {unknown_name('model', name, self.model_names)}")

    def task_type(self, name: str) -> TaskType:
        """The task type called ``name``; an unknown name raises :class:`ZooError`."""
        for task_type in self.task_types:
            if task_type.name == name:
                return task_type
        known = self.task_type_names
        raise ZooError(f"zoo {self.name!r}: {unknown_name('task type', name, known)}")

    # --- data, modules, profiles ---------------------------------------------------------------

    def pool_for(self, task_type: str, split: str = "serving") -> Pool:
        """The cached input pool of ``task_type`` on ``split``."""
        self.task_type(task_type)
        if split not in SPLITS:
            raise ZooError(f"unknown pool split {split!r}: expected one of {SPLITS}")
        key = (task_type, split)
        with self._lock:
            if key not in self._pools:
                self._pools[key] = self.pool(task_type, split)
            return self._pools[key]

    def build(self, name: str) -> nn.Module:
        """A freshly initialised module of model ``name`` (torch's global RNG left untouched)."""
        with torch.random.fork_rng(devices=[]):
            return self.model(name).build()

    def load(self, name: str, device: str | torch.device = "cpu") -> nn.Module:
        """Model ``name`` with its weights, in eval mode, on ``device`` (checked tensor by
        tensor, see :func:`mtenv.zoo.store.load_weights`)."""
        from mtenv.zoo.store import load_weights

        entry = self.model(name)
        return load_weights(self.build(name), entry.weights, name, device, self.retrain)

    def stats(self, name: str) -> ModelStats:
        """The measured :class:`~mtenv.zoo.models.ModelStats` of model ``name`` (cached)."""
        with self._lock:
            if name not in self._stats:
                entry = self.model(name)
                shape = self.task_type(entry.task_types[0]).input_shape
                self._stats[name] = measure_stats(name, self.build(name), shape, entry.task_types)
            return self._stats[name]

    # --- checking ------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`ZooError` listing everything missing or inconsistent in this zoo, or
        return quietly: task types and models, each model's outputs against its task types'
        class counts, its weights against its module, and every pool's shapes, labels and
        levels. Loads every model and pool once."""
        problems = [f"zoo {self.name!r}: {p}" for p in self.problems()]
        if problems:
            raise ZooError("\n".join(problems))

    def problems(self) -> list[str]:
        """What :meth:`check` reports, one line each (empty when the zoo is sound)."""
        problems = _name_problems(self)
        if problems:
            return problems
        for task_type in self.task_types:
            for split in SPLITS:
                problems += _pool_problems(self, task_type, split)
        for model in self.models:
            problems += _model_problems(self, model)
        return problems


def _name_problems(zoo: Zoo) -> list[str]:
    problems = []
    if not zoo.task_types:
        problems.append("has no task types")
    if not zoo.models:
        problems.append("has no models")
    if not isinstance(zoo.n_levels, int) or zoo.n_levels < 1:
        problems.append(f"n_levels must be an integer >= 1, got {zoo.n_levels!r}")
    for what, names in (("task type", zoo.task_type_names), ("model", zoo.model_names)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"{what} names repeat: {', '.join(dupes)}")
    for t in zoo.task_types:
        if not isinstance(t.n_classes, int) or t.n_classes < 2:
            problems.append(f"task type {t.name!r}: n_classes must be an integer >= 2")
    for model in zoo.models:
        if not model.task_types:
            problems.append(f"model {model.name!r} serves no task type")
        for t in model.task_types:
            if t not in zoo.task_type_names:
                problems.append(
                    f"model {model.name!r}: {unknown_name('task type', t, zoo.task_type_names)}"
                )
        problems += _latency_problems(model)
    return problems


def _latency_problems(model: ZooModel) -> list[str]:
    if not isinstance(model.latency_ms, Mapping):
        return [f"model {model.name!r}: latency_ms must map device kinds to (alpha_ms, beta_ms)"]
    problems = []
    for kind, pair in model.latency_ms.items():
        numbers = tuple(pair) if isinstance(pair, (tuple, list)) else ()
        if len(numbers) != 2 or not all(
            isinstance(x, (int, float)) and np.isfinite(x) and x >= 0 for x in numbers
        ):
            problems.append(
                f"model {model.name!r}: latency_ms[{kind!r}] must be (alpha_ms, beta_ms), two "
                f"finite numbers >= 0, got {excerpt(pair)}"
            )
    return problems


def _pool_problems(zoo: Zoo, task_type: TaskType, split: str) -> list[str]:
    where = f"pool ({task_type.name!r}, {split!r})"
    try:
        pool = zoo.pool_for(task_type.name, split)
    except Exception as exc:  # a plug-in's data loader may fail any way
        return [f"{where} could not be loaded: {type(exc).__name__}: {exc}"]
    if not isinstance(pool, Pool):
        return [f"{where} is a {type(pool).__name__}, expected mtenv.zoo.Pool"]
    problems = []
    n = pool.n_inputs
    if tuple(pool.inputs.shape[1:]) != tuple(task_type.input_shape):
        problems.append(
            f"{where}: inputs are {list(pool.inputs.shape)}, expected [N, "
            f"{', '.join(map(str, task_type.input_shape))}]"
        )
    if pool.inputs.shape[0] != n or pool.levels.shape != (n,):
        problems.append(f"{where}: inputs, labels and levels differ in length")
    if pool.inputs.dtype != torch.float32:
        problems.append(f"{where}: inputs are {pool.inputs.dtype}, expected torch.float32")
    if n and (pool.labels.min() < 0 or pool.labels.max() >= task_type.n_classes):
        problems.append(f"{where}: labels must be in 0..{task_type.n_classes - 1}")
    expected_levels = np.repeat(np.arange(zoo.n_levels), pool.n_per_level)
    if pool.n_per_level < 1 or not np.array_equal(pool.levels, expected_levels):
        problems.append(
            f"{where}: difficulty levels must be laid out by level, n_per_level={pool.n_per_level}"
            f" inputs at each of levels 0..{zoo.n_levels - 1} (input level·n_per_level + j)"
        )
    return problems


def _model_problems(zoo: Zoo, model: ZooModel) -> list[str]:
    where = f"model {model.name!r}"
    try:
        module = zoo.load(model.name)
    except ZooError as exc:
        return [str(exc)]
    except Exception as exc:  # a plug-in's builder may fail any way
        return [f"{where} could not be built: {type(exc).__name__}: {exc}"]
    problems = []
    if isinstance(module, MultiTaskNet) and set(module.task_types) != set(model.task_types):
        problems.append(
            f"{where}: heads {list(module.task_types)} differ from its task types "
            f"{list(model.task_types)}"
        )
        return problems
    for name in model.task_types:
        task_type = zoo.task_type(name)
        x = torch.zeros((2, *task_type.input_shape))
        try:
            with torch.inference_mode():
                out = module(x, name) if isinstance(module, MultiTaskNet) else module(x)
        except Exception as exc:
            problems.append(
                f"{where} fails on a [2, {', '.join(map(str, task_type.input_shape))}] "
                f"{name!r} input: {type(exc).__name__}: {exc}"
            )
            continue
        if tuple(out.shape) != (2, task_type.n_classes):
            problems.append(
                f"{where}: outputs {list(out.shape)} on {name!r}, expected [2, "
                f"{task_type.n_classes}] ({task_type.n_classes} classes)"
            )
    return problems


# --- the registry ------------------------------------------------------------------------------

_REGISTERED: dict[str, Zoo] = {}
_SOURCES: dict[str, str] = {}


def register_zoo(zoo: Zoo, *, replace: bool = False) -> Zoo:
    """Make ``zoo`` available to scenarios under ``zoo.name`` in this process, once
    :meth:`Zoo.check` finds it sound (else :class:`ZooError` saying what is wrong).

    Registering a second zoo under a name already taken raises :class:`ZooError` unless
    ``replace`` is true. Returns ``zoo``.
    """
    if not isinstance(zoo, Zoo):
        raise ZooError(f"register_zoo expects an mtenv.zoo.Zoo, got {type(zoo).__name__}")
    if zoo.name == DEFAULT_ZOO:
        raise ZooError(f"{DEFAULT_ZOO!r} is the built-in zoo's name: choose another")
    if zoo.name in _REGISTERED and _REGISTERED[zoo.name] is not zoo and not replace:
        raise ZooError(f"a zoo named {zoo.name!r} is already registered (replace=True replaces)")
    zoo.check()
    _REGISTERED[zoo.name] = zoo
    _SOURCES.setdefault(zoo.name, REGISTERED_AT_RUN_TIME)
    return zoo


def unregister_zoo(name: str) -> None:
    """Forget a zoo registered at run time (``digits`` stays)."""
    if name == DEFAULT_ZOO:
        raise ZooError(f"the built-in zoo {DEFAULT_ZOO!r} cannot be unregistered")
    _REGISTERED.pop(name, None)
    _SOURCES.pop(name, None)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def zoo_names() -> tuple[str, ...]:
    """Every zoo a scenario can name: built in, registered, installed (entry points, not
    loaded), sorted with ``digits`` first."""
    names = {DEFAULT_ZOO, *_REGISTERED, *_entry_points()}
    return (DEFAULT_ZOO, *sorted(names - {DEFAULT_ZOO}))


def zoo_source(name: str) -> str:
    """Where zoo ``name`` comes from: ``built in``, ``registered at run time`` or the
    installed package and object of its entry point."""
    if name == DEFAULT_ZOO:
        return "built in"
    if name in _SOURCES:
        return _SOURCES[name]
    ep = _entry_points().get(name)
    if ep is None:
        raise ZooError(unknown_name("zoo", name, zoo_names()))
    package = ep.dist.name if ep.dist is not None else "an installed package"
    return f"{package} ({ep.value})"


def get_zoo(name: str = DEFAULT_ZOO) -> Zoo:
    """The zoo called ``name``: built in, registered at run time, or loaded (once, then
    checked with :meth:`Zoo.check`) from the installed package whose ``mtenv.zoos`` entry point
    has that name."""
    if name == DEFAULT_ZOO and name not in _REGISTERED:
        from mtenv.zoo.digits import DIGITS

        _REGISTERED[name] = DIGITS
    if name in _REGISTERED:
        return _REGISTERED[name]
    ep = _entry_points().get(name)
    if ep is None:
        raise ZooError(unknown_name("zoo", name, zoo_names()))
    zoo = _load_entry_point(ep)
    zoo.check()
    _REGISTERED[name] = zoo
    _SOURCES[name] = zoo_source(name)
    return zoo


def _load_entry_point(ep: metadata.EntryPoint) -> Zoo:
    where = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r}"
    try:
        obj: Any = ep.load()
        zoo = obj() if callable(obj) and not isinstance(obj, Zoo) else obj
    except Exception as exc:  # a plug-in may fail any way; say which one
        raise ZooError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(zoo, Zoo):
        raise ZooError(f"{where} gave a {type(zoo).__name__}, expected an mtenv.zoo.Zoo")
    if zoo.name != ep.name:
        raise ZooError(f"{where} gave a zoo named {zoo.name!r}; the names must match")
    return zoo
