"""Per-scenario hyperparameters, in rl-zoo3's YAML shape.

Each learner family has one file in ``mtenv/agents/hyperparams/`` (``tabular.yml`` serves
Q-learning, SARSA and Expected SARSA; ``ppo.yml``; ``maskable-ppo.yml``) with one top-level key
per registered env id::

    mtenv/Quickstart-v0:
      n_timesteps: 60000      # the training budget, in env steps
      gamma: 0.9
      ...

``mtenv/TaskAllocation-v0`` holds the defaults used for scenario files that have no entry of
their own. ``n_timesteps`` is the default budget of ``mtenv train``; every other key is passed to
the learner's constructor.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

DEFAULT_ENV_ID = "mtenv/TaskAllocation-v0"

FILES = {
    "q-learning": "tabular.yml",
    "sarsa": "tabular.yml",
    "expected-sarsa": "tabular.yml",
    "ppo": "ppo.yml",
    "maskable-ppo": "maskable-ppo.yml",
}
"""The hyperparameter file of each learner kind."""


class HyperparameterError(ValueError):
    """A hyperparameter file or override that cannot be used; the message names it."""


def _file_entries(kind: str) -> dict[str, Any]:
    name = FILES[kind]
    text = resources.files("mtenv.agents").joinpath("hyperparams", name).read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise HyperparameterError(f"hyperparams/{name}: expected a mapping of env ids")
    return data


def hyperparameters_for(kind: str, env_id: str) -> tuple[int, dict[str, Any]]:
    """``(n_timesteps, learner kwargs)`` for a learner kind on an env id (the default entry
    when the id has none)."""
    if kind not in FILES:
        raise HyperparameterError(f"unknown agent {kind!r} (known: {', '.join(FILES)})")
    entries = _file_entries(kind)
    entry = entries.get(env_id, entries.get(DEFAULT_ENV_ID))
    if not isinstance(entry, dict) or "n_timesteps" not in entry:
        raise HyperparameterError(
            f"hyperparams/{FILES[kind]}: {env_id}: expected a mapping with n_timesteps"
        )
    kwargs = copy.deepcopy(entry)
    return int(kwargs.pop("n_timesteps")), kwargs


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line, the value read as YAML (``gamma=0.95``,
    ``policy_kwargs={net_arch: [64, 64]}``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise HyperparameterError(f"--hp: expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise HyperparameterError(f"--hp {key}: value is not valid YAML: {exc}") from None
