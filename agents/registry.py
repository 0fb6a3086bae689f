"""Policies by name, for the CLI and the benchmark harness."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from mtenv.agents.base import Policy
from mtenv.agents.baselines import RandomPolicy, RoundRobinPolicy

POLICIES: dict[str, Callable[[int | None], Policy]] = {
    RandomPolicy.name: RandomPolicy,
    RoundRobinPolicy.name: RoundRobinPolicy,
}


def make_policy(name: str, seed: int | None = None) -> Policy:
    """A fresh policy by name; an unknown name raises ``ValueError`` suggesting the closest."""
    try:
        factory = POLICIES[name]
    except KeyError:
        close = difflib.get_close_matches(name, POLICIES, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)}){hint}") from None
    return factory(seed)
