"""mtenv: Gymnasium environments for allocating AI inference tasks to real models on GPUs.

Importing the package registers the environments::

    import gymnasium as gym
    import mtenv  # noqa: F401

    env = gym.make("mtenv/Quickstart-v0")
    short = gym.make("mtenv/EdgeBurst-v0", episode_tasks=50)  # any id, shorter episodes
    envs = gym.make_vec("mtenv/Quickstart-v0", num_envs=8)  # 8 envs stepped together

Ids: ``mtenv/TaskAllocation-v0`` (any scenario, ``scenario=`` a shipped name or a YAML path) and
one id per shipped scenario, ``mtenv/<CamelName>-v0`` (``edge_burst`` → ``mtenv/EdgeBurst-v0``),
listed in :data:`ENV_IDS`. ``gym.make_vec`` of any id gives a
:class:`~mtenv.envs.vector.BatchedTaskAllocationEnv` (its ``vector_entry_point``: the envs share
their models and run them in one batched pass per step). In subprocess workers use
``"mtenv:mtenv/Quickstart-v0"``, which imports the package first.

Importing stays cheap: the shipped scenarios are found by listing the ``mtenv.scenarios`` package
data, without importing torch or the simulator (``gym.make`` imports them).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib import resources
from pathlib import Path

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"


_CHECKOUT = Path(__file__).resolve().parent.parent
_FOLDERS = {"mtenv.agents": _CHECKOUT / "agents", "mtenv.scenarios": _CHECKOUT / "scenarios"}


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """In a source checkout, ``agents/`` and ``scenarios/`` sit beside ``mtenv/`` and an install
    puts them inside it (``package-dir`` in pyproject.toml). This finder gives the tree as it is
    the same layout, so that ``python -m pytest`` or ``python -c "import mtenv"`` run from the
    checkout's root import the checkout's code whatever copy is installed."""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        folder = _FOLDERS.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def _in_checkout() -> bool:
    """Imported from a source checkout (not from an installed copy, which holds mtenv/agents)."""
    here = Path(__file__).resolve().parent
    folders = all((f / "__init__.py").is_file() for f in _FOLDERS.values())
    return folders and not (here / "agents").is_dir()


if _in_checkout() and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.append(_CheckoutFinder())


def scenario_env_id(name: str) -> str:
    """The Gymnasium id of a shipped scenario: ``edge_burst`` → ``mtenv/EdgeBurst-v0``."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))
    return f"mtenv/{camel}-v0"


def _shipped_scenario_names() -> list[str]:
    """Names of the scenario YAML files in the ``mtenv.scenarios`` package data, sorted."""
    root = resources.files("mtenv.scenarios")
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in root.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    )


ENV_IDS: dict[str, str] = {scenario_env_id(name): name for name in _shipped_scenario_names()}
"""Registered scenario ids and the shipped scenario each one runs (one per shipped YAML file)."""


_ENTRY_POINT = "mtenv.envs.task_allocation:TaskAllocationEnv"
_VECTOR_ENTRY_POINT = "mtenv.envs.vector:BatchedTaskAllocationEnv"


def _register() -> None:
    if "mtenv/TaskAllocation-v0" not in registry:
        register(
            id="mtenv/TaskAllocation-v0",
            entry_point=_ENTRY_POINT,
            vector_entry_point=_VECTOR_ENTRY_POINT,
        )
    for env_id, scenario in ENV_IDS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point=_ENTRY_POINT,
                vector_entry_point=_VECTOR_ENTRY_POINT,
                kwargs={"scenario": scenario},
            )


_register()

__all__ = ["ENV_IDS", "__version__", "scenario_env_id"]
