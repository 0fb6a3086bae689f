"""mtenv: Gymnasium environments for allocating AI inference tasks to real models on GPUs.

Importing the package registers the environments::

    import gymnasium as gym
    import mtenv  # noqa: F401

    env = gym.make("mtenv/Quickstart-v0")

Ids: ``mtenv/TaskAllocation-v0`` (any scenario, ``scenario=`` a shipped name or a YAML path) and
one id per shipped scenario. In subprocess workers use ``"mtenv:mtenv/Quickstart-v0"``, which
imports the package first.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_IDS: dict[str, str] = {
    "mtenv/Quickstart-v0": "quickstart",
    "mtenv/Collaboration-v0": "collaboration",
}
"""Registered scenario ids and the shipped scenario each one runs."""


def _register() -> None:
    if "mtenv/TaskAllocation-v0" not in registry:
        register(id="mtenv/TaskAllocation-v0", entry_point="mtenv.env:TaskAllocationEnv")
    for env_id, scenario in ENV_IDS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point="mtenv.env:TaskAllocationEnv",
                kwargs={"scenario": scenario},
            )


_register()

__all__ = ["ENV_IDS", "__version__"]
