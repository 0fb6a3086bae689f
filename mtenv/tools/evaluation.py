"""Running policies on scenarios and summarising episode metrics across episodes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from mtenv.agents.interfaces import Policy

# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

HEADLINE_METRICS = (
    "episode_return",
    "accuracy",
    "effective_accuracy",
    "slo_attainment",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "throughput",
    "goodput",
    "reject_rate",
    "cost_usd",
    "energy_j",
    "loads",
    "evictions",
    "escalation_rate",
)
"""The metrics the CLI table shows, in order."""


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and 95 % confidence half-width of one metric."""

    mean: float
    std: float
    ci95: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "ci95": self.ci95, "n": self.n}


def summarize(values: Iterable[float]) -> Summary:
    """Summary statistics with a Student-t 95 % interval (normal beyond 30 samples)."""
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Summary(mean, 0.0, math.nan, 1)
    std = float(x.std(ddof=1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return Summary(mean, std, t * std / math.sqrt(n), n)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metric dicts (``utilization``, ``plan_mix``, ...) as dotted scalar keys."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
        else:
            flat[name] = float(value)
    return flat


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int | None,
    recorder: Any = None,
) -> dict[str, Any]:
    """Play one episode: ``policy.act(observation, mask)`` picks each action, and after each
    step ``policy.observe(reward, info)`` sees its outcome. Returns the final
    ``info["metrics"]``. A :class:`~mtenv.tools.recording.RunRecorder` may watch it."""
    if recorder is not None:
        recorder.start_episode()
    obs, info = env.reset(seed=seed)
    while True:
        action = policy.act(obs, info["action_mask"])
        if recorder is not None:
            recorder.record_step(action)
        obs, reward, terminated, truncated, info = env.step(action)
        policy.observe(float(reward), info)
        if recorder is not None:
            recorder.record_settled()
        if terminated or truncated:
            return info["metrics"]


def evaluate_policy(
    env: gym.Env,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
    recorder: Any = None,
) -> list[dict[str, Any]]:
    """Run ``episodes`` episodes; episode ``i`` is seeded ``seed + i`` (env and policy alike)."""
    results = []
    for i in range(episodes):
        policy.reset(seed + i)
        metrics = run_episode(env, policy, seed + i, recorder)
        results.append(metrics)
        if progress is not None:
            progress(i, metrics)
    return results


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Summary]:
    """Per flattened metric, its summary across episodes."""
    flat = [flatten_metrics(r) for r in runs]
    keys = list(flat[0]) if flat else []
    return {k: summarize(f[k] for f in flat) for k in keys}
