"""The work units of a sweep, run wherever a backend puts them (this process, a pool worker, a
Ray task): training one learner's run, and playing one evaluation episode.

Each unit is a plain picklable job in, plain data out; :func:`call` wraps a unit so that an
exception comes back as data (one-line error and traceback) rather than breaking the pool.
Nothing here writes ``results.jsonl``: the sweep's parent process is its only writer.
"""

from __future__ import annotations

import functools
import signal
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtenv.agents.training import MANIFEST, TrainingRequest, package_versions, train
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.tools.bench.sweep import ScenarioSpec, resolve_scenario, scenario_hash
from mtenv.tools.evaluation import flatten_metrics, run_episode

_ENV_CACHE_SIZE = 4
_envs: OrderedDict[tuple[str, float | None, int | None], TaskAllocationEnv] = OrderedDict()


@dataclass(frozen=True)
class TrainJob:
    """Train (or resume) ``agent`` on the base scenario ``scenario`` with ``seed`` into
    ``run_dir``; ``budget`` ``None`` is the hyperparameter file's."""

    scenario: str
    agent: str
    seed: int
    budget: int | None
    run_dir: str


@dataclass(frozen=True)
class EpisodeJob:
    """Play episode ``episode`` of cell ``(scenario.name, policy, seed)`` with env seed
    ``eval_seed``; ``spec`` is what loads the policy (a name or a run folder)."""

    scenario: ScenarioSpec
    episode_tasks: int | None
    policy: str
    spec: str
    seed: int
    episode: int
    eval_seed: int
    scenario_hash: str

    @property
    def cell(self) -> tuple[str, str, int]:
        return self.scenario.name, self.policy, self.seed


def init_worker() -> None:
    """Start of a pool worker: Ctrl-C is the parent's to handle (it ends the pool), and torch
    runs on one intra-op thread unless ``MTENV_TORCH_THREADS`` says otherwise."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from mtenv.core.inference import configure_torch_threads

    configure_torch_threads()


def call(unit: Callable[[Any], Any], job: Any) -> dict[str, Any]:
    """``unit(job)`` as ``{"ok": True, "value": ...}``, or ``{"ok": False, "error": one line,
    "traceback": text}`` when it raised."""
    try:
        return {"ok": True, "value": unit(job)}
    except Exception as exc:
        return {"ok": False, "error": one_line(exc), "traceback": traceback.format_exc()}


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- training --------------------------------------------------------------------------------


def train_run(job: TrainJob) -> dict[str, Any]:
    """Train the run, resuming it when a killed sweep left it unfinished. Returns its folder,
    CPU seconds and steps."""
    folder = Path(job.run_dir)
    if not (folder / MANIFEST).exists() and folder.exists():
        _clear(folder)  # killed before its manifest was written: nothing to resume
    result = train(
        TrainingRequest(
            scenario=job.scenario,
            agent=job.agent,
            out=folder,
            seed=job.seed,
            steps=job.budget,
            resume=(folder / MANIFEST).exists(),
            progress=False,
        )
    )
    return {"run_dir": str(folder), "cpu_s": result.cpu_time_s, "steps": result.steps}


def _clear(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)


# --- evaluation --------------------------------------------------------------------------------


def play_episode(job: EpisodeJob) -> dict[str, Any]:
    """One evaluation episode: the fields of its ``results.jsonl`` record that the worker
    measures (the parent adds the cell, the scenario hash and the training run)."""
    env = _env(job.scenario, job.episode_tasks)
    measured = scenario_hash(env.scenario)
    if measured != job.scenario_hash:
        raise RuntimeError(
            f"{job.scenario.name}: this worker resolves the scenario to {measured}, the sweep "
            f"to {job.scenario_hash}: is the same mtenv installed here?"
        )
    from mtenv.agents.saved import resolve_policy

    policy = resolve_policy(job.spec, env, job.seed)
    started = time.perf_counter()
    policy.reset(job.eval_seed)
    metrics = run_episode(env, policy, job.eval_seed)
    wall = time.perf_counter() - started
    latency = env.sim.metrics.latency
    cdf = None if latency.count == 0 else [latency.quantile(q / 100) * 1e3 for q in range(101)]
    return {
        "episode": job.episode,
        "eval_seed": job.eval_seed,
        "return": float(metrics["episode_return"]),
        "metrics": flatten_metrics(metrics),
        "latency_cdf_ms": cdf,
        "versions": versions(),
        "wall_s": wall,
    }


def _env(spec: ScenarioSpec, episode_tasks: int | None) -> TaskAllocationEnv:
    """The cell's env, built once per worker and kept for the next episodes (a few at a time):
    ``reset(seed)`` starts each episode afresh, so reuse changes no result."""
    key = (spec.base, spec.load, episode_tasks)
    env = _envs.pop(key, None)
    if env is None:
        env = TaskAllocationEnv(resolve_scenario(spec, episode_tasks), inference="memoized")
    _envs[key] = env
    while len(_envs) > _ENV_CACHE_SIZE:
        _, old = _envs.popitem(last=False)
        old.close()
    return env


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """The package versions of the process that ran the unit."""
    return package_versions()
