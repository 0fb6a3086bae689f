"""Tabular learners: the discretiser, the update rules, learning a known optimum, masks, files,
checkpoints and the shipped hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from conftest import BASE_SCENARIO, merge, registered_kwargs, tiny_scenario

import mtenv
from mtenv.agents.hyperparams import DEFAULT_ENV_ID, hyperparameters_for
from mtenv.agents.interfaces import AgentLoadError, EnvConfig, Learner
from mtenv.agents.tabular.discretiser import (
    Discretiser,
    DiscretiserConfig,
    DiscretiserError,
    FeatureSpec,
)
from mtenv.agents.tabular.learners import (
    TABULAR_LEARNERS,
    ExpectedSarsa,
    QLearning,
    Sarsa,
    TabularLearner,
)
from mtenv.agents.tabular.storage import AGENT_FILE, CHECKPOINT_FILE
from mtenv.envs.task_allocation import TaskAllocationEnv

LEARNERS = [QLearning, Sarsa, ExpectedSarsa]

# One A100 holding both models; tasks arrive far apart (each is answered before the next
# arrives, so its reward comes with its own step) and are all hard, where `cnn_wide` is right
# about 0.87 of the time and `linear` about 0.37: serving with `cnn_wide` is optimal everywhere.
ONE_DEVICE = {
    "episode_tasks": 40,
    "devices": [{"kind": "a100", "resident": ["linear", "cnn_wide"], "max_queue": 100_000}],
    "workload": {
        "arrivals": {"process": "poisson", "rate": 20},
        "difficulty": [0, 0, 0, 0.5, 0.5],
    },
}
DIFFICULTY = [{"features": "task.difficulty", "bins": [0.5, 0.8]}]
FAST = {
    "alpha": 0.1,
    "epsilon": {"start": 1.0, "end": 0.1, "fraction": 0.5},
    "discretiser": DIFFICULTY,
}


def scenario_config(tmp_path: Path, name: str = "tiny", **changes: Any) -> EnvConfig:
    """An EnvConfig for a tiny scenario written as YAML (EnvConfig kwargs stay JSON-safe)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_SCENARIO, changes)))
    return EnvConfig("mtenv/TaskAllocation-v0", {"scenario": str(path)})


@pytest.fixture
def one_device(tmp_path: Path):
    config = scenario_config(tmp_path, "one_device", **ONE_DEVICE)
    env = config.make()
    yield config, env
    env.close()


@pytest.fixture(scope="module")
def shipped_envs():
    """One env of every registered id (the shipped scenarios and the default), built once."""
    envs = {
        env_id: gym.make(env_id, episode_tasks=1, **registered_kwargs(env_id))
        for env_id in [*mtenv.ENV_IDS, DEFAULT_ENV_ID]
    }
    yield envs
    for env in envs.values():
        env.close()


class Recorder:
    """A TrainingCallback that remembers what it heard; optionally interrupts a run."""

    def __init__(self, stop_after: int | None = None):
        self.episodes: list[tuple[int, float]] = []
        self.checkpoints: list[int] = []
        self.stop_after = stop_after

    def on_episode(self, step: int, episode_return: float) -> None:
        self.episodes.append((step, episode_return))
        if self.stop_after is not None and len(self.episodes) > self.stop_after:
            raise KeyboardInterrupt("interrupted by the test")

    def on_checkpoint(self, step: int) -> None:
        self.checkpoints.append(step)

    def on_phase(self, text: str) -> None:
        pass


def greedy_actions(agent: TabularLearner, env: gym.Env, seed: int) -> list[int]:
    agent.reset(seed)
    obs, info = env.reset(seed=seed)
    actions = []
    while True:
        action = agent.act(obs, info["action_mask"])
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return actions


# --- discretiser -------------------------------------------------------------------------------

NAMES = [
    "task.type=classify",
    "task.type=localize",
    "task.difficulty",
    "gpu-0.wait",
    "gpu-1.wait",
    "gpu-2.wait",
    "load.slo_miss",
]


def discretiser(*specs: dict[str, Any], **config: Any) -> Discretiser:
    return Discretiser(DiscretiserConfig.from_spec({"features": list(specs), **config}), NAMES, 3)


def observation(**values: float) -> np.ndarray:
    obs = np.zeros(len(NAMES), dtype=np.float32)
    for name, value in values.items():
        obs[NAMES.index(name.replace("__", "."))] = value
    return obs


def test_bins_are_edges_with_values_on_an_edge_in_the_lower_bin():
    d = discretiser({"features": "task.difficulty", "bins": [0.0, 0.5]})
    assert d.n_states == 3
    states = [d.state(observation(task__difficulty=v)) for v in (0.0, 0.25, 0.5, 0.51, 1.0)]
    assert states == [0, 1, 1, 2, 2]


def test_state_is_mixed_radix_with_the_first_spec_most_significant():
    d = discretiser(
        {"features": "task.type=*", "reduce": "argmax"},
        {"features": "task.difficulty", "bins": [0.3, 0.6]},
    )
    assert d.radices == (2, 3) and d.n_states == 6
    obs = observation(task__difficulty=0.5)
    obs[NAMES.index("task.type=localize")] = 1.0
    assert d.state(obs) == 1 * 3 + 1
    assert d.digits_of(d.state(obs)) == (1, 1)


@pytest.mark.parametrize(
    ("reduce", "bins", "expected"),
    [
        ("min", [0.15, 0.35], 0),  # 0.1
        ("max", [0.15, 0.35], 2),  # 0.5
        ("mean", [0.15, 0.35], 1),  # 0.3
        ("argmin", None, 1),  # gpu-1
        ("argmax", None, 2),  # gpu-2
    ],
)
def test_glob_reductions(reduce: str, bins: list[float] | None, expected: int):
    spec: dict[str, Any] = {"features": "*.wait", "reduce": reduce}
    if bins is not None:
        spec["bins"] = bins
    d = discretiser(spec)
    obs = observation(**{"gpu-0__wait": 0.3, "gpu-1__wait": 0.1, "gpu-2__wait": 0.5})
    assert d.state(obs) == expected
    assert d.n_states == (3 if bins is None else len(bins) + 1)


def test_argmax_over_a_one_hot_is_the_category_and_ties_take_the_first():
    d = discretiser({"features": "gpu-*.wait", "reduce": "argmax"})
    assert d.state(observation()) == 0
    assert d.state(observation(**{"gpu-1__wait": 0.2, "gpu-2__wait": 0.2})) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"features": "task.dificulty", "bins": [0.5]}, "closest: task.difficulty"),
        ({"features": "*.queue", "reduce": "min", "bins": [0.5]}, "matches no observation"),
        ({"features": "*.wait", "bins": [0.5]}, "matches 3 features"),
        ({"features": "task.difficulty", "bins": [0.5, 0.5]}, "strictly increasing"),
        ({"features": "task.difficulty"}, "at least one edge"),
        ({"features": "task.type=*", "reduce": "argmax", "bins": [0.5]}, "takes no 'bins'"),
        ({"features": "*.wait", "reduce": "median", "bins": [0.5]}, "'reduce' must be one of"),
        ({"features": "task.difficulty", "bins": [0.5], "bin": 3}, "unknown key(s) 'bin'"),
        ({"features": "task.difficulty", "bins": ["low"]}, "list of numbers"),
        ({"bins": [0.5]}, "missing 'features'"),
    ],
)
def test_bad_specs_get_one_clear_error(spec: dict[str, Any], message: str):
    with pytest.raises(DiscretiserError) as caught:
        discretiser(spec)
    assert message in str(caught.value)


def test_table_size_is_capped():
    specs = [
        {"features": "*.wait", "reduce": "argmin"},
        {"features": "task.difficulty", "bins": [0.5]},
    ]
    with pytest.raises(DiscretiserError, match=r"3 \(\*\.wait\) × 2 \(task\.difficulty\)"):
        Discretiser(
            DiscretiserConfig.from_spec({"features": specs, "max_table_entries": 17}), NAMES, 3
        )
    assert (
        Discretiser(
            DiscretiserConfig.from_spec({"features": specs, "max_table_entries": 18}), NAMES, 3
        ).n_states
        == 6
    )


def test_config_round_trips_through_json():
    config = DiscretiserConfig.from_spec(
        [
            {"features": "task.type=*", "reduce": "argmax"},
            {"features": "*.wait", "reduce": "mean", "bins": [0.1, 1.0]},
        ]
    )
    assert DiscretiserConfig.from_json(config.to_json()) == config
    assert config.features[1] == FeatureSpec("*.wait", "mean", (0.1, 1.0))
    with pytest.raises(DiscretiserError, match="not valid JSON"):
        DiscretiserConfig.from_json("{features")


def test_default_features_resolve_on_every_shipped_scenario_env(shipped_envs):
    for env in shipped_envs.values():
        base = env.unwrapped
        assert Discretiser(DiscretiserConfig(), base.feature_names, base.action_space.n).n_states


def test_a_discretiser_can_read_the_catalog_features_of_the_observation(shipped_envs):
    """The plan the card rates best for this task, and whether the cheapest action is on time:
    what the catalog heuristics decide by, as state digits."""
    env = shipped_envs["mtenv/Quickstart-v0"]
    base = env.unwrapped
    config = DiscretiserConfig.from_spec(
        [
            {"features": "accuracy:*", "reduce": "argmax"},
            {"features": "est:*", "reduce": "min", "bins": [1.0]},
        ]
    )
    discretiser = Discretiser(config, base.feature_names, base.action_space.n)
    assert discretiser.n_states == base.n_plans * 2
    obs, _ = env.reset(seed=0)
    accuracy = obs[[base.feature_names.index(f"accuracy:{p.name}") for p in base.sim.plans]]
    best_plan = int(np.argmax(accuracy))
    assert discretiser.state(obs) // 2 == best_plan


# --- the update rules --------------------------------------------------------------------------

# Q[next state] = [1, 3, 2] with action 1 masked: the bootstrap must not see the 3.
NEXT_Q = [1.0, 3.0, 2.0]
NEXT_MASK = np.array([1, 0, 1], dtype=np.int8)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (QLearning, 0.5 * (0.5 + 0.9 * 2.0)),  # max over valid = 2
        (Sarsa, 0.5 * (0.5 + 0.9 * 1.0)),  # the next action taken is 0
        (ExpectedSarsa, 0.5 * (0.5 + 0.9 * (0.8 * 2.0 + 0.2 * 1.5))),  # ε = 0.2 over {1, 2}
    ],
)
def test_update_bootstraps_over_the_valid_next_actions(one_device, cls, expected: float):
    _, env = one_device
    agent = cls(env, gamma=0.9, alpha=0.5, discretiser=DIFFICULTY)
    agent.q[2] = NEXT_Q
    error = agent.update(0, 1, 0.5, 2, NEXT_MASK, 0, terminated=False, epsilon=0.2)
    assert agent.q[0, 1] == pytest.approx(expected)
    assert error == pytest.approx(2 * expected)
    assert agent.visits[0, 1] == 1 and agent.visits.sum() == 1


@pytest.mark.parametrize("cls", LEARNERS)
def test_termination_does_not_bootstrap(one_device, cls):
    _, env = one_device
    agent = cls(env, gamma=0.9, alpha=0.5, discretiser=DIFFICULTY)
    agent.q[2] = NEXT_Q
    agent.q[0, 1] = 1.0
    agent.update(0, 1, 0.5, 2, NEXT_MASK, 0, terminated=True, epsilon=0.2)
    assert agent.q[0, 1] == pytest.approx(1.0 + 0.5 * (0.5 - 1.0))


def test_visit_count_step_size_follows_the_power_law(one_device):
    _, env = one_device
    agent = QLearning(env, gamma=0.0, alpha={"power": 1.0, "min": 0.0}, discretiser=DIFFICULTY)
    for reward in (3.0, 5.0, 10.0):
        agent.update(0, 0, reward, 1, NEXT_MASK, 0, terminated=True, epsilon=0.0)
    assert agent.q[0, 0] == pytest.approx(6.0)  # α = 1/n: the running mean


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"gamma": 1.5}, "gamma"),
        ({"alpha": {"power": 0.6, "floor": 0.1}}, "alpha"),
        ({"epsilon": {"start": 1.0}}, "epsilon"),
        ({"epsilon": 2.0}, "epsilon"),
        ({"alpha": 0}, "alpha"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"n_step": 0}, "n_step"),
    ],
)
def test_bad_hyperparameters_name_the_field(one_device, hyperparameters, message):
    _, env = one_device
    with pytest.raises(ValueError, match=message):
        QLearning(env, **hyperparameters)


class ScriptedEnv(gym.Env):
    """Rewards 1, 2, 4, 8, then the end (truncated or terminated); one observation and one valid
    action, so that the n-step arithmetic can be done by hand."""

    feature_names = ("x",)
    action_labels = ("serve", "other", "reject")

    def __init__(self, terminate: bool = False):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.terminate = terminate
        self.rewards = [1.0, 2.0, 4.0, 8.0]
        self.mask = np.array([1, 0, 0], dtype=np.int8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {"action_mask": self.mask.copy()}

    def step(self, action):
        assert self.mask[action]
        self.t += 1
        end = self.t == len(self.rewards)
        reward = self.rewards[self.t - 1]
        info = {"action_mask": self.mask.copy()}
        return (
            np.zeros(1, np.float32),
            reward,
            end and self.terminate,
            end and not self.terminate,
            info,
        )


gym.register(id="mtenv-test/Scripted-v0", entry_point=ScriptedEnv)


@pytest.mark.parametrize("cls", LEARNERS)
@pytest.mark.parametrize(
    ("terminate", "n_step", "expected"),
    [
        # one-step, α = 1: Q ← r + ½·Q, so 1, 2.5, 5.25, then 8 + ½·5.25 (truncated) or 8
        (False, 1, 8 + 0.5 * 5.25),
        (True, 1, 8.0),
        # two-step: 1 + ½·2 = 2; 2 + ½·4 + ¼·2 = 4.5; at the end 4 + ½·8 + ¼·4.5 = 9.125 and
        # the last transition alone 8 + ½·9.125 (truncated), or 8 then 8 (terminated)
        (False, 2, 8 + 0.5 * 9.125),
        (True, 2, 8.0),
    ],
)
def test_n_step_returns_and_the_episode_end_by_hand(cls, terminate, n_step, expected):
    config = EnvConfig("mtenv-test/Scripted-v0", {"terminate": terminate})
    env = config.make()
    spec = [{"features": "x", "bins": [0.5]}]
    # the env's own step rewards (it reports no per-task feedback)
    agent = cls(
        env, gamma=0.5, alpha=1.0, epsilon=0.0, n_step=n_step, credit="settle", discretiser=spec
    )
    agent.learn(config, 4, seed=0, run_dir=None)
    assert agent.q[0, 0] == pytest.approx(expected)
    assert agent.visits[0, 0] == agent.steps == 4


class DelayedEnv(gym.Env):
    """Action 0 earns 1, action 1 earns 0, each paid two steps after its decision (the last
    ones at the end), with per-task feedback as mtenv reports it; six steps, then terminated."""

    feature_names = ("x",)
    action_labels = ("good", "bad", "reject")

    def __init__(self):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.mask = np.array([1, 1, 0], dtype=np.int8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.earned: list[float] = []
        return np.zeros(1, np.float32), {"action_mask": self.mask.copy()}

    def step(self, action):
        self.earned.append(1.0 if action == 0 else 0.0)
        step = len(self.earned) - 1
        end = step == 5
        paid = ([step - 2] if step >= 2 else []) + ([step - 1, step] if end else [])
        feedback = {
            "decision_step": np.array(paid, dtype=np.int64),
            "reward": np.array([self.earned[d] for d in paid]),
        }
        info = {"action_mask": self.mask.copy(), "feedback": feedback}
        return np.zeros(1, np.float32), float(feedback["reward"].sum()), end, False, info


gym.register(id="mtenv-test/Delayed-v0", entry_point=DelayedEnv)


@pytest.mark.parametrize("cls", LEARNERS)
def test_decision_credit_values_each_action_by_its_own_task(cls):
    config = EnvConfig("mtenv-test/Delayed-v0", {})
    env = config.make()
    spec = [{"features": "x", "bins": [0.5]}]
    agent = cls(env, gamma=0.0, alpha=1.0, epsilon=1.0, discretiser=spec, seed=0)
    agent.learn(config, 60, seed=0, run_dir=None)
    assert agent.visits[0, :2].min() > 0
    assert agent.q[0, :2].tolist() == [1.0, 0.0]
    assert agent.visits.sum() == agent.steps


# --- learning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LEARNERS)
def test_reaches_the_known_optimal_greedy_policy(one_device, cls):
    config, env = one_device
    agent = cls(env, seed=0, **FAST)
    assert isinstance(agent, Learner)
    agent.learn(config, 2000, seed=0, run_dir=None)
    cnn_wide = env.unwrapped.action_labels.index("cnn_wide@a100-0")
    hard_states = np.flatnonzero(agent.visits.sum(axis=1))
    assert len(hard_states) == 2
    assert (agent.q[hard_states].argmax(axis=1) == cnn_wide).all()
    assert set(greedy_actions(agent, env, seed=7)) == {cnn_wide}
    # every transition, the final one of each episode included, was learned once
    assert agent.visits.sum() == agent.steps >= 2000


def test_the_same_seed_gives_the_same_table(one_device):
    config, env = one_device
    tables = []
    for _ in range(2):
        agent = Sarsa(env, **FAST)
        agent.learn(config, 300, seed=3, run_dir=None)
        tables.append(agent.q)
    assert np.array_equal(tables[0], tables[1])


@pytest.mark.parametrize("cls", LEARNERS)
def test_masks_are_never_violated(tmp_path, monkeypatch, cls):
    # queues of one task and a fast stream keep devices full, so masks change at most steps
    config = scenario_config(
        tmp_path,
        episode_tasks=60,
        devices=[
            {"kind": "t4", "resident": ["linear"], "max_queue": 1},
            {"kind": "a100", "resident": ["cnn_wide"], "max_queue": 1},
        ],
        workload={"arrivals": {"process": "poisson", "rate": 5000}},
    )
    steps: list[tuple[int, bool, int]] = []
    step = TaskAllocationEnv.step

    def checked_step(self: TaskAllocationEnv, action: int):
        mask = self.action_masks()
        steps.append((int(action), bool(mask[int(action)]), int(mask.sum())))
        return step(self, action)

    monkeypatch.setattr(TaskAllocationEnv, "step", checked_step)
    env = config.make()
    agent = cls(env, seed=1, q_init=1.0, epsilon=0.3, discretiser=DIFFICULTY)
    agent.learn(config, 600, seed=1, run_dir=None)
    greedy_actions(agent, env, seed=5)
    env.close()
    assert len(steps) >= 660
    assert all(valid for _, valid, _ in steps)
    assert any(n_valid < 5 for _, _, n_valid in steps)  # some actions really were masked


def test_action_values_are_q_with_nan_on_masked_actions(one_device):
    config, env = one_device
    agent = ExpectedSarsa(env, **FAST)
    agent.learn(config, 200, seed=0, run_dir=None)
    obs, info = env.reset(seed=0)
    mask = info["action_mask"].copy()
    mask[0] = 0
    values = agent.action_values(obs, mask)
    assert agent.value_label == "Q"
    assert np.isnan(values[0]) and not np.isnan(values[1:]).any()
    assert np.array_equal(values[1:], agent.q[agent.discretiser.state(obs), 1:])


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LEARNERS)
def test_save_load_round_trip_gives_identical_actions(one_device, tmp_path, cls):
    config, env = one_device
    agent = cls(env, **FAST)
    agent.learn(config, 300, seed=0, run_dir=None)
    path = agent.save(tmp_path / "saved")
    assert path == tmp_path / "saved" / AGENT_FILE
    other_env = config.make()
    loaded = cls.load(tmp_path / "saved", other_env)
    assert np.array_equal(loaded.q, agent.q) and np.array_equal(loaded.visits, agent.visits)
    assert loaded.steps == agent.steps and loaded.hyperparameters == agent.hyperparameters
    assert greedy_actions(loaded, other_env, seed=11) == greedy_actions(agent, env, seed=11)
    assert [p.name for p in path.parent.iterdir()] == [AGENT_FILE]
    other_env.close()


def test_saved_file_loads_without_pickle(one_device, tmp_path):
    _, env = one_device
    path = QLearning(env, **FAST).save(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["format"]) == "mtenv-tabular"
        assert str(archive["kind"]) == "q-learning"
        assert all(archive[name].dtype != object for name in archive.files)


def _saved(env: gym.Env, folder: Path, cls: type[TabularLearner] = QLearning) -> Path:
    return cls(env, **FAST).save(folder)


def test_load_errors_name_the_file_and_the_field(one_device, tmp_path):
    config, env = one_device
    path = _saved(env, tmp_path / "good")

    garbage = tmp_path / "garbage" / AGENT_FILE
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not an archive" * 10)
    truncated = tmp_path / "truncated" / AGENT_FILE
    truncated.parent.mkdir()
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    pickled = tmp_path / "pickled" / AGENT_FILE
    pickled.parent.mkdir()
    with np.load(path) as archive:
        fields = {name: archive[name] for name in archive.files}
    np.savez(pickled, **{**fields, "q": np.array([{"q": 1}], dtype=object)})
    wrong_shape = tmp_path / "wrong_shape" / AGENT_FILE
    wrong_shape.parent.mkdir()
    np.savez(wrong_shape, **{**fields, "q": np.zeros((2, 2))})
    missing = tmp_path / "missing" / AGENT_FILE
    missing.parent.mkdir()
    np.savez(missing, **{k: v for k, v in fields.items() if k != "visits"})

    cases = [
        (tmp_path / "nowhere", "no such file"),
        (garbage.parent, "not a readable .npz archive"),
        (truncated.parent, "not a readable .npz archive"),
        (pickled.parent, "not a readable .npz archive"),
        (wrong_shape.parent, "field 'q': expected shape (3, 3)"),
        (missing.parent, "field 'visits' is missing"),
    ]
    for folder, message in cases:
        with pytest.raises(AgentLoadError) as caught:
            QLearning.load(folder, env)
        assert str(folder) in str(caught.value)
        assert message in str(caught.value), str(caught.value)


def test_an_archive_that_expands_past_the_cap_is_refused_unread(one_device, tmp_path, monkeypatch):
    """A small file can hold a huge array of zeros (a decompression bomb): the sizes its zip
    directory declares are checked before any array is decompressed."""
    import zipfile

    import mtenv.agents.tabular.storage as storage

    _, env = one_device
    path = _saved(env, tmp_path / "good")
    bomb = tmp_path / "bomb" / AGENT_FILE
    bomb.parent.mkdir()
    bomb.write_bytes(path.read_bytes())
    with (
        zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("padding.npy", "w") as member,
    ):
        for _ in range(8):
            member.write(bytes(1 << 20))  # 8 MiB of zeros, a few KB compressed
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(storage, "MAX_NPZ_BYTES", 4 << 20)
    with pytest.raises(AgentLoadError, match="once decompressed; expected at most 4,194,304"):
        QLearning.load(bomb.parent, env)


def test_loading_another_kind_or_another_env_fails(one_device, tmp_path):
    _, env = one_device
    _saved(env, tmp_path / "sarsa", Sarsa)
    with pytest.raises(AgentLoadError, match="field 'kind': expected 'q-learning', got 'sarsa'"):
        QLearning.load(tmp_path / "sarsa", env)

    other = TaskAllocationEnv(tiny_scenario())
    _saved(other, tmp_path / "other")
    with pytest.raises(AgentLoadError, match="field 'feature_names'") as caught:
        QLearning.load(tmp_path / "other", env)
    assert str(tmp_path / "other" / AGENT_FILE) in str(caught.value)


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LEARNERS)
def test_resume_after_an_interruption_gives_the_bit_identical_table(one_device, tmp_path, cls):
    config, env = one_device
    total = 400  # ten 40-task episodes
    hyperparameters = {**FAST, "n_step": 3}  # returns in flight at an episode's end, too

    whole = cls(env, **hyperparameters)
    whole_log = Recorder()
    whole.learn(config, total, seed=5, run_dir=tmp_path / "whole", callback=whole_log)

    first = cls(env, **hyperparameters)
    with pytest.raises(KeyboardInterrupt):
        first.learn(config, total, seed=5, run_dir=tmp_path / "cut", callback=Recorder(3))
    resumed = cls(env, **hyperparameters)
    done = resumed.resume(tmp_path / "cut")
    assert done == 3 * 40  # the fourth episode was lost with the interruption
    resumed_log = Recorder()
    resumed.learn(config, total, seed=5, run_dir=tmp_path / "cut", callback=resumed_log)

    assert np.array_equal(resumed.q, whole.q)
    assert np.array_equal(resumed.visits, whole.visits)
    assert (resumed.steps, resumed.episodes) == (whole.steps, whole.episodes)
    assert resumed_log.episodes == whole_log.episodes[3:]
    assert resumed_log.checkpoints == [step for step, _ in whole_log.episodes[3:]]
    checkpoints = tmp_path / "cut" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == [CHECKPOINT_FILE]


def test_resume_without_a_checkpoint_starts_at_zero(one_device, tmp_path):
    _, env = one_device
    assert QLearning(env, **FAST).resume(tmp_path / "empty") == 0


def test_resume_refuses_other_hyperparameters_or_another_seed(one_device, tmp_path):
    config, env = one_device
    QLearning(env, **FAST).learn(config, 40, seed=5, run_dir=tmp_path)
    with pytest.raises(AgentLoadError, match="field 'hyperparameters'"):
        QLearning(env, **{**FAST, "gamma": 0.5}).resume(tmp_path)
    agent = QLearning(env, **FAST)
    assert agent.resume(tmp_path) == 40
    with pytest.raises(ValueError, match="seed 5"):
        agent.learn(config, 80, seed=6, run_dir=tmp_path)


# --- shipped hyperparameters -------------------------------------------------------------------


def test_every_registered_env_has_hyperparameters_that_build(shipped_envs):
    for env_id, env in shipped_envs.items():
        for kind, cls in TABULAR_LEARNERS.items():
            n_timesteps, hyperparameters = hyperparameters_for(kind, env_id)
            assert n_timesteps > 0
            agent = cls(env, **hyperparameters)
            assert agent.q.shape == (agent.discretiser.n_states, env.action_space.n)
