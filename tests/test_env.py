"""The Gymnasium contract of every registered mtenv id, and the env's own promises.

Every per-id test makes short episodes (``episode_tasks=SHORT``) with memoized inference, so the
contract is checked on every shipped scenario, the 64-GPU one included, in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import first_valid, play, registered_kwargs, tiny_scenario
from gymnasium.utils.env_checker import check_env, data_equivalence

import mtenv
from mtenv.core.traces import load_counts_csv, load_timestamps_csv
from mtenv.envs.observation import ObservationLayout
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.io.scenario_files import load_scenario

ENV_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("mtenv/"))
REPO = Path(__file__).resolve().parents[1]
SCENARIO_DIR = REPO / "scenarios"
SHORT = 50  # tasks per episode in the per-id tests
HEADLINE_METRICS = (
    "tasks", "accuracy", "effective_accuracy", "slo_attainment", "latency_p50_ms",
    "latency_p95_ms", "latency_p99_ms", "throughput", "goodput", "reject_rate", "drop_rate",
    "cost_usd", "gpu_seconds", "energy_j", "utilization", "plan_mix", "loads", "evictions",
    "episode_return",
)  # fmt: skip

# Warnings the checkers may raise that say nothing wrong about the env.
ALLOWED_WARNINGS = (
    "A Box observation space maximum value is infinity",  # not ours: we clip, kept for safety
)


def _make(env_id: str, **kwargs) -> gym.Env:
    """A short, memoized episode of ``env_id``."""
    return gym.make(
        env_id, inference="memoized", episode_tasks=SHORT, **registered_kwargs(env_id), **kwargs
    )


def test_every_shipped_scenario_has_an_id():
    assert "mtenv/TaskAllocation-v0" in ENV_IDS
    assert set(mtenv.ENV_IDS) <= set(ENV_IDS)


def test_every_scenario_file_has_a_registered_id_and_loads():
    files = sorted(SCENARIO_DIR.glob("*.yaml"))
    assert len(files) >= 11
    assert sorted(mtenv.ENV_IDS.values()) == [f.stem for f in files]
    for file in files:
        env_id = mtenv.scenario_env_id(file.stem)
        assert mtenv.ENV_IDS[env_id] == file.stem
        assert gym.spec(env_id).kwargs == {"scenario": file.stem}
        scenario = load_scenario(file.stem)
        assert scenario.name == file.stem
        assert "_" in file.stem or file.stem.isalpha()  # underscores, never dashes


@pytest.mark.parametrize(
    ("name", "env_id"),
    [
        ("edge_burst", "mtenv/EdgeBurst-v0"),
        ("quickstart", "mtenv/Quickstart-v0"),
        ("collaboration", "mtenv/Collaboration-v0"),
        ("high_stakes_triage", "mtenv/HighStakesTriage-v0"),
    ],
)
def test_scenario_ids_are_camel_case(name, env_id):
    assert mtenv.scenario_env_id(name) == env_id
    assert mtenv.ENV_IDS[env_id] == name


def test_importing_mtenv_does_not_import_torch_or_the_simulator(tmp_path):
    code = (
        "import sys, mtenv; "
        "heavy = [m for m in ('torch', 'mtenv.envs.task_allocation', 'mtenv.core.simulator', "
        "'pydantic') "
        "if m in sys.modules]; "
        "print(len(mtenv.ENV_IDS), heavy)"
    )
    out = subprocess.run(
        # From elsewhere, so that the installed package is imported, not the source folder.
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split(maxsplit=1)
    assert int(out[0]) == len(mtenv.ENV_IDS)
    assert out[1].strip() == "[]"


def test_shipped_traces_are_small_readable_and_packaged():
    traces = sorted((SCENARIO_DIR / "traces").glob("*.csv"))
    assert {t.name for t in traces} >= {
        "azure2021_invocations.csv",
        "azure2019_minute_counts.csv",
    }
    globs = _scenario_package_data()
    for trace in traces:
        assert trace.stat().st_size < 200_000
        assert any(trace.relative_to(SCENARIO_DIR).match(g) for g in globs), trace
    invocations = load_timestamps_csv(SCENARIO_DIR / "traces" / "azure2021_invocations.csv")
    assert invocations.size > 1000
    per_minute = load_counts_csv(SCENARIO_DIR / "traces" / "azure2019_minute_counts.csv")
    assert per_minute.size > 1000 and per_minute[-1] <= 1440 * 60


def test_make_traces_is_deterministic_and_wrote_the_shipped_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_traces", REPO / "scripts/make_traces.py")
    make_traces = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_traces)
    make_traces.main(["--out", str(tmp_path)])
    written = sorted(tmp_path.glob("*.csv"))
    assert written
    for file in written:
        assert file.read_bytes() == (SCENARIO_DIR / "traces" / file.name).read_bytes()


def _scenario_package_data() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-data"]["mtenv.scenarios"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_short_random_episode_reports_the_headline_metrics(env_id):
    env = _make(env_id)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps = 0
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        assert not truncated and math.isfinite(reward)
        if terminated:
            break
    assert steps == SHORT
    metrics = info["metrics"]
    missing = [key for key in HEADLINE_METRICS if key not in metrics]
    assert missing == []
    assert metrics["tasks"] == SHORT
    assert math.isfinite(metrics["episode_return"])
    assert 0 <= metrics["effective_accuracy"] <= metrics["accuracy"] <= 1
    assert 0 <= metrics["reject_rate"] <= 1
    env.close()


def test_episode_tasks_overrides_the_scenario_length():
    env = gym.make("mtenv/EdgeBurst-v0", inference="memoized", episode_tasks=7)
    assert env.unwrapped.scenario.episode_tasks == 7
    assert load_scenario("edge_burst").episode_tasks != 7
    obs, info = env.reset(seed=0)
    for step in range(1, 8):
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.reject_action)
        assert terminated == (step == 7) and not truncated
    assert info["metrics"]["tasks"] == 7


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "50"])
def test_episode_tasks_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="episode_tasks"):
        TaskAllocationEnv("quickstart", episode_tasks=bad)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    env = _make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(ALLOWED_WARNINGS)]
    assert unexpected == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = _make(env_id).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(env, warn=True)
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(ALLOWED_WARNINGS)]
    assert unexpected == []


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id):
    def rollout():
        env = _make(env_id)
        rng = np.random.default_rng(1)
        obs, info = env.reset(seed=42)
        steps = [(obs, info)]
        while True:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, reward, terminated, truncated, info = env.step(action)
            steps.append((obs, reward, terminated, truncated, info))
            if terminated or truncated:
                return steps

    first, second = rollout(), rollout()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert data_equivalence(a, b)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_round_trips_through_json(env_id):
    spec = gym.spec(env_id)
    assert json.loads(spec.to_json())["id"] == env_id
    assert gym.envs.registration.EnvSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickled_env_continues_identically(env_id):
    env = _make(env_id)
    obs, info = env.reset(seed=7)
    for _ in range(10):
        obs, *_, info = env.step(first_valid(obs, info["action_mask"], env))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(30):
        action = first_valid(obs, info["action_mask"], env)
        step_a = env.step(action)
        step_b = clone.step(action)
        assert data_equivalence(step_a, step_b)
        obs, info = step_a[0], step_a[4]
        if step_a[3]:
            break


def test_async_vector_env_runs():
    envs = gym.make_vec(
        "mtenv/Quickstart-v0", num_envs=2, vectorization_mode="async", inference="memoized"
    )
    obs, info = envs.reset(seed=0)
    assert obs.shape == (2, *envs.single_observation_space.shape)
    for _ in range(5):
        actions = np.array([np.flatnonzero(m)[0] for m in info["action_mask"]])
        obs, reward, terminated, truncated, info = envs.step(actions)
    assert reward.shape == (2,)
    envs.close()


def test_live_and_memoized_inference_give_identical_episodes(make_env):
    live = play(make_env(inference={"mode": "live"}, episode_tasks=150), _random_masked(0), seed=11)
    memo = play(
        make_env(inference={"mode": "memoized"}, episode_tasks=150), _random_masked(0), seed=11
    )
    assert data_equivalence(live.observations, memo.observations)
    assert live.rewards == memo.rewards
    assert live.metrics == memo.metrics
    assert [t.answer for t in live.tasks] == [t.answer for t in memo.tasks]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_memoized_answer_tables_serve_like_the_batch_path(env_id):
    """The memoized fast path reads each task's answer from its plan's answers on the whole
    pool; forced through the general path (outputs per batch, then served), the same episode
    gives the same observations, rewards and metrics, on every scenario."""

    def episode(tables: bool):
        env = _make(env_id).unwrapped
        env.sim.runner._memoized = tables
        return play(env, _random_masked(3), seed=5)

    fast, general = episode(tables=True), episode(tables=False)
    assert data_equivalence(fast.observations, general.observations)
    assert fast.rewards == general.rewards
    assert fast.metrics == general.metrics


def _random_masked(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, mask, env: int(rng.choice(np.flatnonzero(mask)))


def test_episode_terminates_after_the_scenario_tasks(make_env):
    env = make_env(episode_tasks=37)
    episode = play(env, first_valid)
    assert len(episode.rewards) == 37
    metrics = episode.metrics
    assert metrics["tasks"] == 37
    assert (
        metrics["completed"] + round(metrics["reject_rate"] * 37) + round(metrics["drop_rate"] * 37)
        == 37
    )
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def _five_rejections(**kwargs: Any) -> tuple[list[tuple[bool, bool]], dict[str, Any]]:
    """``(terminated, truncated)`` of five rejecting steps of quickstart, and the last info."""
    env = gym.make("mtenv/Quickstart-v0", inference="memoized", **kwargs)
    _, info = env.reset(seed=0)
    flags = []
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.unwrapped.reject_action)
        flags.append((terminated, truncated))
    return flags, info


def test_a_time_limit_truncates_and_the_workload_end_terminates():
    flags, info = _five_rejections(max_episode_steps=5)
    assert flags == [(False, False)] * 4 + [(False, True)]
    assert "metrics" not in info

    flags, info = _five_rejections(episode_tasks=5)
    assert flags == [(False, False)] * 4 + [(True, False)]
    assert info["metrics"]["tasks"] == 5


def test_load_scale_multiplies_the_arrival_rate_and_keeps_the_workload():
    """Twice the load: the same tasks (types, inputs, priorities) arriving at half the times."""

    def arrivals(load_scale):
        env = TaskAllocationEnv(
            "edge_burst", inference="memoized", episode_tasks=50, load_scale=load_scale
        )
        env.reset(seed=3)
        tasks = []
        for _ in range(50):
            task = env._task
            tasks.append((task.arrival, task.type, task.input_id, task.priority))
            env.step(env.reject_action)
        return tasks

    base, double = arrivals(None), arrivals(2.0)
    assert [t[1:] for t in base] == [t[1:] for t in double]
    np.testing.assert_allclose([t[0] / 2 for t in base], [t[0] for t in double], rtol=1e-12)
    with pytest.raises(ValueError, match="load_scale: expected a number > 0"):
        TaskAllocationEnv("quickstart", load_scale=0)


def test_episode_metrics_have_stable_keys(make_env):
    metrics = play(make_env(), first_valid).metrics
    for key in (
        "accuracy", "effective_accuracy", "slo_attainment", "latency_p50_ms", "latency_p95_ms",
        "latency_p99_ms", "throughput", "goodput", "reject_rate", "cost_usd", "gpu_seconds",
        "energy_j", "episode_return", "utilization", "plan_mix", "loads", "evictions", "per_class",
        "macro_f1",
    ):  # fmt: skip
        assert key in metrics
    assert 0 <= metrics["effective_accuracy"] <= metrics["accuracy"] <= 1
    assert metrics["latency_p50_ms"] <= metrics["latency_p95_ms"] <= metrics["latency_p99_ms"]
    assert metrics["energy_j"] > 0 and metrics["cost_usd"] > 0
    assert sum(metrics["plan_mix"].values()) == pytest.approx(1.0)


def test_feature_names_describe_the_observation(make_env):
    env = make_env()
    obs, _ = env.reset(seed=0)
    assert len(env.feature_names) == obs.shape[0] == env.observation_space.shape[0]
    assert len(set(env.feature_names)) == len(env.feature_names)
    assert len(env.action_labels) == env.action_space.n
    assert env.action_labels[-1] == "reject"
    features = dict(zip(env.feature_names, obs, strict=True))
    assert features["task.type=classify"] == 1.0
    assert features["t4-0.resident=linear"] == 1.0 and features["t4-0.resident=cnn_wide"] == 0.0


@pytest.mark.parametrize("scenario", ["quickstart", "multi_task", "cold_start"])
def test_the_observation_carries_the_catalog_for_the_task_being_decided(scenario):
    """What the card-based heuristics read is in the observation: each plan's card accuracy for
    this task's type and level, each action's cost penalty, and the weight loading it waits for."""
    env = TaskAllocationEnv(scenario, inference="memoized", episode_tasks=40)
    layout, catalog, sim = ObservationLayout.of(env), env.catalog, env.sim
    max_priority = sim.generator.priority_weights.max()
    obs, info = env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(40):
        task = env._task
        slo = task.deadline - task.arrival
        accuracy = np.nan_to_num(catalog.accuracy[:, task.type, task.difficulty], nan=0.0)
        np.testing.assert_allclose(layout.accuracy(obs), accuracy, rtol=1e-6)
        np.testing.assert_allclose(layout.cost(obs), catalog.penalty / max_priority, rtol=1e-6)
        load = np.minimum(sim.missing_load_s() / slo, env.observation.clip)
        np.testing.assert_allclose(obs[layout.load_cost_at], load, rtol=1e-5)
        obs, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if terminated:
            break
    env.close()


def test_mask_three_ways_and_reject_always_valid(make_env):
    env = make_env()
    before = env.action_masks()
    assert before.dtype == bool and before[-1] and before.sum() == 1
    obs, info = env.reset(seed=0)
    assert info["action_mask"].dtype == np.int8
    assert np.array_equal(info["action_mask"].astype(bool), env.action_masks())
    assert info["action_mask"][-1] == 1


def test_plan_that_does_not_fit_is_masked_and_invalid_action_is_a_penalty(make_env):
    env = make_env(
        devices=[
            {"kind": "t4", "memory_gb": 0.0005},  # too small for cnn_wide (and linear)
            {"kind": "a100", "resident": ["cnn_wide"]},
        ],
        reward={"reject": 0.3, "invalid_action": 0.5},
    )
    obs, info = env.reset(seed=0)
    cnn_wide_on_t4 = env.action_labels.index("cnn_wide@t4-0")
    assert info["action_mask"][cnn_wide_on_t4] == 0
    obs, reward, terminated, truncated, info = env.step(cnn_wide_on_t4)
    assert info["invalid_action"] is True
    assert reward == pytest.approx(-0.3 - 0.5)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (1.9, TypeError),
        (np.float64(2.0), TypeError),
        ("3", TypeError),
        (True, TypeError),
        (np.bool_(False), TypeError),
        (None, TypeError),
        (-1, ValueError),
        (10**6, ValueError),
    ],
)
def test_step_accepts_only_integers_of_the_action_space(action, error):
    """Nothing is truncated or reinterpreted: the call raises, names the range, and leaves the
    env as it was (the next valid step and a render work as if it had not been made)."""
    env = TaskAllocationEnv(tiny_scenario(), render_mode="ansi")
    env.reset(seed=0)
    before = env.render()
    with pytest.raises(error, match=r"action: expected an integer in \[0, \d+\]"):
        env.step(action)
    assert env.render() == before
    assert env.step(np.int64(env.reject_action))[4]["invalid_action"] is False
    assert "last action: reject" in env.render()


def test_numpy_integers_and_0d_arrays_are_actions(make_env):
    env = make_env()
    _, info = env.reset(seed=0)
    first = int(np.flatnonzero(info["action_mask"])[0])
    for action in (np.int64(first), np.uint8(first), np.array(first)):
        _, _, _, _, info = env.step(action)
        assert info["invalid_action"] is False
        first = int(np.flatnonzero(info["action_mask"])[0])


def test_full_queue_masks_the_device(make_env):
    env = make_env(
        devices=[
            {
                "kind": "t4",
                "resident": ["linear"],
                "max_queue": 2,
                "batch_timeout_ms": 1000,
                "max_batch": 64,
            }
        ],
        models=["linear"],
    )
    obs, info = env.reset(seed=0)
    assert info["action_mask"][0] == 1
    obs, _, _, _, info = env.step(0)
    obs, _, _, _, info = env.step(0)
    assert info["action_mask"][0] == 0 and info["action_mask"][-1] == 1


def test_ansi_render_shows_the_cluster(make_env):
    env = TaskAllocationEnv(make_env().scenario, render_mode="ansi")
    env.reset(seed=0)
    frame = env.render()
    assert "t4-0" in frame and "a100-1" in frame and "deciding task 0" in frame
    env.close()
    env.close()


def test_bad_render_mode_is_refused():
    with pytest.raises(ValueError, match="render_mode"):
        TaskAllocationEnv("quickstart", render_mode="human-ish")


def test_any_scenario_id_requires_a_scenario_and_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="scenario: required") as error:
        gym.make("mtenv/TaskAllocation-v0")
    for name in mtenv.ENV_IDS.values():
        assert name in str(error.value)
    env = gym.make("mtenv/TaskAllocation-v0", scenario="edge_burst")
    assert env.unwrapped.scenario.name == "edge_burst"
    env.close()


def _long_window(name: str) -> Any:
    """Scenario ``name`` with running averages over a window far longer than its episodes."""
    scenario = load_scenario(name)
    observation = scenario.observation.model_copy(update={"ewma_tau_s": 1e6})
    return scenario.model_copy(update={"observation": observation})


def test_load_features_read_the_episode_so_far_when_it_is_shorter_than_their_window():
    """Under a window far longer than the episode, the utilisation feature is each device's busy
    fraction since time 0 and the arrival rate is the episode's arrivals so far per second (one
    pseudo-arrival at the mean rate standing for the time before it), ÷ the mean rate: a short
    episode is not read as an idle cluster at its starting rate."""
    env = TaskAllocationEnv(_long_window("quickstart"), inference="memoized", load_scale=2.0)
    layout = ObservationLayout.of(env)
    mean_rate = env.sim.generator.arrivals.mean_rate
    obs, info = env.reset(seed=0)
    first = env._task.arrival
    for arrived in range(1, 200):
        obs, _, _, _, info = env.step(first_valid(obs, info["action_mask"], env))
        now = env.sim.now
        busy = env.sim.busy_time(out=np.zeros(env.n_devices)) / now
        np.testing.assert_allclose(layout.utilization(obs), busy, rtol=1e-4, atol=1e-6)
        rate = (1 + arrived) / (1 / mean_rate + now - first) / mean_rate
        assert layout.arrival_rate(obs) == pytest.approx(rate, rel=1e-4)
    assert layout.utilization(obs).max() > 0.1  # the check above saw busy devices
    assert layout.arrival_rate(obs) == pytest.approx(2.0, rel=0.15)  # twice the scenario's load


def test_the_arrival_rate_feature_tells_the_loads_apart_on_the_default_window():
    """quickstart's episode (about 0.25 s) is shorter than its 1 s window, yet the feature's
    median doubles with the load."""

    def median_rate(load_scale: float) -> float:
        env = TaskAllocationEnv("quickstart", inference="memoized", load_scale=load_scale)
        layout = ObservationLayout.of(env)
        observations = play(env, first_valid).observations
        return float(np.median([layout.arrival_rate(obs) for obs in observations]))

    assert median_rate(2.0) / median_rate(1.0) == pytest.approx(2.0, rel=0.1)


def test_an_env_pickles_before_its_first_reset():
    env = TaskAllocationEnv("quickstart", inference="memoized", episode_tasks=SHORT)
    copy = pickle.loads(pickle.dumps(env))
    np.testing.assert_array_equal(copy.reset(seed=0)[0], env.reset(seed=0)[0])
