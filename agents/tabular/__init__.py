"""Tabular Q-learning, SARSA and expected SARSA over a discretised observation."""

from mtenv.agents.tabular.hyperparameters import TabularHyperparameters
from mtenv.agents.tabular.learners import (
    TABULAR_LEARNERS,
    ExpectedSarsa,
    QLearning,
    Sarsa,
    TabularLearner,
)

__all__ = [
    "TABULAR_LEARNERS",
    "ExpectedSarsa",
    "QLearning",
    "Sarsa",
    "TabularHyperparameters",
    "TabularLearner",
]
