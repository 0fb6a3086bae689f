"""The one interface every allocation policy implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Maps (observation, action mask) to an action.

    ``mask`` is the env's ``info["action_mask"]`` (``np.int8``, 1 = valid); the last action is
    always *reject* and always valid. ``reset`` starts an episode, seeding any randomness.
    """

    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int: ...
