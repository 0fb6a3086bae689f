"""The step-rate benchmark: mtenv against Gymnasium's CartPole-v1, measured in one process.

Absolute rates drift from machine to machine and run to run; the ratios measured in the same
process are what the targets are about:

* memoized ÷ CartPole ≥ 0.5 (the simulation itself is cheap);
* live ÷ memoized ≥ 0.5 (real batched inference costs no more than the simulation around it),
  with the share of live wall time spent inside the models' forward passes.

Each rate is the median of ``repeats`` timed runs, the runs of different envs interleaved so
that drift hits them alike. Both envs are made with ``gymnasium.make`` and driven by a uniform
random policy (masked for mtenv).
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mtenv  # noqa: F401  (registers the ids)


def _rate_cartpole(steps: int, seed: int) -> float:
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    actions = rng.integers(2, size=steps)
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def _rate_mtenv(env: gym.Env, steps: int, seed: int) -> tuple[float, float]:
    """Steps per second and the seconds spent inside forward passes during the timed loop."""
    engine = env.unwrapped.engine
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    forward_before = engine.stats.seconds
    start = time.perf_counter()
    for _ in range(steps):
        valid = np.flatnonzero(info["action_mask"])
        action = valid[int(rng.integers(len(valid)))]
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            _, info = env.reset()
    elapsed = time.perf_counter() - start
    return steps / elapsed, (engine.stats.seconds - forward_before) / elapsed


def run_perf(
    scenario: str = "quickstart", steps: int = 20_000, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Measure the three step rates and their ratios; returns a JSON-safe report."""
    env_id = "mtenv/TaskAllocation-v0"
    memo_env = gym.make(env_id, scenario=scenario, inference="memoized")
    live_env = gym.make(env_id, scenario=scenario, inference="live")
    for env in (memo_env, live_env):  # warm-up: load models, fill the memo, JIT nothing
        _rate_mtenv(env, min(steps, 2_000), seed)
    cart, memo, live, share = [], [], [], []
    for r in range(repeats):
        cart.append(_rate_cartpole(steps, seed + r))
        memo.append(_rate_mtenv(memo_env, steps, seed + r)[0])
        rate, forward_share = _rate_mtenv(live_env, steps, seed + r)
        live.append(rate)
        share.append(forward_share)
    memo_env.close()
    live_env.close()
    cartpole, memoized, live_rate = (statistics.median(x) for x in (cart, memo, live))
    return {
        "scenario": scenario,
        "steps": steps,
        "repeats": repeats,
        "cartpole_steps_per_s": round(cartpole),
        "memoized_steps_per_s": round(memoized),
        "live_steps_per_s": round(live_rate),
        "live_forward_share": round(statistics.median(share), 3),
        "memoized_over_cartpole": round(memoized / cartpole, 3),
        "live_over_memoized": round(live_rate / memoized, 3),
        "targets": {"memoized_over_cartpole": 0.5, "live_over_memoized": 0.5},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as the rows a closing note or README quotes."""
    t = report["targets"]
    return "\n".join(
        [
            f"mtenv perf · scenario {report['scenario']} · {report['steps']} steps × "
            f"{report['repeats']} repeats (median) · python {report['python']}, "
            f"torch {report['torch']} ({report['torch_threads']} threads)",
            f"CartPole-v1 (gymnasium.make)   {report['cartpole_steps_per_s']:>9,} steps/s",
            f"mtenv memoized                 {report['memoized_steps_per_s']:>9,} steps/s",
            f"mtenv live                     {report['live_steps_per_s']:>9,} steps/s"
            f"   ({report['live_forward_share']:.0%} of wall time in forward passes)",
            f"memoized / CartPole = {report['memoized_over_cartpole']:.3f}"
            f"   (target ≥ {t['memoized_over_cartpole']})",
            f"live / memoized     = {report['live_over_memoized']:.3f}"
            f"   (target ≥ {t['live_over_memoized']})",
        ]
    )
