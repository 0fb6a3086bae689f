"""The candidate-scoring policy and the recipe that starts PPO from a heuristic.

The network's properties hold by construction and are checked on real observations: permuting
the devices permutes the logits, one set of weights runs on clusters of any size. Behaviour
cloning reproduces its teacher on states it did not see, and fine-tuning from a teacher that is
not the best reaches the known best policy of a tiny scenario.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from conftest import BASE_SCENARIO, merge

from mtenv.agents.interfaces import BasePolicy, EnvConfig
from mtenv.agents.ppo.candidates import CandidateNetwork, layout_indices
from mtenv.agents.ppo.imitation import (
    TeacherPull,
    Teachers,
    agreement,
    clone,
    collect,
    pick_teachers,
)
from mtenv.agents.ppo.learner import MaskablePPOAgent
from mtenv.envs.observation import ObservationLayout


def observations(env_id: str, n: int, seed: int = 0) -> tuple[gym.Env, np.ndarray]:
    """``n`` observations of a random masked policy on ``env_id``."""
    env = gym.make(env_id, inference="memoized")
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    seen = []
    for _ in range(n):
        seen.append(obs)
        obs, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
        if terminated:
            obs, info = env.reset()
    return env, np.asarray(seen, dtype=np.float32)


def network(env: gym.Env, seed: int = 0) -> CandidateNetwork:
    torch.manual_seed(seed)
    return CandidateNetwork(layout_indices(ObservationLayout.of(env)), hidden=16)


def permute_devices(obs: np.ndarray, layout: ObservationLayout, perm: np.ndarray) -> np.ndarray:
    """The same observations with device ``perm[i]`` in position ``i``."""
    out = obs.copy()
    out[:, layout.device_at] = obs[:, layout.device_at[perm]]
    for block in (layout.est_at, layout.load_cost_at, layout.cost_at):
        out[:, block] = obs[:, block[:, perm]]
    return out


def test_permuting_the_devices_permutes_the_logits_and_keeps_the_value():
    env, obs = observations("mtenv/Quickstart-v0", 64)
    layout, net = ObservationLayout.of(env), network(env)
    n_plans, n_devices = layout.est_at.shape
    perm = np.array([2, 0, 1])
    with torch.no_grad():
        logits, value = net(torch.as_tensor(obs))
        logits_p, value_p = net(torch.as_tensor(permute_devices(obs, layout, perm)))
    grid = logits[:, :-1].reshape(-1, n_plans, n_devices)
    grid_p = logits_p[:, :-1].reshape(-1, n_plans, n_devices)
    torch.testing.assert_close(grid_p, grid[:, :, perm])
    torch.testing.assert_close(logits_p[:, -1], logits[:, -1])  # rejecting
    torch.testing.assert_close(value_p, value)
    assert not torch.allclose(grid_p, grid)  # the devices differ: a real permutation


def test_one_set_of_weights_scores_clusters_of_any_size():
    small, small_obs = observations("mtenv/Quickstart-v0", 8)
    large, large_obs = observations("mtenv/DatacenterDiurnal-v0", 8)
    assert small.unwrapped.n_devices != large.unwrapped.n_devices
    trained, other = network(small, seed=1), network(large, seed=2)
    other.load_state_dict(trained.state_dict())
    with torch.no_grad():
        for env, obs, net in ((small, small_obs, trained), (large, large_obs, other)):
            logits, value = net(torch.as_tensor(obs))
            assert logits.shape == (8, env.action_space.n)
            assert value.shape == (8, net.latent_dim_vf)
            assert torch.isfinite(logits).all()


def scenario_config(tmp_path: Path, changes: dict[str, Any]) -> EnvConfig:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_SCENARIO, changes)))
    return EnvConfig("mtenv/TaskAllocation-v0", {"scenario": str(path)})


def test_behaviour_cloning_reproduces_its_teacher_on_unseen_states():
    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized"})
    env = config.make()
    agent = MaskablePPOAgent(env, n_envs=1, vec_env="dummy", teacher="least-loaded")
    from stable_baselines3.common.vec_env import DummyVecEnv

    agent.model = agent._build(DummyVecEnv([config.make]), seed=0, tensorboard=None)
    train = collect(config, "least-loaded", 2400, seed=0, gamma=0.5)
    held_out = collect(config, "least-loaded", 600, seed=100, gamma=0.5)
    before = agreement(agent.model.policy, held_out)
    clone(agent.model.policy, train, epochs=40, seed=0)
    assert agreement(agent.model.policy, held_out) >= 0.9 > before


# One A100 with a fast, weak model and a slow, strong one; every input is hard: the strong
# model is the known best plan, the fast one is what the `fastest` heuristic picks.
CLEAR_WINNER: dict[str, Any] = {
    "episode_tasks": 40,
    "devices": [{"kind": "a100", "resident": ["linear", "cnn_wide"], "max_queue": 100_000}],
    "workload": {"difficulty": [0, 0, 0, 0, 1]},
}
BEST_ACTION = 1  # plan cnn_wide on the only device


class Quiet:
    """A training callback that listens to nothing."""

    def on_episode(self, step: int, episode_return: float) -> None: ...

    def on_checkpoint(self, step: int) -> None: ...

    def on_phase(self, text: str) -> None: ...


def test_fine_tuning_climbs_from_a_weaker_teacher_to_the_best_policy(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    agent = MaskablePPOAgent(
        env,
        n_envs=2,
        vec_env="dummy",
        n_steps=64,
        batch_size=64,
        learning_rate=3e-3,
        gamma=0.5,
        checkpoint_freq=0,
        teacher="fastest",
        demo_steps=200,
        dagger_rounds=0,
        teacher_decay=0.2,
    )
    agent.learn(config, 3000, seed=0, run_dir=tmp_path / "run", callback=Quiet())
    record = yaml.safe_load((tmp_path / "run" / "imitation.json").read_text())
    assert record["teacher"] == "fastest" and record["agreement_by_round"][0] > 0.9
    obs, info = env.reset(seed=1)
    chosen = set()
    for _ in range(40):
        action = agent.act(obs, info["action_mask"])
        chosen.add(action)
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break
    assert chosen == {BEST_ACTION}


# The tiny scenario with a 5 ms SLO: at its own load INFaaS is the best heuristic; at 256 times
# it, only the fast model is ever on time, and `expected-reward`, which then takes it and fills
# batches, is.
LOAD_SENSITIVE: dict[str, Any] = merge(
    CLEAR_WINNER, {"workload": {"task_types": {"classify": {"slo_ms": 5}}}}
)


def test_auto_picks_the_best_heuristic_at_each_training_load(tmp_path):
    config = scenario_config(tmp_path, LOAD_SENSITIVE)
    teachers = pick_teachers(config, [1.0, 256.0], episodes=2, seed=0)
    assert teachers.loads == (None, 1.0, 256.0)
    assert teachers.names == ("infaas", "infaas", "expected-reward")
    assert teachers.own_load == 1.0
    heavy = ["expected-reward"] * 2
    assert teachers.for_envs([None, 1.0, 8.0, 32.0, 256.0]) == ["infaas"] * 3 + heavy
    assert teachers.demonstrating() == [(None, "infaas"), (256.0, "expected-reward")]


def test_one_teacher_demonstrates_at_the_scenarios_load_only():
    teachers = Teachers.one("fastest", (None, 0.75, 2.0), own_load=1.0)
    assert teachers.for_envs([0.75, 1.0, 2.0]) == ["fastest"] * 3
    assert teachers.demonstrating() == [(None, "fastest")]


def test_cloning_learns_each_loads_teacher_at_its_load(tmp_path):
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = scenario_config(tmp_path, LOAD_SENSITIVE)
    agent = MaskablePPOAgent(
        config.make(), n_envs=1, vec_env="dummy", teacher="auto", demo_steps=1000, dagger_rounds=1
    )
    agent.model = agent._build(DummyVecEnv([config.make]), seed=0, tensorboard=None)
    teachers = Teachers((None, 256.0), ("infaas", "fastest"), own_load=1.0)
    agent._imitate(config, teachers, seed=0, run_dir=tmp_path, callback=Quiet())
    policy = agent.model.policy
    # (a clone of INFaaS alone agrees with `fastest` on none of the states at 256 times the load)
    for load, name in teachers.demonstrating():
        held_out = collect(config.at_load(load), name, 200, seed=500, gamma=0.5)
        assert agreement(policy, held_out) >= 0.8, (load, name)
    record = json.loads((tmp_path / "imitation.json").read_text())
    assert record["teachers"] == [[None, "infaas"], [256.0, "fastest"]]


class Recording(BasePolicy):
    """A teacher that labels every state with its first valid action and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        self.seen.append(obs.copy())
        return int(np.flatnonzero(mask)[0])


def test_the_pull_labels_each_envs_states_with_that_envs_teacher(tmp_path):
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = scenario_config(tmp_path, CLEAR_WINNER)
    agent = MaskablePPOAgent(config.make(), n_envs=2, vec_env="dummy", n_steps=8, batch_size=16)
    model = agent._build(DummyVecEnv([config.make] * 2), seed=0, tensorboard=None)
    buffer = model.rollout_buffer
    buffer.observations[:] = 0.0
    buffer.observations[:, 1, 0] = 1.0  # env 1's states carry a mark
    buffer.action_masks[:] = 1.0
    teachers = [Recording(), Recording()]
    pull = TeacherPull(teachers, coef=1.0, decay=1.0, total_steps=1_000)
    pull.init_callback(model)
    pull.on_rollout_end()
    assert [len(t.seen) for t in teachers] == [8, 8]
    assert [sorted({float(o[0]) for o in t.seen}) for t in teachers] == [[0.0], [1.0]]
    wrong = TeacherPull([Recording()] * 3, coef=1.0, decay=1.0, total_steps=1_000)
    wrong.init_callback(model)
    with pytest.raises(ValueError, match="3 teachers for 2 training envs"):
        wrong.on_rollout_end()


def test_a_resumed_run_keeps_the_teachers_its_cloning_chose(tmp_path, monkeypatch):
    import mtenv.agents.ppo.learner as learner

    config = scenario_config(tmp_path, CLEAR_WINNER)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = run_dir / "imitation.json"
    agent = MaskablePPOAgent(config.make(), n_envs=2, vec_env="dummy", teacher="auto")
    loads = [0.5, 2.0]

    def no_picking(*args, **kwargs):
        raise AssertionError("the recorded teachers should be used")

    monkeypatch.setattr(learner, "pick_teachers", no_picking)
    chosen = {
        "teacher": "infaas",
        "teachers": [[None, "infaas"], [0.5, "infaas"], [2.0, "fastest"]],
    }
    record.write_text(json.dumps({**chosen, "own_load": 1.0}))
    assert agent._teachers(config, loads, 0, run_dir, Quiet()).names == (
        "infaas",
        "infaas",
        "fastest",
    )
    record.write_text('{"teacher": "most-accurate"}')  # a run of an older mtenv: one teacher
    assert agent._teachers(config, loads, 0, run_dir, Quiet()).names == ("most-accurate",) * 3
    picked = Teachers.one("fastest", (None, 0.5, 2.0), 1.0)
    monkeypatch.setattr(learner, "pick_teachers", lambda *args: picked)
    for broken in (
        '{"teacher": "not-a-heuristic"}',
        json.dumps({**chosen, "own_load": 1.0, "teachers": [[None, "infaas"], [3.0, "fastest"]]}),
        json.dumps({**chosen, "own_load": -1.0}),
        json.dumps({**chosen, "teachers": "infaas"}),
    ):
        record.write_text(broken)
        assert agent._teachers(config, loads, 0, run_dir, Quiet()) == picked, broken
