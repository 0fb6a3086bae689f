"""The interfaces every allocation policy and every learner implements.

A :class:`Policy` maps (observation, action mask) to an action. It is bound to one env when it is
built (``factory(env, seed)``) so that it can read the env's documented, static descriptions of
its spaces (``feature_names``, ``action_labels``, ``catalog``); while it runs it sees only what
``step`` returns. Policies that learn online (bandits) read the per-task outcomes the env reports
in ``info["feedback"]`` through :meth:`Policy.observe`.

A :class:`Learner` is a policy that trains: ``learn`` on an :class:`EnvConfig`, reporting each
finished training episode to a :class:`TrainingCallback`, checkpointing into a run folder it can
``resume`` from, and ``save`` / ``load`` its weights in its own format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Maps (observation, action mask) to an action.

    ``mask`` is the env's ``info["action_mask"]`` (``np.int8``, 1 = valid); the last action is
    always *reject* and always valid. ``reset`` starts an episode, seeding any randomness.
    ``observe`` is called after every step with that step's reward and info.
    """

    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int: ...

    def observe(self, reward: float, info: dict[str, Any]) -> None: ...


class BasePolicy:
    """No-op ``reset`` and ``observe`` for policies that need neither; a seeded ``rng``."""

    name: ClassVar[str] = "base"
    clairvoyant: ClassVar[bool] = False
    """True only for upper bounds that read hidden state (the oracle): never deployable."""

    def __init__(self, env: gym.Env | None = None, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def observe(self, reward: float, info: dict[str, Any]) -> None:
        return None

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class EnvConfig:
    """How to build the training env anywhere, subprocess workers included.

    ``env_id`` is a registered id (``"mtenv/Quickstart-v0"``; a scenario file trains on
    ``"mtenv/TaskAllocation-v0"`` with ``kwargs={"scenario": path}``). ``kwargs`` must be
    JSON-safe. :meth:`make` uses the ``"mtenv:<id>"`` form, which imports mtenv first, so that
    forkserver workers find the namespace.
    """

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, **overrides: Any) -> gym.Env:
        return gym.make(f"mtenv:{self.env_id}", **{**self.kwargs, **overrides})

    def at_load(self, load_scale: float | None) -> EnvConfig:
        """This config with the env's ``load_scale`` set (``None``: this config unchanged)."""
        if load_scale is None:
            return self
        return EnvConfig(self.env_id, {**self.kwargs, "load_scale": float(load_scale)})


class TrainingCallback(Protocol):
    """What a learner reports while it trains."""

    def on_episode(self, step: int, episode_return: float) -> None:
        """A training episode finished at env step ``step`` (counted over all envs)."""

    def on_checkpoint(self, step: int) -> None:
        """Everything up to env step ``step`` is safely on disk."""

    def on_phase(self, text: str) -> None:
        """A stage that takes no training steps of its own began (choosing a teacher, cloning
        it); ``text`` says which, for a person watching."""


@runtime_checkable
class Learner(Policy, Protocol):
    """A policy that trains.

    ``learn`` trains for ``total_steps`` env steps in all (counting steps already done when
    resumed) and writes checkpoints into ``run_dir/checkpoints``; after a kill, a fresh learner
    built with the same hyperparameters calls ``resume(run_dir)`` (which returns the steps already
    done) and then ``learn`` again continues the same run. ``save`` writes the trained agent into
    ``folder`` (``agent.npz``, or ``agent.json`` + ``agent.safetensors``: no pickle); ``load``
    reads it back for an env with the same spaces, raising :class:`AgentLoadError` on a
    corrupted or mismatched file.
    ``action_values`` explains a decision: one number per action (Q-values, or the policy's
    probabilities), NaN where the mask forbids the action.
    """

    kind: ClassVar[str]
    value_label: ClassVar[str]  # "Q" or "probability": what action_values returns
    hyperparameters: dict[str, Any]

    def learn(
        self,
        env_config: EnvConfig,
        total_steps: int,
        seed: int,
        run_dir: Path,
        callback: TrainingCallback,
    ) -> None: ...

    def resume(self, run_dir: Path) -> int: ...

    def save(self, folder: Path) -> Path: ...

    @classmethod
    def load(cls, folder: Path, env: gym.Env) -> Learner: ...

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def decided_rewards(feedback: Mapping[str, np.ndarray]) -> list[tuple[int, float]]:
    """``(decision_step, reward)`` of each task settled in a step, from ``info["feedback"]``:
    the step that decided the task and what it earned, for learners that credit each decision
    with its own task's reward."""
    return list(zip(feedback["decision_step"].tolist(), feedback["reward"].tolist(), strict=True))


class AgentLoadError(Exception):
    """A saved agent that cannot be used: missing, corrupted, another format, or trained for an
    env with different spaces. The message names the file and what was expected."""


def name_difference(saved: list[str], expected: list[str]) -> str | None:
    """How a saved list of names differs from the env's, for a load error: the two lengths, or
    the first entry that differs; ``None`` when they are the same."""
    if saved == expected:
        return None
    if len(saved) != len(expected):
        return f"{len(saved)} in the file, {len(expected)} in the env"
    i = next(i for i, (a, b) in enumerate(zip(saved, expected, strict=True)) if a != b)
    return f"entry {i} is {saved[i]!r} in the file, {expected[i]!r} in the env"
