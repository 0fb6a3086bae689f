"""Baselines that need no training."""

from __future__ import annotations

import numpy as np


class RandomPolicy:
    """Uniform over the valid actions (reject included): the floor every policy must beat."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        valid = np.flatnonzero(mask)
        return int(valid[self._rng.integers(len(valid))])


class RoundRobinPolicy:
    """Cycles through the serving actions ((plan, device) pairs) in order, skipping invalid ones;
    rejects only when nothing else is valid."""

    name = "round-robin"

    def __init__(self, seed: int | None = None):
        self._next = 0

    def reset(self, seed: int | None = None) -> None:
        self._next = 0

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        n_serving = len(mask) - 1
        for offset in range(n_serving):
            action = (self._next + offset) % n_serving
            if mask[action]:
                self._next = action + 1
                return action
        return n_serving
