"""The non-learning baselines and what the env gives them: the action catalog, the per-task
feedback in ``info``, the observation layout, and the clairvoyance only the oracle may use.

Heuristic rules are checked against reference implementations written here directly from their
documented rules, reading the observation by feature name, on scenarios that exercise loads,
memory limits, cascades, ensembles and two task types."""

from __future__ import annotations

import json
import math
import pickle
from importlib import resources
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import tiny_scenario

import mtenv
from mtenv.agents import (
    BASELINES,
    POLICIES,
    BasePolicy,
    CascadePolicy,
    ExpectedRewardPolicy,
    MostAccuratePolicy,
    ObservationLayout,
    OraclePolicy,
    RandomPolicy,
    make_policy,
)
from mtenv.core.inference import InferenceEngine
from mtenv.core.tasks import TaskStatus
from mtenv.envs.catalog import plan_quality
from mtenv.envs.feedback import Feedback
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.tools.cli import main
from mtenv.tools.evaluation import evaluate_policy, run_episode
from mtenv.tools.plan_card import card_plans
from mtenv.zoo import MODEL_NAMES, TASK_TYPES, get_zoo

SHORT = 40
FEEDBACK_KEYS = (
    "action",
    "reward",
    "correct",
    "on_time",
    "task_type",
    "difficulty",
    "decision_step",
)


@pytest.fixture(scope="module")
def envs():
    """One memoized short-episode env per registered id, shared by this module's tests."""
    made: dict[str, gym.Env] = {}

    def get(env_id: str) -> gym.Env:
        if env_id not in made:
            made[env_id] = gym.make(env_id, inference="memoized", episode_tasks=SHORT)
        return made[env_id]

    yield get
    for env in made.values():
        env.close()


def scenario_env(name: str, tasks: int = 60) -> TaskAllocationEnv:
    return TaskAllocationEnv(name, inference="memoized", episode_tasks=tasks)


def play_policy(env: gym.Env, policy: BasePolicy, seed: int) -> tuple[list[int], dict[str, Any]]:
    """One episode; every action is checked against the mask it was chosen under."""
    actions: list[int] = []
    policy.reset(seed)
    obs, info = env.reset(seed=seed)
    while True:
        action = policy.act(obs, info["action_mask"])
        assert info["action_mask"][action] == 1, f"{policy.name} chose masked action {action}"
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        policy.observe(reward, info)
        if terminated or truncated:
            return actions, info["metrics"]


# --- the registry ------------------------------------------------------------------------------


def test_registry_names_every_baseline_and_the_oracle_apart():
    expected = {"random", "round-robin", "least-loaded", "fastest", "most-accurate", "infaas"}
    expected |= {"cascade", "expected-reward", "eps-greedy", "ucb1", "exp3", "oracle"}
    assert set(POLICIES) == expected
    assert all(POLICIES[name].name == name for name in POLICIES)
    assert tuple(name for name in POLICIES if name != "oracle") == BASELINES
    assert POLICIES["oracle"].clairvoyant
    assert not any(POLICIES[name].clairvoyant for name in BASELINES)


def test_every_policy_states_its_rule():
    for name, cls in POLICIES.items():
        assert cls.__doc__ is not None and len(cls.__doc__) > 120, name


def test_unknown_policy_suggests_the_closest(envs):
    with pytest.raises(ValueError, match="did you mean ucb1"):
        make_policy("ucb", envs("mtenv/Quickstart-v0"))


def test_catalog_policies_need_an_env():
    with pytest.raises(ValueError, match="build it on an env"):
        MostAccuratePolicy(None, seed=0)


def test_cli_help_lists_every_policy(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse may wrap a name at its hyphen
    missing = [name for name in POLICIES if name not in text]
    assert missing == []


def test_cli_runs_a_bandit(capsys):
    argv = ["run", "--scenario", "quickstart", "--policy", "ucb1", "--episodes", "1"]
    code = main([*argv, "--inference", "memoized", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["policy"] == "ucb1"


# --- every policy on every registered id --------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("env_id", list(mtenv.ENV_IDS))
def test_policy_runs_masked_and_deterministic(envs, env_id, name):
    env = envs(env_id)
    first, metrics = play_policy(env, make_policy(name, env, seed=3), seed=5)
    assert metrics["tasks"] == SHORT
    assert math.isfinite(metrics["episode_return"])
    second, _ = play_policy(env, make_policy(name, env, seed=3), seed=5)
    assert first == second


def test_run_episode_calls_observe_after_every_step():
    env = scenario_env("quickstart", tasks=30)

    class Spy(RandomPolicy):
        def __init__(self, env_, seed=None):
            super().__init__(env_, seed)
            self.rewards: list[float] = []
            self.feedback_tasks = 0

        def observe(self, reward, info):
            self.rewards.append(reward)
            self.feedback_tasks += len(info["feedback"]["action"])

    spy = Spy(env, seed=0)
    metrics = run_episode(env, spy, seed=0)
    assert len(spy.rewards) == 30
    assert sum(spy.rewards) == pytest.approx(metrics["episode_return"])
    assert spy.feedback_tasks == 30  # every task is settled once, the last ones at the end


# --- feedback --------------------------------------------------------------------------------


def test_feedback_sums_to_the_reward_and_names_the_actions():
    env = scenario_env("cold_start", tasks=120)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=2)
    assert set(info["feedback"]) == set(FEEDBACK_KEYS)
    assert all(len(v) == 0 for v in info["feedback"].values())
    chosen: list[int] = []
    seen = 0
    while True:
        # now and then an action the mask forbids: rejected, and reported as the reject action
        valid = np.flatnonzero(info["action_mask"])
        forbidden = np.flatnonzero(info["action_mask"] == 0)
        if forbidden.size and rng.random() < 0.1:
            action = int(rng.choice(forbidden))
            chosen.append(-1)
        else:
            action = int(rng.choice(valid))
            chosen.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        feedback = info["feedback"]
        assert isinstance(feedback, Feedback)
        assert {len(feedback[k]) for k in FEEDBACK_KEYS} == {len(env.settled)}
        assert feedback["action"].dtype == np.int64 and feedback["reward"].dtype == np.float64
        assert feedback["correct"].dtype == bool and feedback["on_time"].dtype == bool
        assert feedback["reward"].sum() == pytest.approx(reward, abs=1e-9)
        for i, task in enumerate(env.settled):
            decided = chosen[task.id]
            expected = env.reject_action if decided in (-1, env.reject_action) else decided
            assert feedback["action"][i] == expected
            assert feedback["task_type"][i] == task.type
            assert feedback["difficulty"][i] == task.difficulty
            assert feedback["correct"][i] == task.correct
            assert feedback["on_time"][i] == task.on_time
            assert feedback["reward"][i] == env.reward_fn(task)
        seen += len(env.settled)
        if terminated or truncated:
            break
    assert seen == 120
    assert env.reject_action in chosen or -1 in chosen


def test_feedback_pickles_compares_and_survives_vector_envs():
    env = scenario_env("quickstart", tasks=30)
    obs, info = env.reset(seed=0)
    while not len(info["feedback"]["action"]):
        obs, reward, terminated, truncated, info = env.step(0)
    feedback = info["feedback"]
    assert pickle.loads(pickle.dumps(feedback)) == feedback
    assert dict(feedback).keys() == set(FEEDBACK_KEYS)
    vec = gym.make_vec("mtenv/Quickstart-v0", num_envs=2, inference="memoized")
    obs, info = vec.reset(seed=0)
    for _ in range(6):
        actions = np.array([np.flatnonzero(m)[0] for m in info["action_mask"]])
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert [type(f) for f in info["feedback"]] == [Feedback, Feedback]
        assert [f["reward"].sum() for f in info["feedback"]] == pytest.approx(reward.tolist())
    vec.close()


# --- the catalog ----------------------------------------------------------------------------------


def test_catalog_shapes_and_nan_where_a_plan_does_not_serve_the_type():
    env = scenario_env("multi_task")
    catalog = env.catalog
    n_p, n_d = catalog.n_plans, catalog.n_devices
    assert catalog.accuracy.shape == (n_p, len(catalog.task_types), catalog.n_levels)
    assert catalog.cost_usd.shape == catalog.energy_j.shape == catalog.penalty.shape == (n_p, n_d)
    labels = [
        f"{catalog.plan_names[p]}@{catalog.device_names[d]}"
        for p, d in zip(catalog.plan_of, catalog.device_of, strict=True)
    ]
    assert labels == env.action_labels[:-1]
    assert catalog.reject_action == env.reject_action
    served = ~np.isnan(catalog.accuracy).any(axis=2)
    assert (served == catalog.serves).all()
    assert (np.isnan(catalog.accuracy).all(axis=2) == ~catalog.serves).all()
    plans, types = list(catalog.plan_names), list(catalog.task_types)
    multitask = plans.index("multitask")
    assert catalog.plan_kinds[multitask] == "multitask"
    assert np.isfinite(catalog.accuracy[multitask]).all()  # both task types
    assert np.isnan(catalog.accuracy[plans.index("cnn_small"), types.index("localize")]).all()
    assert np.isnan(catalog.accuracy[plans.index("loc_cnn"), types.index("classify")]).all()
    assert ((catalog.accuracy[served] >= 0) & (catalog.accuracy[served] <= 1)).all()
    assert (catalog.cost_usd > 0).all() and (catalog.energy_j > 0).all()
    with pytest.raises(ValueError):
        catalog.accuracy[0, 0, 0] = 1.0
    assert env.catalog is catalog  # built once


@pytest.fixture(scope="module")
def zoo_engine() -> InferenceEngine:
    return InferenceEngine(list(MODEL_NAMES), list(TASK_TYPES), mode="memoized")


def _card() -> dict[str, Any]:
    return json.loads(resources.files("mtenv.zoo").joinpath("card.json").read_text())


def test_plan_accuracy_on_the_serving_split_equals_the_zoo_card(zoo_engine):
    """The card is measured on the serving pool; the same computation on that split must give
    the card's numbers, for single models (every task type) and for the card's ensembles and
    cascades."""
    from mtenv.core.schema import SinglePlanConfig

    card = _card()
    for name, entry in card["models"].items():
        plan = SinglePlanConfig(model=name).build(get_zoo())
        for task_type, metrics in entry["tasks"].items():
            quality = plan_quality(plan, task_type, zoo_engine, split="serving")
            assert np.round(quality.accuracy, 4).tolist() == metrics["accuracy_per_level"], name
    rows = card["extra_sections"][0]["data"]["plans"]
    for plan in card_plans():
        quality = plan_quality(plan, "classify", zoo_engine, split="serving")
        assert np.round(quality.accuracy, 4).tolist() == rows[plan.name]["accuracy_by_level"]
        if plan.kind == "cascade":
            rate = rows[plan.name]["escalation_rate"]
            assert quality.escalation_rate.mean() == pytest.approx(rate, abs=1e-4)


def test_catalog_accuracy_is_measured_on_the_validation_split(zoo_engine):
    env = scenario_env("quickstart")
    catalog = env.catalog
    for p, plan in enumerate(env.sim.plans):
        validation = plan_quality(plan, "classify", env.engine).accuracy
        assert catalog.accuracy[p, 0].tolist() == validation.tolist()
    serving = [plan_quality(p, "classify", zoo_engine, split="serving") for p in env.sim.plans]
    assert any(
        not np.array_equal(s.accuracy, v)
        for s, v in zip(serving, catalog.accuracy[:, 0], strict=True)
    )
    # The card's ranking holds on the hardest level: a bigger model is more accurate.
    names = list(catalog.plan_names)
    assert catalog.accuracy[names.index("cnn_wide"), 0, -1] > catalog.accuracy[0, 0, -1]


def test_catalog_cost_and_energy_are_what_the_simulator_charges_a_lone_task():
    both = ["linear", "cnn_wide"]
    devices = [
        {"kind": kind, "resident": both, "max_batch": 1, "max_queue": 100_000}
        for kind in ("t4", "a100")
    ]
    env = TaskAllocationEnv(
        tiny_scenario(
            devices=devices,
            episode_tasks=60,
            reward={"cost_per_usd": 1000.0, "energy_per_j": 0.01},
        )
    )
    catalog = env.catalog
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    completed = []
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"][:-1])))
        obs, reward, terminated, truncated, info = env.step(action)
        completed += [t for t in env.settled if t.status is TaskStatus.COMPLETED]
        if terminated or truncated:
            break
    assert len(completed) == 60
    for task in completed:
        assert task.cost_usd == pytest.approx(catalog.cost_usd[task.plan, task.device], rel=1e-9)
        assert task.energy_j == pytest.approx(catalog.energy_j[task.plan, task.device], rel=1e-9)
    expected = 1000.0 * catalog.cost_usd + 0.01 * catalog.energy_j
    assert catalog.penalty == pytest.approx(expected)


def test_catalog_prices_a_cascade_by_its_expected_escalations():
    env = scenario_env("cascade_savings")
    catalog, sim = env.catalog, env.sim
    names = list(catalog.plan_names)
    cascade = next(i for i, kind in enumerate(catalog.plan_kinds) if kind == "cascade")
    first, second = (names.index(m) for m in env.sim.plans[cascade].models)
    escalated = catalog.escalation_rate[cascade, 0]
    assert 0 < escalated.mean() < 1
    alone = catalog.latency_s[first]
    both = catalog.latency_s[first] + catalog.latency_s[second]
    assert (alone < catalog.latency_s[cascade]).all()
    assert (catalog.latency_s[cascade] < both).all()
    assert catalog.latency_s[first] == pytest.approx(sim.plan_alpha[first] + sim.plan_beta[first])


# --- the observation layout ------------------------------------------------------------------


def test_observation_layout_reads_the_task_and_the_cluster_by_name():
    env = scenario_env("multi_task", tasks=80)
    layout = ObservationLayout.of(env)
    catalog, names = env.catalog, env.feature_names
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=1)
    read: list[tuple[int, int, float]] = []
    tasks = {}
    max_priority = float(env.sim.generator.priority_weights.max())
    while True:
        value = dict(zip(names, obs.tolist(), strict=True))
        for d, dev in enumerate(catalog.device_names):
            assert layout.wait(obs)[d] == value[f"{dev}.wait"]
            assert layout.queue(obs)[d] == value[f"{dev}.queue"]
            for m, model in enumerate(catalog.model_names):
                assert layout.resident(obs)[d, m] == (value[f"{dev}.resident={model}"] == 1.0)
            for p, plan in enumerate(catalog.plan_names):
                assert layout.est(obs)[p, d] == value[f"est:{plan}@{dev}"]
        assert (layout.resident(obs) == env.sim.resident).all()
        read.append((layout.task_type(obs), layout.difficulty_level(obs), layout.priority(obs)))
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        tasks.update({t.id: t for t in env.settled})
        if terminated or truncated:
            break
    assert len({t for t, _, _ in read}) == 2
    for i, (task_type, level, priority) in enumerate(read):
        task = tasks[i]
        assert (task_type, level) == (task.type, task.difficulty)
        assert priority == pytest.approx(task.priority / max_priority)


def test_observation_layout_names_a_missing_feature():
    env = scenario_env("quickstart")
    names = [n for n in env.feature_names if n != "a100-2.wait"]
    fake = SimpleNamespace(unwrapped=SimpleNamespace(feature_names=names, catalog=env.catalog))
    with pytest.raises(ValueError, match=r"'a100-2\.wait'"):
        ObservationLayout.of(fake)


# --- heuristic rules against reference implementations ---------------------------------------


class Reference:
    """One decision decoded by feature name, and each heuristic's documented rule on it."""

    def __init__(self, env: TaskAllocationEnv, obs: np.ndarray, mask: np.ndarray):
        c = self.catalog = env.catalog
        value = dict(zip(env.feature_names, obs.tolist(), strict=True))
        types = c.task_types
        self.task_type = max(range(len(types)), key=lambda t: value[f"task.type={types[t]}"])
        self.level = round(value["task.difficulty"] * (c.n_levels - 1))
        self.valid = [a for a in range(c.reject_action) if mask[a]]
        self.reject = c.reject_action
        self.est = {a: value[f"est:{env.action_labels[a]}"] for a in self.valid}
        self.wait = [value[f"{dev}.wait"] for dev in c.device_names]
        self.priority = value["task.priority"] * env.scenario.workload.max_priority
        self.weights = env.scenario.reward
        self.resident = {
            a: all(
                value[f"{c.device_names[c.device_of[a]]}.resident={c.model_names[m]}"] == 1.0
                for m in np.flatnonzero(c.plan_models[c.plan_of[a]])
            )
            for a in self.valid
        }

    def acc(self, a: int) -> float:
        return float(self.catalog.accuracy[self.catalog.plan_of[a], self.task_type, self.level])

    def cheap(self, a: int) -> tuple[float, float]:
        p, d = self.catalog.plan_of[a], self.catalog.device_of[a]
        return float(self.catalog.penalty[p, d]), float(self.catalog.cost_usd[p, d])

    def best(self, actions, key) -> int:
        return min(actions, key=lambda a: (*key(a), a)) if actions else self.reject

    def on_time(self) -> list[int]:
        return [a for a in self.valid if self.est[a] <= 1.0]

    def fastest(self) -> int:
        return self.best(self.valid, lambda a: (self.est[a], -self.acc(a), *self.cheap(a)))

    def most_accurate_of(self, actions) -> int:
        return self.best(actions, lambda a: (-self.acc(a), *self.cheap(a), self.est[a]))

    def least_loaded(self) -> int:
        devices = {int(self.catalog.device_of[a]) for a in self.valid}
        if not devices:
            return self.reject
        device = min(devices, key=lambda d: (self.wait[d], d))
        return self.most_accurate_of([a for a in self.valid if self.catalog.device_of[a] == device])

    def plans(self) -> dict[int, list[int]]:
        by_plan: dict[int, list[int]] = {}
        for a in self.valid:
            by_plan.setdefault(int(self.catalog.plan_of[a]), []).append(a)
        return by_plan

    def on_fastest_device(self, actions: list[int]) -> int:
        return self.best(actions, lambda a: (self.est[a],))

    def price(self, actions: list[int]) -> tuple[float, float]:
        return min(self.cheap(a)[0] for a in actions), min(self.cheap(a)[1] for a in actions)

    def most_accurate(self) -> int:
        plans = self.plans()
        if not plans:
            return self.reject
        key = lambda p: (-self.acc(plans[p][0]), *self.price(plans[p]), p)  # noqa: E731
        return self.on_fastest_device(plans[min(plans, key=key)])

    def infaas(self, margin: float = 0.05) -> int:
        if not self.valid:
            return self.reject
        floor = max(self.acc(a) for a in self.valid) - margin
        qualified = [a for a in self.on_time() if self.acc(a) >= floor]
        if qualified:
            return self.best(
                qualified, lambda a: (not self.resident[a], *self.cheap(a), self.est[a])
            )
        if self.on_time():
            return self.most_accurate_of(self.on_time())
        return self.fastest()

    def cascade(self, threshold: int = 2) -> int:
        plans = self.plans()
        for p in sorted(plans):
            if self.catalog.plan_kinds[p] == "cascade":
                return self.on_fastest_device(plans[p])
        if not plans:
            return self.reject
        if self.level < threshold:
            key = lambda p: (*self.price(plans[p]), -self.acc(plans[p][0]), p)  # noqa: E731
        else:
            key = lambda p: (-self.acc(plans[p][0]), *self.price(plans[p]), p)  # noqa: E731
        return self.on_fastest_device(plans[min(plans, key=key)])

    def expected_reward(self, slack: float = 0.5) -> int:
        w = self.weights

        def value(a: int) -> float:
            accuracy = 0.0 if math.isnan(self.acc(a)) else self.acc(a)
            late = self.est[a] > slack
            earned = self.priority * w.correct * accuracy * (w.late_credit if late else 1.0)
            return earned - w.slo_miss * late - self.cheap(a)[0]

        return self.best(self.valid, lambda a: (-value(a), not self.resident[a]))


RULES = {
    "least-loaded": Reference.least_loaded,
    "fastest": Reference.fastest,
    "most-accurate": Reference.most_accurate,
    "infaas": Reference.infaas,
    "cascade": Reference.cascade,
    "expected-reward": Reference.expected_reward,
}


@pytest.mark.parametrize(
    "scenario", ["quickstart", "collaboration", "cold_start", "cascade_savings"]
)
@pytest.mark.parametrize("name", list(RULES))
def test_heuristic_follows_its_rule(scenario, name):
    env = scenario_env(scenario, tasks=80)
    policy = make_policy(name, env, seed=0)
    # A random driver puts the cluster in varied states; the policy's choice is checked at
    # every one of them, and followed every third step so that its own states occur too.
    driver = np.random.default_rng(4)
    obs, info = env.reset(seed=4)
    step = 0
    while True:
        mask = info["action_mask"]
        action = policy.act(obs, mask)
        assert action == RULES[name](Reference(env, obs, mask)), f"step {step}"
        if step % 3:
            action = int(driver.choice(np.flatnonzero(mask)))
        obs, reward, terminated, truncated, info = env.step(action)
        step += 1
        if terminated or truncated:
            break


def _plan(env: TaskAllocationEnv, action: int) -> str:
    return env.catalog.plan_names[env.catalog.plan_of[action]]


def _device(env: TaskAllocationEnv, action: int) -> str:
    return env.catalog.device_names[env.catalog.device_of[action]]


def test_least_loaded_joins_the_idle_device(make_env):
    env = make_env()
    layout = ObservationLayout.of(env)
    policy = make_policy("least-loaded", env, seed=0)
    obs, info = env.reset(seed=0)
    on_t4 = env.action_labels.index("cnn_wide@t4-0")
    for _ in range(6):  # pile work on the T4
        obs, reward, terminated, truncated, info = env.step(on_t4)
    wait = layout.wait(obs)
    assert wait[0] > wait[1] == 0.0
    action = policy.act(obs, info["action_mask"])
    assert _device(env, action) == "a100-1"
    catalog = env.catalog
    level = layout.difficulty_level(obs)
    assert _plan(env, action) == catalog.plan_names[int(np.argmax(catalog.accuracy[:, 0, level]))]


def test_most_accurate_takes_the_best_card_plan_on_its_fastest_device(make_env):
    env = make_env()
    catalog = env.catalog
    wide = catalog.plan_names.index("cnn_wide")
    assert (catalog.accuracy[wide, 0] >= catalog.accuracy[:, 0]).all()
    policy = make_policy("most-accurate", env, seed=0)
    obs, info = env.reset(seed=0)
    est = ObservationLayout.of(env).est(obs)
    assert est[wide, 1] < est[wide, 0]  # resident on the A100, to be loaded on the T4
    assert env.action_labels[policy.act(obs, info["action_mask"])] == "cnn_wide@a100-1"


def test_infaas_takes_the_cheap_resident_model_where_it_is_accurate_enough(make_env):
    env = make_env(episode_tasks=200)
    catalog = env.catalog
    layout = ObservationLayout.of(env)
    policy = make_policy("infaas", env, seed=0)
    obs, info = env.reset(seed=0)
    linear, wide = catalog.plan_names.index("linear"), catalog.plan_names.index("cnn_wide")
    seen = set()
    while True:
        level = layout.difficulty_level(obs)
        action = policy.act(obs, info["action_mask"])
        if (layout.est(obs) < 1).all():
            close = catalog.accuracy[linear, 0, level] >= catalog.accuracy[wide, 0, level] - 0.05
            # linear is resident on the T4 and cheaper than cnn_wide anywhere
            assert env.action_labels[action] == ("linear@t4-0" if close else "cnn_wide@a100-1")
            seen.add(close)
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert seen == {True, False}


def test_cascade_prefers_a_cascade_plan_else_a_difficulty_threshold(make_env):
    plans = [
        {"model": "linear"},
        {"model": "cnn_wide"},
        {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": 0.9},
    ]
    with_cascade = make_env(plans=plans)
    without = make_env()
    for env, threshold in ((with_cascade, 2), (without, 2), (without, 4)):
        layout = ObservationLayout.of(env)
        policy = CascadePolicy(env, seed=0, difficulty_threshold=threshold)
        obs, info = env.reset(seed=0)
        while True:
            action = policy.act(obs, info["action_mask"])
            if env is with_cascade:
                expected = "linear>cnn_wide@0.9"
            else:
                expected = "linear" if layout.difficulty_level(obs) < threshold else "cnn_wide"
            assert _plan(env, action) == expected
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break


# --- bandits ------------------------------------------------------------------------------------


def dominated_scenario() -> TaskAllocationEnv:
    """Hard inputs, ample SLO, both models resident everywhere: cnn_wide is clearly better."""
    both = ["linear", "cnn_wide"]
    return TaskAllocationEnv(
        tiny_scenario(
            episode_tasks=400,
            devices=[
                {"kind": "t4", "resident": both, "max_queue": 100_000},
                {"kind": "a100", "resident": both, "max_queue": 100_000},
            ],
            workload={
                "arrivals": {"process": "poisson", "rate": 100},
                "task_types": {"classify": {"slo_ms": 1000}},
                "difficulty": [0, 0, 0, 0, 1],
            },
        )
    )


@pytest.mark.parametrize("name", ["eps-greedy", "ucb1", "exp3"])
def test_bandit_concentrates_on_the_clearly_better_plan(name):
    env = dominated_scenario()
    wide = env.catalog.plan_names.index("cnn_wide")
    actions, metrics = play_policy(env, make_policy(name, env, seed=0), seed=0)
    plans = env.catalog.plan_of[np.array(actions)]
    assert (plans[:50] != wide).any()  # it explored
    assert (plans[-200:] == wide).mean() >= 0.8


def test_bandit_forgets_between_episodes():
    env = dominated_scenario()
    policy = make_policy("ucb1", env, seed=0)
    play_policy(env, policy, seed=0)
    assert policy.counts.sum() == 400
    policy.reset(1)
    assert policy.counts.sum() == policy.pulls.sum() == 0


def test_exp3_probabilities_mix_in_exploration():
    env = dominated_scenario()
    policy = make_policy("exp3", env, seed=0)
    play_policy(env, policy, seed=0)
    arms = env.catalog.serves[:, 0]
    p = policy.probabilities(0, arms)
    assert p.sum() == pytest.approx(1.0)
    assert p.min() >= policy.gamma / arms.sum() - 1e-12


# --- the oracle ---------------------------------------------------------------------------------


def test_oracle_beats_the_most_accurate_plan_on_quickstart():
    env = scenario_env("quickstart", tasks=150)
    oracle = evaluate_policy(env, OraclePolicy(env, seed=0), episodes=3, seed=0)
    best = evaluate_policy(env, MostAccuratePolicy(env, seed=0), episodes=3, seed=0)
    mean = lambda runs, key: np.mean([r[key] for r in runs])  # noqa: E731
    assert mean(oracle, "effective_accuracy") >= mean(best, "effective_accuracy")
    assert mean(oracle, "episode_return") >= mean(best, "episode_return")


@pytest.mark.parametrize("scenario", ["quickstart", "cascade_savings", "high_stakes_triage"])
def test_clairvoyance_agrees_with_what_the_simulator_reports(scenario):
    env = scenario_env(scenario, tasks=150)
    oracle = OraclePolicy(env, seed=0)
    rng = np.random.default_rng(0)
    predicted: dict[int, bool] = {}
    tasks = []
    obs, info = env.reset(seed=0)
    step = 0
    while True:
        correct = env.clairvoyant_correct()
        assert (correct <= env.catalog.serves[:, env.sim.task_types.index("classify")]).all()
        # half the decisions are the oracle's, half random, so that many plans get checked
        action = (
            oracle.act(obs, info["action_mask"])
            if step % 2
            else int(rng.choice(np.flatnonzero(info["action_mask"][:-1])))
        )
        predicted[step] = bool(correct[env.catalog.plan_of[action]])
        obs, reward, terminated, truncated, info = env.step(action)
        tasks += env.settled
        step += 1
        if terminated or truncated:
            break
    completed = [t for t in tasks if t.status is TaskStatus.COMPLETED]
    assert len(completed) > 100
    assert all(t.correct == predicted[t.id] for t in completed)
    assert not env.clairvoyant_correct().any()  # the episode is over


def test_clairvoyance_is_false_for_plans_that_do_not_serve_the_type():
    env = scenario_env("multi_task", tasks=30)
    layout = ObservationLayout.of(env)
    obs, info = env.reset(seed=0)
    for _ in range(30):
        unserved = ~env.catalog.serves[:, layout.task_type(obs)]
        assert unserved.any()
        assert not env.clairvoyant_correct()[unserved].any()
        obs, reward, terminated, truncated, info = env.step(env.reject_action)


def test_expected_reward_buys_accuracy_only_when_it_is_worth_its_price(make_env):
    free = make_env(reward={"cost_per_usd": 0.0})
    dear = make_env(reward={"cost_per_usd": 1e7})
    for env in (free, dear):
        layout = ObservationLayout.of(env)
        policy = make_policy("expected-reward", env, seed=0)
        obs, info = env.reset(seed=0)
        level = layout.difficulty_level(obs)
        action = policy.act(obs, info["action_mask"])
        if env is free:  # the most accurate plan, on the device that has its weights
            plan = int(np.argmax(env.catalog.accuracy[:, 0, level]))
            assert env.action_labels[action] == f"{env.catalog.plan_names[plan]}@a100-1"
        else:  # at this price every answer costs more than it earns: the cheapest action
            assert env.catalog.penalty.ravel()[action] == env.catalog.penalty.min()


def test_expected_reward_fills_the_first_device_until_it_is_no_longer_safely_on_time(make_env):
    env = make_env(
        episode_tasks=300,
        devices=[{"kind": "t4", "count": 2, "resident": ["linear", "cnn_wide"]}],
        workload={"arrivals": {"process": "poisson", "rate": 3000}},
    )
    layout = ObservationLayout.of(env)
    policy = ExpectedRewardPolicy(env, seed=0, slack=0.5)
    obs, info = env.reset(seed=0)
    used, passed_over = {0: 0, 1: 0}, 0
    while True:
        action = policy.act(obs, info["action_mask"])
        plan, device = divmod(action, 2)
        used[device] += 1
        if device == 1 and info["action_mask"][2 * plan]:
            assert layout.est(obs)[plan, 0] > 0.5  # the first T4 would have been late
            passed_over += 1
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert used[0] > used[1] > 0 and passed_over > 0


def test_expected_reward_needs_a_positive_slack(make_env):
    with pytest.raises(ValueError, match="slack: expected a number > 0"):
        ExpectedRewardPolicy(make_env(), seed=0, slack=0.0)
