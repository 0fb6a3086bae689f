"""PPO and MaskablePPO (stable-baselines3 / sb3-contrib) as mtenv learners."""
