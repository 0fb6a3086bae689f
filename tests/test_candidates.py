"""The candidate-scoring policy and the recipe that starts PPO from a heuristic.

The network's properties hold by construction and are checked on real observations: permuting
the devices permutes the logits, one set of weights runs on clusters of any size. Behaviour
cloning reproduces its teacher on states it did not see, and fine-tuning from a teacher that is
not the best reaches the known best policy of a tiny scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from conftest import BASE_SCENARIO, merge

from mtenv.agents.interfaces import EnvConfig
from mtenv.agents.ppo.candidates import CandidateNetwork, layout_indices
from mtenv.agents.ppo.imitation import agreement, clone, collect
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


def test_a_resumed_run_keeps_the_teacher_its_cloning_chose(tmp_path, monkeypatch):
    import mtenv.agents.ppo.learner as learner

    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "imitation.json").write_text('{"teacher": "most-accurate"}')
    agent = MaskablePPOAgent(env, n_envs=1, vec_env="dummy", teacher="auto")

    def no_picking(*args, **kwargs):
        raise AssertionError("the recorded teacher should be used")

    monkeypatch.setattr(learner, "pick_teacher", no_picking)
    assert agent._teacher_name(config, 0, run_dir) == "most-accurate"
    (run_dir / "imitation.json").write_text('{"teacher": "not-a-heuristic"}')
    monkeypatch.setattr(learner, "pick_teacher", lambda *args: "fastest")
    assert agent._teacher_name(config, 0, run_dir) == "fastest"
