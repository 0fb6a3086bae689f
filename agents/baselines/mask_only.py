"""Baselines that read nothing but the action mask."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mtenv.agents.interfaces import BasePolicy


class RandomPolicy(BasePolicy):
    """Random (masked): uniform over the valid actions, reject included, drawn from the
    policy's seeded generator. The floor every policy must beat."""

    name = "random"

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        return int(valid[self.rng.integers(len(valid))])


class RoundRobinPolicy(BasePolicy):
    """Round-robin: cycles through the serving actions ((plan, device) pairs) in action order,
    starting after the last action it chose and skipping invalid ones; rejects only when no
    serving action is valid. Starts again from action 0 every episode."""

    name = "round-robin"

    def __init__(self, env: gym.Env | None = None, seed: int | None = None):
        super().__init__(env, seed)
        self._next = 0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._next = 0

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        n_serving = len(mask) - 1
        for offset in range(n_serving):
            action = (self._next + offset) % n_serving
            if mask[action]:
                self._next = action + 1
                return action
        return n_serving
