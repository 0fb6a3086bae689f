"""The clairvoyant oracle: an upper bound for papers, never a policy to deploy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mtenv.agents.baselines.heuristics import CatalogPolicy
from mtenv.envs.observation import argbest


class OraclePolicy(CatalogPolicy):
    """CLAIRVOYANT UPPER BOUND: knows, before choosing, which plans would answer the task right.

    It calls ``env.unwrapped.clairvoyant_correct()``, which runs every plan on the task's real
    input and compares with its true label: hidden state no deployable allocator has. Report it
    as an upper bound (label it so in tables), never as a baseline to beat fairly. It works only
    in-process, on the env it was built on (not through vector envs or subprocess workers).

    Rule: among the valid actions expected on time (``est ≤ 1``) whose plan answers the task
    correctly, the cheapest (lower reward ``penalty``, then lower ``cost_usd``, then lower
    ``est``, then lowest action index). If no correct plan is on time: the cheapest on-time
    action (same order). If nothing is on time: the valid action with the lowest ``est``.
    Rejects only when no serving action is valid.
    """

    name = "oracle"
    clairvoyant = True

    def __init__(self, env: gym.Env | None = None, seed: int | None = None):
        super().__init__(env, seed)
        self._env = env.unwrapped

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        s = self.situation(observation, mask)
        c = self.catalog
        correct = self._env.clairvoyant_correct()[:, None]
        for candidates in (s.on_time & correct, s.on_time):
            action = argbest(candidates, c.penalty, c.cost_usd, s.est)
            if action >= 0:
                return action
        return self.fastest(s)
