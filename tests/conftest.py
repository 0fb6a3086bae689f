"""Shared test set-up: headless SDL, and scenarios built from small dictionaries."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import copy
from typing import Any

import pytest

from mtenv.core.schema import Scenario
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.io.scenario_files import parse_scenario

BASE_SCENARIO: dict[str, Any] = {
    "name": "tiny",
    "episode_tasks": 50,
    "models": ["linear", "cnn_wide"],
    "devices": [
        {"kind": "t4", "resident": ["linear"], "max_queue": 100_000},
        {"kind": "a100", "resident": ["cnn_wide"], "max_queue": 100_000},
    ],
    "workload": {
        "arrivals": {"process": "poisson", "rate": 200},
        "task_types": {"classify": {"slo_ms": 50}},
    },
    "inference": {"mode": "memoized"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (long studies) run only when asked for, with ``-m slow``."""
    if "slow" in config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="a long study; run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def registered_kwargs(env_id: str) -> dict[str, Any]:
    """What ``gym.make(env_id)`` needs besides the id: the any-scenario id requires a scenario
    (quickstart here); the per-scenario ids need nothing."""
    return {"scenario": "quickstart"} if env_id == "mtenv/TaskAllocation-v0" else {}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in recursively. Lists are replaced, and so is an
    ``arrivals`` block, whose fields depend on its process."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "arrivals":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_scenario(**changes: Any) -> Scenario:
    return parse_scenario(merge(BASE_SCENARIO, changes), label="tiny")


@pytest.fixture
def make_env():
    """Build a TaskAllocationEnv from BASE_SCENARIO with fields changed; closes them after."""
    made: list[TaskAllocationEnv] = []

    def factory(**changes: Any) -> TaskAllocationEnv:
        env = TaskAllocationEnv(tiny_scenario(**changes))
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()


class Episode:
    """What one played episode produced, step by step, plus every settled task."""

    def __init__(self) -> None:
        self.observations: list = []
        self.rewards: list[float] = []
        self.infos: list[dict[str, Any]] = []
        self.tasks: list = []
        self.metrics: dict[str, Any] = {}


def play(env: TaskAllocationEnv, choose, seed: int = 0) -> Episode:
    """Play one episode, ``choose(obs, mask, env) -> action``; records the settled tasks."""
    episode = Episode()
    obs, info = env.reset(seed=seed)
    episode.observations.append(obs)
    while True:
        obs, reward, terminated, truncated, info = env.step(choose(obs, info["action_mask"], env))
        episode.observations.append(obs)
        episode.rewards.append(reward)
        episode.infos.append(info)
        episode.tasks.extend(env.settled)
        assert not truncated  # the workload's end terminates; nothing here truncates
        if terminated:
            episode.metrics = info["metrics"]
            return episode


def first_valid(obs, mask, env) -> int:
    """Always the first valid serving action (reject only when nothing else is valid)."""
    return int(mask.nonzero()[0][0])
