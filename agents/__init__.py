"""Allocation policies. Every policy is built on an env (``cls(env, seed)``), reads only the
env's static descriptions (feature names, action labels, the action catalog, the scenario's
reward weights) and, while it runs, the observation, the action mask and the per-task feedback
in ``info``; it returns one action. The clairvoyant oracle alone reads hidden state: an upper
bound, never a baseline."""

from __future__ import annotations

from mtenv.agents.baselines.bandits import EpsilonGreedyPolicy, Exp3Policy, Ucb1Policy
from mtenv.agents.baselines.heuristics import (
    CascadePolicy,
    ExpectedRewardPolicy,
    FastestPolicy,
    InfaasPolicy,
    LeastLoadedPolicy,
    MostAccuratePolicy,
)
from mtenv.agents.baselines.mask_only import RandomPolicy, RoundRobinPolicy
from mtenv.agents.interfaces import BasePolicy, Policy
from mtenv.agents.oracle import OraclePolicy
from mtenv.agents.policies import BASELINES, POLICIES, make_policy
from mtenv.envs.observation import ObservationLayout

__all__ = [
    "BASELINES",
    "POLICIES",
    "BasePolicy",
    "CascadePolicy",
    "EpsilonGreedyPolicy",
    "Exp3Policy",
    "ExpectedRewardPolicy",
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
