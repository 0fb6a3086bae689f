"""The step-rate benchmark: mtenv against Gymnasium's CartPole-v1, measured in one process.

Absolute rates drift from machine to machine and run to run; the ratios measured in the same
process are what the targets are about:

* memoized ÷ CartPole ≥ 0.5 (the simulation itself is cheap);
* live ÷ memoized ≥ 0.5 (real batched inference costs no more than the simulation around it),
  with the share of live wall time spent inside the models' forward passes,

on the quick scenario and on ``collaboration``, which offers every plan kind (ensembles,
cascades, the shared-trunk model) for two task types. :func:`run_memory` plays one long episode
(a million tasks on ``large_cluster`` by default) and reads the resident memory along the way:
it must stay flat.

Each rate is the median of ``repeats`` timed runs, the runs of different envs interleaved so
that drift hits them alike. Both envs are made with ``gymnasium.make`` and driven by a uniform
random policy (masked for mtenv).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mtenv  # noqa: F401  (registers the ids)
from mtenv.agents import RandomPolicy


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
    policy = RandomPolicy(env, seed)
    obs, info = env.reset(seed=seed)
    forward_before = engine.stats.seconds
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info["action_mask"]))
        if terminated or truncated:
            obs, info = env.reset()
    elapsed = time.perf_counter() - start
    return steps / elapsed, (engine.stats.seconds - forward_before) / elapsed


def run_perf(
    scenarios: tuple[str, ...] = ("quickstart", "collaboration"),
    steps: int = 20_000,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure CartPole's step rate and, per scenario, the memoized and live step rates, the
    live forward-pass share and the ratios; returns a JSON-safe report."""
    env_id = "mtenv/TaskAllocation-v0"
    envs = {
        (name, mode): gym.make(env_id, scenario=name, inference=mode)
        for name in scenarios
        for mode in ("memoized", "live")
    }
    for env in envs.values():  # warm-up: fill the memo tables, touch every code path once
        env.unwrapped.engine.warm_up()
        _rate_mtenv(env, min(steps, 2_000), seed)
    cart: list[float] = []
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in envs}
    shares: dict[str, list[float]] = {name: [] for name in scenarios}
    for r in range(repeats):
        cart.append(_rate_cartpole(steps, seed + r))
        for (name, mode), env in envs.items():
            rate, share = _rate_mtenv(env, steps, seed + r)
            rates[name, mode].append(rate)
            if mode == "live":
                shares[name].append(share)
    for env in envs.values():
        env.close()
    cartpole = statistics.median(cart)
    rows = []
    for name in scenarios:
        memo = statistics.median(rates[name, "memoized"])
        live = statistics.median(rates[name, "live"])
        rows.append(
            {
                "scenario": name,
                "memoized_steps_per_s": round(memo),
                "live_steps_per_s": round(live),
                "live_forward_share": round(statistics.median(shares[name]), 3),
                "memoized_over_cartpole": round(memo / cartpole, 3),
                "live_over_memoized": round(live / memo, 3),
            }
        )
    return {
        "steps": steps,
        "repeats": repeats,
        "cartpole_steps_per_s": round(cartpole),
        "scenarios": rows,
        "targets": {"memoized_over_cartpole": 0.5, "live_over_memoized": 0.5},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as the rows a closing note or README quotes."""
    t = report["targets"]
    lines = [
        f"mtenv perf · {report['steps']} steps × {report['repeats']} repeats (median) · "
        f"python {report['python']}, torch {report['torch']} ({report['torch_threads']} threads)",
        f"CartPole-v1 (gymnasium.make): {report['cartpole_steps_per_s']:,} steps/s",
        f"{'scenario':<15}{'memoized/s':>11}{'live/s':>9}{'in forward':>11}"
        f"{'memo/CartPole':>15}{'live/memo':>11}",
    ]
    for row in report["scenarios"]:
        lines.append(
            f"{row['scenario']:<15}{row['memoized_steps_per_s']:>11,}{row['live_steps_per_s']:>9,}"
            f"{row['live_forward_share']:>11.0%}{row['memoized_over_cartpole']:>15.3f}"
            f"{row['live_over_memoized']:>11.3f}"
        )
    lines.append(
        f"targets: memoized/CartPole ≥ {t['memoized_over_cartpole']}, "
        f"live/memoized ≥ {t['live_over_memoized']}"
    )
    return "\n".join(lines)


def _rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux ``/proc``; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def run_memory(
    scenario: str = "large_cluster",
    tasks: int = 1_000_000,
    checkpoints: int = 10,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """One episode of ``tasks`` tasks with memoized inference under a masked random policy:
    the step rate and the process's resident memory at evenly spaced points of the episode.

    Memory is flat when the last reading is no higher than the reading after the first tenth of
    the episode (the tables and pools are built by then) plus a small allowance; the report
    gives both readings and their difference.
    """
    from mtenv.envs.task_allocation import TaskAllocationEnv

    env = TaskAllocationEnv(scenario, inference="memoized", episode_tasks=tasks)
    env.engine.warm_up()
    policy = RandomPolicy(env, seed)
    obs, info = env.reset(seed=seed)
    every = max(tasks // checkpoints, 1)
    readings = [(0, _rss_mb())]
    start = time.perf_counter()
    for step in range(1, tasks + 1):
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info["action_mask"]))
        if step % every == 0 or terminated or truncated:
            readings.append((step, _rss_mb()))
            if progress is not None:
                progress(step, readings[-1][1])
        if terminated or truncated:
            break
    elapsed = time.perf_counter() - start
    env.close()
    after_first_tenth = next(mb for n, mb in readings if n >= every)
    return {
        "scenario": scenario,
        "tasks": readings[-1][0],
        "memoized_steps_per_s": round(readings[-1][0] / elapsed),
        "rss_mb": [[n, round(mb, 1)] for n, mb in readings],
        "rss_growth_after_first_tenth_mb": round(readings[-1][1] - after_first_tenth, 1),
        "metrics_tasks": info["metrics"]["tasks"],
    }


def format_memory_report(report: dict[str, Any]) -> str:
    rows = ", ".join(f"{n:,}: {mb:.0f} MB" for n, mb in report["rss_mb"])
    return "\n".join(
        [
            f"mtenv perf memory · scenario {report['scenario']} · {report['tasks']:,} tasks "
            f"(memoized) · {report['memoized_steps_per_s']:,} steps/s",
            f"resident memory by tasks done: {rows}",
            f"growth after the first tenth: {report['rss_growth_after_first_tenth_mb']:+.1f} MB",
        ]
    )
