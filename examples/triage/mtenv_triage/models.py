"""The triage zoo's four architectures (``torch.nn.Module`` builders).

Every model maps standardised inputs ``[B, 30]`` to logits ``[B, 2]`` (0 = benign,
1 = malignant). The simulator prices them by their FLOPs (Linear layers, counted on the module)
and weight bytes:

* ``screen``: a rule-based screening test. It reads three features (worst concave points, worst
  radius, worst texture), adds them with fixed weights and a threshold written in the data's own
  units, and divides by a temperature. It is an ``nn.Module`` whose "weights" (the feature
  indices, the rule's coefficients, the temperature) are a state dict like any other model's.
* ``linear``: logistic regression on the 30 features.
* ``mlp``: one hidden layer of 32 ReLU units.
* ``deep``: three hidden layers of 256 ReLU units.
"""

from __future__ import annotations

import torch
from torch import nn

from mtenv_triage.data import N_FEATURES

__all__ = ["ARCHITECTURES", "SCREEN_FEATURES", "Screen", "build"]

SCREEN_FEATURES = ("worst_concave_points", "worst_radius", "worst_texture")
"""The features the screening rule reads."""


class Screen(nn.Module):
    """``logit(malignant) - logit(benign) = (w · x[features] + b) / temperature``.

    ``features`` (int64 indices into the 30 inputs) select the rule's inputs; ``rule`` is a
    ``Linear(3, 1)`` holding its coefficients and threshold (set by :func:`mtenv_triage.train`
    from the rule written in raw units); ``temperature`` scales its confidence. The two logits are
    ``±score / 2``, so ``softmax`` gives ``sigmoid(score)`` for malignant.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("features", torch.zeros(len(SCREEN_FEATURES), dtype=torch.int64))
        self.rule = nn.Linear(len(SCREEN_FEATURES), 1)
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.rule(x.index_select(1, self.features)) / self.temperature
        return torch.cat([-score / 2, score / 2], dim=1)


def _screen() -> nn.Module:
    return Screen()


def _linear() -> nn.Module:
    return nn.Linear(N_FEATURES, 2)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, 32), nn.ReLU(), nn.Linear(32, 2))


def _deep() -> nn.Module:
    width = 256
    return nn.Sequential(
        nn.Linear(N_FEATURES, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, 2),
    )


ARCHITECTURES = {"screen": _screen, "linear": _linear, "mlp": _mlp, "deep": _deep}
"""Builder of each model, in the zoo's order (cheapest first)."""

DESCRIPTIONS = {
    "screen": "rule on worst concave points, worst radius and worst texture (3 features)",
    "linear": "logistic regression on the 30 features",
    "mlp": "one hidden layer of 32 ReLU units",
    "deep": "three hidden layers of 256 ReLU units, trained on noisy, masked inputs",
}


def build(name: str) -> nn.Module:
    """A freshly initialised module of model ``name``."""
    try:
        return ARCHITECTURES[name]()
    except KeyError:
        raise ValueError(
            f"unknown triage model {name!r}: expected one of {list(ARCHITECTURES)}"
        ) from None
