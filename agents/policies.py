"""Policies by name, for the CLI and the benchmark harness."""

from __future__ import annotations

import difflib

import gymnasium as gym

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
from mtenv.agents.interfaces import BasePolicy
from mtenv.agents.oracle import OraclePolicy

POLICIES: dict[str, type[BasePolicy]] = {
    cls.name: cls
    for cls in (
        RandomPolicy,
        RoundRobinPolicy,
        LeastLoadedPolicy,
        FastestPolicy,
        MostAccuratePolicy,
        InfaasPolicy,
        CascadePolicy,
        ExpectedRewardPolicy,
        EpsilonGreedyPolicy,
        Ucb1Policy,
        Exp3Policy,
        OraclePolicy,
    )
}
"""Every policy that needs no training, by name; each is built as ``cls(env, seed)``."""

BASELINES: tuple[str, ...] = tuple(name for name, cls in POLICIES.items() if not cls.clairvoyant)
"""The deployable baselines, in table order: mask-only, then load- and card-based rules, then
bandits. The clairvoyant ``oracle`` is left out: it is an upper bound, not a baseline."""


def make_policy(name: str, env: gym.Env, seed: int | None = None) -> BasePolicy:
    """A fresh policy by name, built on ``env``; an unknown name raises ``ValueError``
    suggesting the closest."""
    try:
        cls = POLICIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, POLICIES, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)}){hint}") from None
    return cls(env, seed)
