"""Clipper-style model selection: multi-armed bandits over plans, learned from real outcomes.

Each policy keeps one bandit per task type whose arms are the plans serving that type. At a
decision the task type's bandit picks a plan among those with a valid device (arms with none are
skipped); the device is the plan's valid device with the lowest ``est`` (expected completion
÷ SLO; ties: lowest device index). After every step, :meth:`PlanBandit.observe` reads
``info["feedback"]``: each settled task that an arm served credits that arm with the task's own
reward (right or wrong, on time or late, its cost), so an arm learns from real forward passes
and real queueing, whenever its tasks finish. Rejected tasks teach nothing.

Rewards are mapped to ``[0, 1]`` by the running minimum and maximum of the per-task rewards
observed so far in the episode, ``(r − min) / (max − min)`` (0.5 while they are all equal).
Learning is online within an episode: :meth:`PlanBandit.reset` forgets everything and reseeds.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from mtenv.agents.baselines.heuristics import CatalogPolicy
from mtenv.envs.observation import argbest


class PlanBandit(CatalogPolicy):
    """The shared machinery: arms per task type, counts, reward sums, normalisation."""

    def __init__(self, env: gym.Env | None = None, seed: int | None = None):
        super().__init__(env, seed)
        self._forget()

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._forget()

    def _forget(self) -> None:
        shape = (len(self.catalog.task_types), self.catalog.n_plans)
        self.pulls = np.zeros(shape)
        """Times each (task type, plan) arm was chosen."""
        self.counts = np.zeros(shape)
        """Settled tasks credited to each arm."""
        self.sums = np.zeros(shape)
        """Sum of the raw rewards credited to each arm."""
        self.low, self.high = math.inf, -math.inf

    def normalised(self, reward: float | np.ndarray) -> float | np.ndarray:
        """``reward`` mapped to ``[0, 1]`` by the running minimum and maximum."""
        if not self.high > self.low:
            return 0.5 if np.ndim(reward) == 0 else np.full(np.shape(reward), 0.5)
        return (reward - self.low) / (self.high - self.low)

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        """The task type's bandit picks a plan; the plan runs on its fastest valid device."""
        s = self.situation(observation, mask)
        arms = s.valid.any(axis=1) & self.catalog.serves[:, s.task_type]
        if not arms.any():
            return self.reject_action
        plan = self.choose(s.task_type, arms)
        self.pulls[s.task_type, plan] += 1
        return self.on_fastest_device(plan, s)

    def observe(self, reward: float, info: dict[str, Any]) -> None:
        """Credit each arm with the rewards of its tasks settled in this step."""
        feedback = info["feedback"]
        served = feedback["action"] != self.reject_action
        plans = self.catalog.plan_of[feedback["action"][served]]
        for t, plan, r in zip(
            feedback["task_type"][served].tolist(),
            plans.tolist(),
            feedback["reward"][served].tolist(),
            strict=True,
        ):
            self.low, self.high = min(self.low, r), max(self.high, r)
            self.counts[t, plan] += 1
            self.sums[t, plan] += r
            self.credit(t, plan, r)

    def untried_first(self, task_type: int, arms: np.ndarray) -> int:
        """An arm with no credited task yet (the least chosen, ties: lowest plan index), or
        ``-1`` once every available arm has been credited."""
        return argbest(arms & (self.counts[task_type] == 0), self.pulls[task_type])

    def choose(self, task_type: int, arms: np.ndarray) -> int:  # pragma: no cover
        """The plan to play among the available ``arms`` (a ``[n_plans]`` bool mask)."""
        raise NotImplementedError

    def credit(self, task_type: int, plan: int, reward: float) -> None:
        """Learn from one settled task (counts and sums are already updated)."""
        return None


class EpsilonGreedyPolicy(PlanBandit):
    """ε-greedy over plans, one bandit per task type (Clipper-style model selection).

    Rule: with probability ε (0.1) a uniformly random available arm; otherwise each available
    arm not yet credited with a settled task is tried first (the least chosen, ties: lowest plan
    index), then the arm with the highest mean reward (ties: lowest plan index). The device is
    the plan's valid device with the lowest ``est``. Rejects only when no arm has a valid device.
    """

    name = "eps-greedy"

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, epsilon: float = 0.1):
        super().__init__(env, seed)
        self.epsilon = epsilon

    def choose(self, task_type: int, arms: np.ndarray) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.choice(np.flatnonzero(arms)))
        untried = self.untried_first(task_type, arms)
        if untried >= 0:
            return untried
        means = self.sums[task_type] / np.maximum(self.counts[task_type], 1)
        return argbest(arms, -means)


class Ucb1Policy(PlanBandit):
    """UCB1 over plans, one bandit per task type.

    Rule: each available arm not yet credited with a settled task is tried first (the least
    chosen, ties: lowest plan index); then the arm maximising ``r̄ᵢ + c·√(ln N / nᵢ)`` with
    ``r̄ᵢ`` its mean normalised reward, ``nᵢ`` its credited tasks, ``N`` the bandit's credited
    tasks and ``c = √2`` (ties: lowest plan index). The device is the plan's valid device with
    the lowest ``est``. Rejects only when no arm has a valid device.
    """

    name = "ucb1"

    def __init__(
        self, env: gym.Env | None = None, seed: int | None = None, c: float = math.sqrt(2.0)
    ):
        super().__init__(env, seed)
        self.c = c

    def choose(self, task_type: int, arms: np.ndarray) -> int:
        untried = self.untried_first(task_type, arms)
        if untried >= 0:
            return untried
        n = self.counts[task_type]
        safe = np.maximum(n, 1)
        means = self.normalised(self.sums[task_type] / safe)
        bonus = self.c * np.sqrt(math.log(max(n.sum(), 1.0)) / safe)
        return argbest(arms, -(means + bonus))


class Exp3Policy(PlanBandit):
    """Exp3 over plans, one bandit per task type (the adversarial bandit Clipper uses).

    Rule: arm i is drawn with probability ``pᵢ = (1 − γ)·wᵢ / Σⱼ wⱼ + γ / K`` over the ``K``
    available arms, ``γ = 0.1``. A settled task of arm i with normalised reward ``x`` updates
    ``wᵢ ← wᵢ · exp(γ · x / (pᵢ · K_t))`` (importance-weighted; ``K_t`` is the number of arms of
    the task type, ``pᵢ`` the probability with which that arm was drawn, matched to its tasks in
    the order they were dispatched). The device is the plan's valid device with the lowest
    ``est``. Rejects only when no arm has a valid device.
    """

    name = "exp3"

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, gamma: float = 0.1):
        super().__init__(env, seed)
        self.gamma = gamma
        self._n_arms = self.catalog.serves.sum(axis=0)

    def _forget(self) -> None:
        super()._forget()
        self.log_weights = np.zeros_like(self.sums)
        self._drawn_with: dict[tuple[int, int], deque[float]] = {}

    def probabilities(self, task_type: int, arms: np.ndarray) -> np.ndarray:
        """``[n_plans]`` the probability of drawing each arm now (0 outside ``arms``)."""
        logw = np.where(arms, self.log_weights[task_type], -np.inf)
        w = np.exp(logw - logw[arms].max())
        k = arms.sum()
        return np.where(arms, (1.0 - self.gamma) * w / w.sum() + self.gamma / k, 0.0)

    def choose(self, task_type: int, arms: np.ndarray) -> int:
        p = self.probabilities(task_type, arms)
        plan = int(self.rng.choice(len(p), p=p / p.sum()))
        self._drawn_with.setdefault((task_type, plan), deque()).append(float(p[plan]))
        return plan

    def credit(self, task_type: int, plan: int, reward: float) -> None:
        drawn = self._drawn_with.get((task_type, plan))
        p = drawn.popleft() if drawn else 1.0
        x = float(self.normalised(reward))
        self.log_weights[task_type, plan] += self.gamma * x / (p * self._n_arms[task_type])
