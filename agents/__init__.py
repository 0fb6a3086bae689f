"""Allocation policies. Every policy is built on an env (``cls(env, seed)``), reads only the
env's static descriptions (feature names, action labels, the action catalog) and, while it
runs, the observation, the action mask and the per-task feedback in ``info``; it returns one
action. The clairvoyant oracle alone reads hidden state: an upper bound, never a baseline."""

from __future__ import annotations

from mtenv.agents.bandits import EpsilonGreedyPolicy, Exp3Policy, Ucb1Policy
from mtenv.agents.base import BasePolicy, Policy
from mtenv.agents.baselines import RandomPolicy, RoundRobinPolicy
from mtenv.agents.features import ObservationLayout
from mtenv.agents.heuristics import (
    CascadePolicy,
    FastestPolicy,
    InfaasPolicy,
    LeastLoadedPolicy,
    MostAccuratePolicy,
)
from mtenv.agents.oracle import OraclePolicy
from mtenv.agents.registry import BASELINES, POLICIES, make_policy

__all__ = [
    "BASELINES",
    "POLICIES",
    "BasePolicy",
    "CascadePolicy",
    "EpsilonGreedyPolicy",
    "Exp3Policy",
    "FastestPolicy",
    "InfaasPolicy",
    "LeastLoadedPolicy",
    "MostAccuratePolicy",
    "ObservationLayout",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "RoundRobinPolicy",
    "Ucb1Policy",
    "make_policy",
]
