"""Allocation policies: baselines now, learners later. Every policy sees only what the Gymnasium
API gives (the observation and the action mask) and returns one action."""

from __future__ import annotations

from mtenv.agents.base import Policy
from mtenv.agents.baselines import RandomPolicy, RoundRobinPolicy
from mtenv.agents.registry import POLICIES, make_policy

__all__ = ["POLICIES", "Policy", "RandomPolicy", "RoundRobinPolicy", "make_policy"]
