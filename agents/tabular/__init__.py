"""Tabular Q-learning, SARSA and expected SARSA over a discretised observation."""
