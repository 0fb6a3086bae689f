"""What a PPO learner runs while it trains: the vectorised training envs (:func:`make_vec_env`:
mtenv's batched env through :mod:`~mtenv.agents.ppo.batched`, or one :class:`EnvFactory` env
per SB3 worker) and the SB3 callbacks hooked into its rollouts: reporting finished
episodes, moving delayed rewards to the decisions that earned them, and checkpointing.

Credit for delayed rewards: the env pays a task's reward when the task settles, some steps after
the step that decided it, and later for slower plans, so discounting and GAE make a slow,
accurate plan look worse than it is. By default (``credit: decision``) training moves each task's
reward back, in the rollout buffer, to the step that decided the task, which the env reports
with every settled task (``info["feedback"]["decision_step"]``); the env, its reported returns and
the trained policy's inputs are unchanged (:class:`CreditToDecisions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from mtenv.agents.interfaces import EnvConfig, TrainingCallback, decided_rewards

if TYPE_CHECKING:
    from mtenv.agents.ppo.learner import SB3Learner


# --- envs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvFactory:
    """Builds one Monitor-wrapped training env; picklable, so that ``SubprocVecEnv`` workers
    can run it. Small MLPs and memoised models gain nothing from torch threads that compete
    with the other workers, hence one thread per process."""

    config: EnvConfig
    load_scale: float | None = None
    """The env's ``load_scale`` (``None``: the scenario's load)."""

    def __call__(self) -> gym.Env:
        torch.set_num_threads(1)
        return Monitor(self.config.at_load(self.load_scale).make())


def training_loads(n_envs: int, load_range: tuple[float, float] | None) -> list[float | None]:
    """Each training env's ``load_scale``: spread evenly over ``load_range``, or ``None`` (the
    scenario's load) for every env without one."""
    if load_range is None:
        return [None] * n_envs
    return np.linspace(load_range[0], load_range[1], n_envs).tolist()


def make_vec_env(
    config: EnvConfig,
    n_envs: int,
    kind: str,
    seed: int,
    load_range: tuple[float, float] | None = None,
    torch_threads: int | None = None,
) -> VecEnv:
    """``n_envs`` envs of ``config``; env ``i`` is seeded with ``seed + i`` at its first reset.
    With ``load_range = (low, high)`` the envs run at load factors spread evenly from ``low`` to
    ``high``, so that one rollout sees a range of loads.

    ``kind``: ``"batched"`` (all envs in this process, stepped together on one shared set of
    models: :class:`~mtenv.agents.ppo.batched.BatchedVecEnv`, which reports episodes as
    ``Monitor`` does; torch
    runs here on one intra-op thread, or ``MTENV_TORCH_THREADS``, or ``torch_threads`` if given),
    ``"subproc"`` (one worker process per env, each with one torch thread) or ``"dummy"`` (one
    Monitor-wrapped env after the other, in this process)."""
    loads = training_loads(n_envs, load_range)
    vec: VecEnv
    if kind == "batched":
        vec = _batched(config, loads, torch_threads)
    else:
        factories = [EnvFactory(config, load) for load in loads]
        vec = SubprocVecEnv(factories) if kind == "subproc" else DummyVecEnv(factories)
    vec.seed(seed)
    return vec


def _batched(config: EnvConfig, loads: list[float | None], torch_threads: int | None) -> VecEnv:
    """The batched env of ``config``'s id (its ``vector_entry_point``), autoresetting in the
    step that ends an episode, as SB3 expects."""
    from mtenv.agents.ppo.batched import BatchedVecEnv
    from mtenv.envs.vector import BatchedTaskAllocationEnv

    kwargs = dict(config.kwargs)
    if any(load is not None for load in loads):
        kwargs.pop("load_scale", None)
        kwargs["load_scales"] = loads
    if gym.spec(config.env_id).vector_entry_point is None:
        raise ValueError(
            f"vec_env batched: {config.env_id} has no vector entry point; "
            "use vec_env subproc or dummy"
        )
    venv = gym.make_vec(
        config.env_id,
        num_envs=len(loads),
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP.value,
        **kwargs,
    )
    if not isinstance(venv, BatchedTaskAllocationEnv):
        raise ValueError(
            f"vec_env batched: {config.env_id}'s vector entry point is not mtenv's batched env; "
            "use vec_env subproc or dummy"
        )
    return BatchedVecEnv(venv, torch_threads=torch_threads)


# --- callbacks ---------------------------------------------------------------------------------


class EpisodeReporter(BaseCallback):
    """Passes every finished training episode (from the Monitor wrappers) to the learner's
    :class:`TrainingCallback`."""

    def __init__(self, report: TrainingCallback):
        super().__init__()
        self.report = report

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None:
                self.report.on_episode(self.num_timesteps, float(episode["r"]))
        return True


class CreditToDecisions(BaseCallback):
    """Moves each task's reward, in the rollout buffer, from the step that paid it to the step
    that decided it (``info["feedback"]``: each settled task's ``decision_step`` and ``reward``),
    then recomputes returns and advantages.

    A task decided in an earlier rollout keeps its reward where it was paid: that rollout has
    already been trained on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.moves: list[tuple[int, int, int, float]] = []
        self.where: list[dict[int, int]] = []
        self.episode_step: np.ndarray | None = None

    def _on_rollout_start(self) -> None:
        n_envs = self.training_env.num_envs
        if self.episode_step is None:
            self.episode_step = np.zeros(n_envs, dtype=np.int64)
        self.moves = []
        self.where = [{} for _ in range(n_envs)]

    def _on_step(self) -> bool:
        # Called before the step is added to the buffer: its row will be ``pos``.
        pos = self.model.rollout_buffer.pos
        steps, infos, dones = self.episode_step, self.locals["infos"], self.locals["dones"]
        for env, (info, done) in enumerate(zip(infos, dones, strict=True)):
            self.where[env][int(steps[env])] = pos
            feedback = info.get("feedback")
            for decided, reward in () if feedback is None else decided_rewards(feedback):
                row = self.where[env].get(decided)
                if row is not None and row != pos:
                    self.moves.append((row, pos, env, reward))
            if done:
                steps[env] = 0
                self.where[env] = {}
            else:
                steps[env] += 1
        return True

    def _on_rollout_end(self) -> None:
        if not self.moves:
            return
        buffer = self.model.rollout_buffer
        for row, paid, env, reward in self.moves:
            buffer.rewards[row, env] += reward
            buffer.rewards[paid, env] -= reward
        buffer.compute_returns_and_advantage(
            last_values=self.locals["values"], dones=self.locals["dones"]
        )


class Checkpointer(BaseCallback):
    """Saves the model every ``every`` env steps, between rollouts: there the weights have
    been trained on every step counted so far, so resuming loses no finished work."""

    def __init__(self, learner: SB3Learner, folder: Path, every: int, report: TrainingCallback):
        super().__init__()
        self.learner, self.folder, self.every, self.report = learner, folder, every, report
        self.last = 0

    def _on_training_start(self) -> None:
        self.last = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.every > 0 and self.model.num_timesteps - self.last >= self.every:
            self.save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> None:
        self.learner.write_checkpoint(self.folder)
        self.last = self.model.num_timesteps
        self.report.on_checkpoint(self.last)
