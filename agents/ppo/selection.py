"""Keep the best validated policy: the agent a PPO run saves is the one that did best on a fixed
set of validation episodes, among the policy it started from and every later evaluation.

PPO's last update is not its best: on a small budget the greedy policy's return swings from one
evaluation to the next, and a run that started from a cloned heuristic can drift below it and
stay there. So every ``eval_freq`` env steps (and once before the first update, which is the
clone when the run has a teacher) :class:`Validation` plays the greedy policy on the same
``eval_episodes`` episodes, seeded apart from training and from ``mtenv eval`` / ``mtenv bench``'s
held-out seeds, at each of the ``eval_loads`` load factors, and remembers the weights of each
new best. At the end of the run the learner acts with, and saves, the best of them (ties: the
earliest). Because every candidate plays the same episodes, the comparison is paired; the
held-out evaluation stays unbiased because it never chose. Validating over a range of loads
keeps a policy that is best at the scenario's load but fails when the load doubles from being
chosen over one that holds at both.

The run folder keeps, under ``eval/``::

    evaluations.npz             steps, per-episode returns and lengths of every evaluation
                                (episodes ordered load by load)
    best_step_<n>.safetensors   the weights of each evaluation that set a new best

A resumed run forgets the evaluations after its checkpoint (and their weights), so it chooses
as if it had never been killed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback

from mtenv.agents.interfaces import EnvConfig
from mtenv.agents.ppo.imitation import Actor, play
from mtenv.zoo.store import atomic_path

EVALUATIONS_FILE = "evaluations.npz"
_WEIGHTS = re.compile(r"best_step_(\d+)\.safetensors")


def weights_file(folder: Path, step: int) -> Path:
    return Path(folder) / f"best_step_{step}.safetensors"


def saved_weights(folder: Path) -> dict[int, Path]:
    """The weight files in ``folder`` by the step they were saved at."""
    found = (_WEIGHTS.fullmatch(path.name) for path in Path(folder).iterdir())
    return {int(m.group(1)): Path(folder) / m.group(0) for m in found if m is not None}


@dataclass
class Evaluations:
    """The greedy evaluations of one run so far: ``steps [n]``, ``returns [n, episodes]`` and
    ``lengths [n, episodes]``."""

    steps: list[int]
    returns: list[list[float]]
    lengths: list[list[int]]

    @classmethod
    def read(cls, folder: Path, up_to: int | None = None) -> Evaluations:
        """Those saved in ``folder`` (none when there is no file), up to step ``up_to``."""
        path = Path(folder) / EVALUATIONS_FILE
        if not path.is_file():
            return cls([], [], [])
        with np.load(path) as saved:
            keep = saved["timesteps"] <= (np.inf if up_to is None else up_to)
            return cls(
                saved["timesteps"][keep].tolist(),
                saved["results"][keep].tolist(),
                saved["ep_lengths"][keep].tolist(),
            )

    def write(self, folder: Path) -> None:
        """``evaluations.npz`` in stable-baselines3's ``EvalCallback`` layout, atomically."""
        with atomic_path(Path(folder) / EVALUATIONS_FILE) as tmp, open(tmp, "wb") as out:
            np.savez(
                out,
                timesteps=np.asarray(self.steps, dtype=np.int64),
                results=np.asarray(self.returns, dtype=np.float64),
                ep_lengths=np.asarray(self.lengths, dtype=np.int64),
            )

    def means(self) -> list[float]:
        return [float(np.mean(r)) for r in self.returns]

    def best(self) -> int | None:
        """The step of the evaluation with the highest mean return (the earliest on ties)."""
        return self.steps[int(np.argmax(self.means()))] if self.steps else None

    def best_mean(self) -> float:
        """The highest mean return so far (−∞ before the first evaluation)."""
        return max(self.means(), default=-np.inf)


class Validation(BaseCallback):
    """Evaluates the greedy policy ``act`` on ``episodes`` fixed episodes (seeds ``seed``,
    ``seed + 1``, …) at each load factor of ``loads`` (``None``: the scenario's load) at the
    start of training, every ``every`` env steps between rollouts, and at the end; writes the
    evaluations and each new best's weights into ``folder``. An evaluation's score is its mean
    return over all of those episodes."""

    def __init__(
        self,
        act: Actor,
        env_config: EnvConfig,
        folder: Path,
        every: int,
        episodes: int,
        seed: int,
        loads: Sequence[float | None] = (None,),
    ):
        super().__init__()
        self.act, self.env_config, self.folder = act, env_config, Path(folder)
        self.every, self.episodes, self.seed = every, episodes, seed
        self.loads = tuple(loads)
        self.evaluations = Evaluations([], [], [])

    def _on_training_start(self) -> None:
        start = self.model.num_timesteps
        self.folder.mkdir(parents=True, exist_ok=True)
        self.evaluations = Evaluations.read(self.folder, up_to=start)
        for step, path in saved_weights(self.folder).items():
            if step > start:
                path.unlink()  # written after the checkpoint this run resumes from
        if start not in self.evaluations.steps:
            self.evaluate()

    def _on_rollout_start(self) -> None:
        last = self.evaluations.steps[-1] if self.evaluations.steps else 0
        if self.every > 0 and self.model.num_timesteps - last >= self.every:
            self.evaluate()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.model.num_timesteps not in self.evaluations.steps:
            self.evaluate()

    def evaluate(self) -> None:
        """Play the episodes, record them, and keep the weights if they are a new best."""
        step = int(self.model.num_timesteps)
        runs = [run for load in self.loads for run in self._play(load)]
        returns = [episode_return for episode_return, _ in runs]
        new_best = float(np.mean(returns)) > self.evaluations.best_mean()
        self.evaluations.steps.append(step)
        self.evaluations.returns.append(returns)
        self.evaluations.lengths.append([steps for _, steps in runs])
        if new_best:
            tensors = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
            with atomic_path(weights_file(self.folder, step)) as tmp:
                save_file(tensors, str(tmp))
        self.evaluations.write(self.folder)

    def _play(self, load: float | None) -> list[tuple[float, int]]:
        env = self.env_config.at_load(load).make()
        try:
            return [play(env, self.act, self.seed + i) for i in range(self.episodes)]
        finally:
            env.close()


def best_weights(folder: Path) -> tuple[int, dict[str, torch.Tensor]] | None:
    """The step and weights of the best evaluation saved in ``folder``, or ``None`` when the
    run kept none (no evaluations, or a folder of an older mtenv version)."""
    step = Evaluations.read(folder).best()
    if step is None or not weights_file(folder, step).is_file():
        return None
    return step, load_file(str(weights_file(folder, step)))
