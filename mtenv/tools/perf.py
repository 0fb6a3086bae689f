"""The performance benchmark: one table of ratios, every rate in it measured in one process.

Absolute rates drift from machine to machine and run to run; ratios of rates measured in the same
process, their runs interleaved, are what the targets are about. The rows:

1. per-env step rate, quickstart with memoized inference ÷ Gymnasium's CartPole-v1 (both made
   with ``gymnasium.make``): the simulation itself is cheap (≥ 0.5);
2. live ÷ memoized inference, one quickstart env (≥ 0.5), with the share of live wall time spent
   in the models' forward passes;
3. the batched vector env (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``)
   at K = 1, 8, 64 envs, aggregate env steps/s ÷ CartPole-v1 (≥ 3 at K = 64);
4. the batched env at the largest K, live ÷ memoized (≥ 0.7);
5. per step, large_cluster (256 actions, an observation of 1,290 entries) ÷ quickstart (≥ 0.5);
6. peak resident memory over one long large_cluster episode (10⁶ tasks): growth after the first
   tenth ÷ the reading then (< 5 %);
7. MaskablePPO (``MlpPolicy``) training, env steps/s over ``model.learn`` with the batched env ÷
   with ``SubprocVecEnv`` (≥ 2), both built by ``make_vec_env``; SB3 PPO on CartPole-v1
   (``DummyVecEnv``) beside it for context.

Each rate is the median of ``repeats`` timed runs; one repeat runs every row's run once, so drift
hits all rows alike. The stepping policies cost the same on both sides: their randomness is
drawn before the timed loop. CartPole gets its actions drawn in advance; an mtenv env needs the
mask of each step, so it gets one uniform number u ∈ [0, 1) per step and takes the ⌊u·n⌋-th of
the n valid actions (:func:`pick_valid`, :func:`pick_valid_batch`): a masked uniform random
policy with no policy object in the loop.

Rows whose parts are missing (no batched env yet, no ``.[train]`` extra) read ``n/a`` with the
reason. :func:`run_perf` measures; :mod:`mtenv.tools.perf_table` builds the rows and the table from
what it measured, and only that.
"""

from __future__ import annotations

import math
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mtenv  # noqa: F401  (registers the ids)
from mtenv.core.inference import TORCH_THREADS_ENV
from mtenv.tools.perf_table import build_rows, format_report

__all__ = ["PerfSettings", "format_report", "pick_valid", "pick_valid_batch", "run_perf"]

QUICKSTART_ID = "mtenv/Quickstart-v0"
LARGE_ID = "mtenv/LargeCluster-v0"
MEMORY_SCENARIO = "large_cluster"
TRAIN_N_STEPS = 128
"""Steps per env per rollout in the training rows (8 envs × 128, as in the shipped recipes)."""
TRAIN_BATCH = 256


@dataclass(frozen=True)
class PerfSettings:
    """How much to measure. :meth:`quick` is a smoke run of every row in about a minute."""

    steps: int = 20_000
    """Env steps per timed run (a batched run takes ``steps // K`` vector steps, at least 1)."""
    repeats: int = 3
    batch_sizes: tuple[int, ...] = (1, 8, 64)
    tasks: int = 1_000_000
    """Tasks in the memory row's large_cluster episode."""
    train_steps: int = 4_096
    """Env steps of each timed ``model.learn`` (whole rollouts: rounded up)."""
    train_envs: int = 8
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> PerfSettings:
        """Small budgets: 2,000 steps, one repeat, K up to 8, 10⁴ tasks, one rollout."""
        base = {
            "steps": 2_000,
            "repeats": 1,
            "batch_sizes": (1, 8),
            "tasks": 10_000,
            "train_steps": 1_024,
        }
        return cls(**{**base, **overrides})


# --- the stepping policy -----------------------------------------------------------------------


def pick_valid(mask: np.ndarray, u: float) -> int:
    """The ⌊u·n⌋-th of the n valid actions of ``mask`` (u ∈ [0, 1)); 0 when none is valid."""
    valid = np.flatnonzero(mask)
    n = len(valid)
    return int(valid[min(int(u * n), n - 1)]) if n else 0


def pick_valid_batch(masks: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`pick_valid` for each row of ``masks`` ``[K, n]`` (bool or 0/1) with ``u[k]``."""
    seen = np.cumsum(masks != 0, axis=1, dtype=np.int32)
    n = seen[:, -1]
    rank = np.minimum((u * n).astype(np.int32), np.maximum(n - 1, 0))
    return np.argmax(seen > rank[:, None], axis=1)


# --- timed runs ------------------------------------------------------------------------------

Rate = tuple[float, "float | None"]
"""Steps per second, and the share of that wall time spent in forward passes (or None)."""


def _forward_seconds(env: Any) -> float | None:
    engine = getattr(env.unwrapped, "engine", None)
    return None if engine is None else engine.stats.seconds


def _share(before: float | None, env: Any, elapsed: float) -> float | None:
    after = _forward_seconds(env)
    return None if before is None or after is None else (after - before) / elapsed


def time_cartpole(env: gym.Env, steps: int, seed: int) -> Rate:
    actions = np.random.default_rng(seed).integers(2, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start), None


def time_single(env: gym.Env, steps: int, seed: int) -> Rate:
    """One mtenv env under the masked uniform policy, its numbers drawn in advance."""
    draws = np.random.default_rng(seed).random(steps).tolist()
    _, info = env.reset(seed=seed)
    before = _forward_seconds(env)
    start = time.perf_counter()
    for u in draws:
        _, _, terminated, truncated, info = env.step(pick_valid(info["action_mask"], u))
        if terminated or truncated:
            _, info = env.reset()
    elapsed = time.perf_counter() - start
    return steps / elapsed, _share(before, env, elapsed)


def time_batched(envs: gym.vector.VectorEnv, steps: int, seed: int) -> Rate:
    """A vector env (next-step autoreset) for ``steps // K`` vector steps: aggregate env steps/s."""
    k = envs.num_envs
    draws = np.random.default_rng(seed).random((max(steps // k, 1), k))
    _, infos = envs.reset(seed=seed)
    masks = infos["action_mask"] if "action_mask" in infos else envs.action_masks()
    before = _forward_seconds(envs)
    start = time.perf_counter()
    for u in draws:
        _, _, _, _, infos = envs.step(pick_valid_batch(masks, u))
        masks = infos["action_mask"]
    elapsed = time.perf_counter() - start
    return draws.size / elapsed, _share(before, envs, elapsed)


def time_learn(make_model: Callable[[int], Any], steps: int, seed: int) -> Rate:
    """Env steps per second of ``model.learn(steps)`` on a model built (untimed) for ``seed``."""
    model = make_model(seed)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - start), None


# --- building what is measured ----------------------------------------------------------------


class Unavailable(Exception):
    """A row cannot be measured here; the message says why."""


def make_batched(k: int, inference: str) -> gym.vector.VectorEnv:
    """The batched vector env of quickstart, ``k`` envs."""
    if gym.spec(QUICKSTART_ID).vector_entry_point is None:
        raise Unavailable(f"{QUICKSTART_ID} has no vector entry point (mtenv/envs/vector.py)")
    return gym.make_vec(
        QUICKSTART_ID, num_envs=k, vectorization_mode="vector_entry_point", inference=inference
    )


def make_training_vec(kind: str, n_envs: int, seed: int) -> Any:
    """The SB3 vec env of ``agents/ppo/rollouts.make_vec_env`` (``subproc`` or ``batched``) on
    quickstart with memoized inference."""
    try:
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        from mtenv.agents.interfaces import EnvConfig
        from mtenv.agents.ppo.rollouts import make_vec_env
    except ImportError as exc:
        raise Unavailable(f"needs the .[train] extra ({exc.name})") from exc
    config = EnvConfig(QUICKSTART_ID, {"inference": "memoized"})
    try:
        vec = make_vec_env(config, n_envs, kind, seed)
    except ValueError as exc:  # no vector entry point for the batched kind
        raise Unavailable(str(exc)) from exc
    if kind == "batched" and type(vec) in (DummyVecEnv, SubprocVecEnv):
        vec.close()
        raise Unavailable("make_vec_env has no 'batched' kind yet")
    return vec


def _ppo_builder(algorithm: Any, vec: Any, n_envs: int, train_steps: int) -> Callable:
    n_steps = max(1, min(TRAIN_N_STEPS, train_steps // n_envs))
    batch = min(TRAIN_BATCH, n_steps * n_envs)

    def build(seed: int) -> Any:
        from stable_baselines3.common.logger import Logger

        model = algorithm(
            "MlpPolicy", vec, n_steps=n_steps, batch_size=batch, seed=seed, device="cpu", verbose=0
        )
        model.set_logger(Logger(folder=None, output_formats=[]))  # else a temp folder per learn
        return model

    return build


def _training_runs(settings: PerfSettings, closers: list) -> dict[str, Callable | str]:
    """The three ``model.learn`` runs (or why each cannot run), each warmed up by one untimed
    rollout (workers fill their memo tables, torch initialises)."""
    names = ("train maskable subproc", "train maskable batched", "train ppo cartpole")
    try:
        from sb3_contrib import MaskablePPO
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError as exc:
        return dict.fromkeys(names, f"needs the .[train] extra ({exc.name})")
    n, steps, seed = settings.train_envs, settings.train_steps, settings.seed
    builders: dict[str, Callable | str] = {}
    for kind in ("subproc", "batched"):
        try:
            vec = make_training_vec(kind, n, seed)
        except Unavailable as exc:
            builders[f"train maskable {kind}"] = str(exc)
            continue
        closers.append(vec)
        builders[f"train maskable {kind}"] = _ppo_builder(MaskablePPO, vec, n, steps)
    cart = DummyVecEnv([lambda: gym.make("CartPole-v1")] * n)
    closers.append(cart)
    builders["train ppo cartpole"] = _ppo_builder(PPO, cart, n, steps)
    runs: dict[str, Callable | str] = {}
    for name, build in builders.items():
        if isinstance(build, str):
            runs[name] = build
            continue
        time_learn(build, 1, seed)  # one rollout
        runs[name] = lambda s, b=build: time_learn(b, steps, s)
    return runs


# --- the run -------------------------------------------------------------------------------


def run_perf(
    settings: PerfSettings | None = None, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure every row (the memory episode first, then ``repeats`` interleaved rounds of the
    rates); returns a JSON-safe report for :func:`format_report`."""
    settings = settings or PerfSettings()
    say = progress or (lambda _line: None)
    memory = run_memory(
        MEMORY_SCENARIO,
        tasks=settings.tasks,
        seed=settings.seed,
        progress=lambda done, mb: say(f"memory: {done:,} tasks, peak {mb:.0f} MB"),
    )
    closers: list = []
    runs: dict[str, Callable | str] = {}
    try:
        cart = gym.make("CartPole-v1")
        closers.append(cart)
        time_cartpole(cart, min(settings.steps, 2_000), settings.seed)  # warm-up
        runs["cartpole"] = lambda s: time_cartpole(cart, settings.steps, s)
        singles = {
            "quickstart memoized": (QUICKSTART_ID, "memoized"),
            "quickstart live": (QUICKSTART_ID, "live"),
            "large_cluster memoized": (LARGE_ID, "memoized"),
        }
        for name, (env_id, mode) in singles.items():
            env = gym.make(env_id, inference=mode)
            closers.append(env)
            env.unwrapped.engine.warm_up()
            time_single(env, min(settings.steps, 2_000), settings.seed)  # touch every path
            runs[name] = lambda s, e=env: time_single(e, settings.steps, s)
        k_max = max(settings.batch_sizes)
        batched = [(k, "memoized") for k in settings.batch_sizes] + [(k_max, "live")]
        for k, mode in batched:
            name = f"batched {mode} K={k}"
            try:
                envs = make_batched(k, mode)
            except Unavailable as exc:
                runs[name] = str(exc)
                continue
            closers.append(envs)
            engine = getattr(envs.unwrapped, "engine", None)
            if engine is not None:
                engine.warm_up()
            time_batched(envs, min(settings.steps, 2_000), settings.seed)
            runs[name] = lambda s, e=envs: time_batched(e, settings.steps, s)
        runs.update(_training_runs(settings, closers))
        samples: dict[str, list[Rate]] = {name: [] for name, run in runs.items() if callable(run)}
        for r in range(settings.repeats):
            say(f"round {r + 1}/{settings.repeats}")
            for name in samples:
                samples[name].append(runs[name](settings.seed + r))  # type: ignore[operator]
    finally:
        for thing in closers:
            thing.close()
    rates = {name: _median(values) for name, values in samples.items()}
    missing = {name: why for name, why in runs.items() if isinstance(why, str)}
    return {
        "settings": {**asdict(settings), "batch_sizes": list(settings.batch_sizes)},
        "machine": machine_info(),
        "rates": rates,
        "missing": missing,
        "memory": memory,
        "rows": build_rows(rates, missing, memory, settings.batch_sizes),
    }


def _median(values: list[Rate]) -> dict[str, Any]:
    shares = [s for _, s in values if s is not None]
    return {
        "steps_per_s": round(statistics.median(r for r, _ in values), 1),
        "forward_share": round(statistics.median(shares), 3) if shares else None,
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            found = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_threads_env": os.environ.get(TORCH_THREADS_ENV),
    }


# --- memory ------------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux ``/proc``; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    """The process's peak resident memory in MB (``VmHWM``; ``ru_maxrss`` without ``/proc``)."""
    try:
        with open("/proc/self/status") as status:
            found = re.search(r"^VmHWM:\s+(\d+) kB", status.read(), re.MULTILINE)
        if found:
            return int(found.group(1)) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _reset_peak_rss() -> bool:
    """Restart the peak at the current resident memory (Linux ≥ 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def run_memory(
    scenario: str = MEMORY_SCENARIO,
    tasks: int = 1_000_000,
    checkpoints: int = 10,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """One episode of ``tasks`` tasks with memoized inference under the masked uniform policy:
    the step rate and the process's peak and current resident memory at ``checkpoints`` evenly
    spaced points.

    The peak is restarted at the episode's start where Linux allows it, so that what ran before
    in the process does not hide growth. Growth is the peak at the end less the peak after the
    first tenth of the episode (the memo tables and pools are built by then), ``peak_growth``
    that growth ÷ the peak after the first tenth.
    """
    from mtenv.envs.task_allocation import TaskAllocationEnv

    env = TaskAllocationEnv(scenario, inference="memoized", episode_tasks=tasks)
    env.engine.warm_up()
    draws = np.random.default_rng(seed).random(tasks).tolist()
    _, info = env.reset(seed=seed)
    every = max(tasks // checkpoints, 1)
    peak_restarted = _reset_peak_rss()
    readings = [(0, _rss_mb(), _peak_rss_mb())]
    start = time.perf_counter()
    for step, u in enumerate(draws, 1):
        _, _, terminated, truncated, info = env.step(pick_valid(info["action_mask"], u))
        if step % every == 0 or terminated or truncated:
            readings.append((step, _rss_mb(), _peak_rss_mb()))
            if progress is not None:
                progress(step, readings[-1][2])
        if terminated or truncated:
            break
    elapsed = time.perf_counter() - start
    env.close()
    then = next(peak for n, _, peak in readings if n >= every)
    end = readings[-1][2]
    return {
        "scenario": scenario,
        "tasks": readings[-1][0],
        "steps_per_s": round(readings[-1][0] / elapsed, 1),
        "rss_mb": [[n, round(mb, 1)] for n, mb, _ in readings],
        "peak_rss_mb": [round(then, 1), round(end, 1)],
        "peak_growth_mb": round(end - then, 1),
        "peak_growth": round((end - then) / then, 4) if math.isfinite(then) and then else None,
        "peak_restarted": peak_restarted,
        "metrics_tasks": info["metrics"]["tasks"],
    }
