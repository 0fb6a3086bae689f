"""The PPO learners: they learn, respect masks, save, load, refuse bad files and resume.

The SB3 zips here are checkpoints and the ``agent.zip`` of older run folders, loaded with
``trust_pickle=True``; agents saved without pickle: ``test_saved_agents.py``.

Budgets are tiny (a few thousand steps on a tiny scenario): the tests check behaviour, the
tuned budgets live in the hyperparameter files.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import BASE_SCENARIO, merge
from safetensors.torch import load_file

import mtenv
from mtenv.agents.hyperparams import hyperparameters_for
from mtenv.agents.interfaces import AgentLoadError, EnvConfig, Learner
from mtenv.agents.ppo.imitation import play
from mtenv.agents.ppo.learner import MaskablePPOAgent, PPOAgent, SB3Learner
from mtenv.agents.ppo.selection import Evaluations, saved_weights
from mtenv.agents.ppo.settings import TrainingSettings
from mtenv.agents.ppo.storage import META_MEMBER, ZIP_FILE, checkpoints, write_zip

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# One A100 holding a weak and a strong classifier, light load, only the hardest inputs: serving
# with cnn_wide is right far more often (0.82 against 0.23) and always on time.
CLEAR_WINNER: dict[str, Any] = {
    "episode_tasks": 40,
    "devices": [{"kind": "a100", "resident": ["linear", "cnn_wide"], "max_queue": 100_000}],
    "workload": {"difficulty": [0, 0, 0, 0, 1]},
}
BEST_ACTION = 1  # plan cnn_wide (second plan) on the only device
TINY_PPO: dict[str, Any] = {
    "n_envs": 2,
    "vec_env": "dummy",
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 4,
    "learning_rate": 3e-3,
    "gamma": 0.5,
    "checkpoint_freq": 0,
    "policy_kwargs": {"net_arch": [32]},
}
# Two task types, and plans that serve only one of them: the mask changes with every task.
MIXED_TYPES: dict[str, Any] = {
    "episode_tasks": 40,
    "models": ["linear", "loc_linear"],
    "devices": [
        {"kind": "t4", "resident": ["linear", "loc_linear"], "max_queue": 2},
        {"kind": "l4", "resident": ["linear", "loc_linear"], "max_queue": 100_000},
    ],
    "workload": {
        "task_types": {"classify": {"slo_ms": 50, "share": 0.5}, "localize": {"slo_ms": 50}}
    },
}


class Killed(Exception):
    """What a kill looks like to the training loop, in a test."""


class Recorder:
    """A TrainingCallback that keeps what it is told; optionally fails at the n-th checkpoint,
    as a kill would."""

    def __init__(self, fail_at_checkpoint: int | None = None):
        self.episodes: list[tuple[int, float]] = []
        self.checkpoints: list[int] = []
        self.phases: list[str] = []
        self.fail_at = fail_at_checkpoint

    def on_episode(self, step: int, episode_return: float) -> None:
        self.episodes.append((step, episode_return))

    def on_checkpoint(self, step: int) -> None:
        self.checkpoints.append(step)
        if self.fail_at is not None and len(self.checkpoints) == self.fail_at:
            raise Killed(f"killed after the checkpoint at step {step}")

    def on_phase(self, text: str) -> None:
        self.phases.append(text)


def scenario_config(folder: Path, changes: dict[str, Any]) -> EnvConfig:
    """An EnvConfig for a tiny scenario written as a YAML file (what subprocess workers read)."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_SCENARIO, changes)))
    return EnvConfig("mtenv/TaskAllocation-v0", {"scenario": str(path), "inference": "memoized"})


def episode_observations(env, policy, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observation, mask) of every decision of one episode played by ``policy``."""
    seen = []
    obs, info = env.reset(seed=seed)
    while True:
        mask = info["action_mask"]
        seen.append((obs, mask))
        obs, _, terminated, truncated, info = env.step(policy.act(obs, mask))
        if terminated or truncated:
            return seen


def weights(agent: SB3Learner) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.model.policy.state_dict().items()}


@pytest.fixture(scope="module")
def clear_winner(tmp_path_factory):
    """A MaskablePPO agent trained briefly on the clear-winner scenario, with its env."""
    folder = tmp_path_factory.mktemp("clear_winner")
    config = scenario_config(folder, CLEAR_WINNER)
    env = config.make()
    agent = MaskablePPOAgent(env, **TINY_PPO)
    agent.learn(config, 3072, seed=0, run_dir=folder / "run", callback=Recorder())
    yield agent, env, config
    env.close()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Briefly trained MaskablePPO and PPO agents on a scenario whose masks vary."""
    folder = tmp_path_factory.mktemp("mixed")
    config = scenario_config(folder, MIXED_TYPES)
    env = config.make()
    agents = {}
    for cls in (MaskablePPOAgent, PPOAgent):
        agent = cls(env, **TINY_PPO)
        agent.learn(config, 256, seed=1, run_dir=folder / cls.kind, callback=Recorder())
        agents[cls.kind] = agent
    yield agents, env
    env.close()


def test_learners_implement_the_learner_protocol(clear_winner):
    agent, env, _ = clear_winner
    assert isinstance(agent, Learner)
    assert isinstance(PPOAgent(env, **TINY_PPO), Learner)
    assert agent.value_label == "probability"


def test_maskable_ppo_learns_the_clear_winner(clear_winner):
    agent, env, _ = clear_winner
    decisions = episode_observations(env, agent, seed=7)
    chosen = [agent.act(obs, mask) for obs, mask in decisions]
    assert chosen == [BEST_ACTION] * len(decisions)


def test_action_values_are_probabilities_over_the_valid_actions(mixed):
    agents, env = mixed
    obs, info = env.reset(seed=3)
    for _ in range(10):
        mask = info["action_mask"]
        for agent in agents.values():
            values = agent.action_values(obs, mask)
            assert values.shape == (env.action_space.n,)
            assert np.isnan(values[mask == 0]).all()
            assert np.nansum(values) == pytest.approx(1.0, abs=1e-5)
            assert agent.act(obs, mask) == int(np.nanargmax(values))
        obs, _, _, _, info = env.step(int(np.flatnonzero(mask)[0]))


@pytest.mark.parametrize("kind", ["maskable-ppo", "ppo"])
def test_act_never_breaks_the_mask(mixed, kind):
    agents, env = mixed
    agent = agents[kind]
    decisions = episode_observations(env, agent, seed=2)
    assert any(mask.sum() < len(mask) for _, mask in decisions)  # the masks do forbid actions
    for obs, mask in decisions:
        assert mask[agent.act(obs, mask)] == 1
        # Forbid the policy's own favourite too: it must pick another valid action.
        favourite = int(np.nanargmax(agent.action_values(obs, np.ones_like(mask))))
        narrowed = mask.copy()
        narrowed[favourite] = 0
        narrowed[-1] = 1
        action = agent.act(obs, narrowed)
        assert narrowed[action] == 1 and action != favourite


def test_save_and_load_give_identical_actions(clear_winner, tmp_path):
    agent, env, _ = clear_winner
    path = agent.save(tmp_path)
    assert path == tmp_path / "agent.json"
    assert not (tmp_path / ZIP_FILE).exists()
    loaded = MaskablePPOAgent.load(tmp_path, env)
    assert loaded.hyperparameters == agent.hyperparameters
    for obs, mask in episode_observations(env, agent, seed=11):
        assert loaded.act(obs, mask) == agent.act(obs, mask)
        np.testing.assert_array_equal(
            loaded.action_values(obs, mask), agent.action_values(obs, mask)
        )


def rewrite_zip(source: Path, target: Path, changes: dict[str, bytes | None]) -> None:
    """A copy of the zip at ``source`` with members replaced (``None``: removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            if item.filename not in changes:
                new.writestr(item, old.read(item.filename))
        for name, data in changes.items():
            if data is not None:
                new.writestr(name, data)


@pytest.fixture
def saved(clear_winner, tmp_path) -> Path:
    """The agent as an ``agent.zip``, what older mtenv versions saved."""
    agent, _, _ = clear_winner
    path = tmp_path / "good" / ZIP_FILE
    write_zip(agent.model, agent._meta(), path)
    return path


def test_a_trusted_zip_loads_and_acts_like_the_agent(clear_winner, saved):
    agent, env, _ = clear_winner
    loaded = MaskablePPOAgent.load(saved.parent, env, trust_pickle=True)
    for obs, mask in episode_observations(env, agent, seed=11):
        assert loaded.act(obs, mask) == agent.act(obs, mask)


def test_load_refuses_a_missing_file(clear_winner, tmp_path):
    _, env, _ = clear_winner
    with pytest.raises(AgentLoadError, match=r"nowhere.*agent\.json: no such file"):
        MaskablePPOAgent.load(tmp_path / "nowhere", env)


def test_load_refuses_a_file_that_is_not_a_zip(clear_winner, tmp_path):
    _, env, _ = clear_winner
    (tmp_path / ZIP_FILE).write_text("not a zip")
    with pytest.raises(AgentLoadError, match=r"agent\.zip: not a zip file"):
        MaskablePPOAgent.load(tmp_path, env, trust_pickle=True)


def test_load_refuses_a_truncated_zip(clear_winner, saved, tmp_path):
    _, env, _ = clear_winner
    folder = tmp_path / "truncated"
    folder.mkdir()
    data = saved.read_bytes()
    (folder / ZIP_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(AgentLoadError, match="corrupted"):
        MaskablePPOAgent.load(folder, env, trust_pickle=True)


def test_load_refuses_an_sb3_zip_not_saved_by_mtenv(clear_winner, tmp_path):
    agent, env, _ = clear_winner
    agent.model.save(tmp_path / ZIP_FILE)
    with pytest.raises(AgentLoadError, match=f"stable-baselines3 zip without {META_MEMBER}"):
        MaskablePPOAgent.load(tmp_path, env, trust_pickle=True)


def test_load_refuses_corrupted_model_data(clear_winner, saved, tmp_path):
    _, env, _ = clear_winner
    rewrite_zip(saved, tmp_path / "bad" / ZIP_FILE, {"policy.pth": b"garbage"})
    with pytest.raises(AgentLoadError, match="stable-baselines3 cannot load it"):
        MaskablePPOAgent.load(tmp_path / "bad", env, trust_pickle=True)


def test_load_refuses_invalid_metadata(clear_winner, saved, tmp_path):
    _, env, _ = clear_winner
    rewrite_zip(saved, tmp_path / "bad" / ZIP_FILE, {META_MEMBER: b"{not json"})
    with pytest.raises(AgentLoadError, match=f"{META_MEMBER} is not valid"):
        MaskablePPOAgent.load(tmp_path / "bad", env, trust_pickle=True)


def test_load_refuses_an_agent_of_another_kind(clear_winner, saved):
    _, env, _ = clear_winner
    with pytest.raises(AgentLoadError, match="a 'maskable-ppo' agent, expected 'ppo'"):
        PPOAgent.load(saved.parent, env, trust_pickle=True)


def test_load_refuses_an_env_with_another_observation_shape(clear_winner, saved, mixed):
    _, clear_env, _ = clear_winner
    _, other_env = mixed
    expected = rf"observation shape \({clear_env.observation_space.shape[0]},\) in the file, "
    expected += rf"\({other_env.observation_space.shape[0]},\) in the env"
    with pytest.raises(AgentLoadError, match=expected):
        MaskablePPOAgent.load(saved.parent, other_env, trust_pickle=True)


def test_load_refuses_another_action_count(clear_winner, saved, tmp_path):
    _, env, _ = clear_winner
    with zipfile.ZipFile(saved) as archive:
        meta = json.loads(archive.read(META_MEMBER))
    meta["n_actions"] += 2
    rewrite_zip(saved, tmp_path / "bad" / ZIP_FILE, {META_MEMBER: json.dumps(meta).encode()})
    n = env.action_space.n
    with pytest.raises(AgentLoadError, match=f"action count {n + 2} in the file, {n} in the env"):
        MaskablePPOAgent.load(tmp_path / "bad", env, trust_pickle=True)


def test_load_refuses_a_scenario_with_other_devices(clear_winner, saved, tmp_path):
    _, env, _ = clear_winner
    other = merge(CLEAR_WINNER, {"devices": [{**CLEAR_WINNER["devices"][0], "kind": "h100"}]})
    other_env = scenario_config(tmp_path, other).make()
    assert other_env.observation_space.shape == env.observation_space.shape
    with pytest.raises(AgentLoadError, match=r"feature_names\[\d+\] is '[^']*a100"):
        MaskablePPOAgent.load(saved.parent, other_env, trust_pickle=True)


def credit(info: dict) -> list[tuple[int, float]]:
    """``(decision_step, reward)`` of each task settled in the step, from ``info`` alone."""
    feedback = info["feedback"]
    return list(zip(feedback["decision_step"].tolist(), feedback["reward"].tolist(), strict=True))


def test_feedback_reports_every_reward_once_with_its_deciding_step(tmp_path):
    env = scenario_config(tmp_path, MIXED_TYPES).make()
    obs, info = env.reset(seed=4)
    total, credited, decided = 0.0, 0.0, []
    step = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(
            int(np.flatnonzero(info["action_mask"])[0])
        )
        total += reward
        credited += sum(r for _, r in credit(info))
        assert sum(r for _, r in credit(info)) == pytest.approx(reward)
        decided += [d for d, _ in credit(info)]
        assert all(d <= step for d, _ in credit(info))
        step += 1
        if terminated or truncated:
            break
    assert credited == pytest.approx(total)
    assert sorted(decided) == list(range(step))
    env.close()


def test_training_rewards_sit_at_the_steps_that_decided_the_tasks(tmp_path):
    config = scenario_config(tmp_path, {**CLEAR_WINNER, "episode_tasks": 200})
    agent = MaskablePPOAgent(config.make(), **{**TINY_PPO, "n_envs": 1})
    agent.learn(config, 64, seed=5, run_dir=tmp_path / "run", callback=Recorder())
    buffer = agent.model.rollout_buffer  # the one rollout, still in the buffer after training
    env = config.make()
    _, info = env.reset(seed=5)  # the seed the training env was reset with
    expected = np.zeros(64)
    for action in buffer.actions[:, 0].astype(int):
        _, _, _, _, info = env.step(action)
        for decided, reward in credit(info):
            expected[decided] += reward
    np.testing.assert_allclose(buffer.rewards[:, 0], expected, atol=1e-5)
    assert len(set(buffer.actions[:, 0].astype(int).tolist())) > 1  # not a trivial rollout
    env.close()


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    settings = {**TINY_PPO, "checkpoint_freq": 256}  # a checkpoint every other rollout
    run_dir = tmp_path / "run"
    killed = MaskablePPOAgent(env, **settings)
    with pytest.raises(Killed):
        killed.learn(config, 1024, seed=0, run_dir=run_dir, callback=Recorder(2))
    assert [step for step, _ in checkpoints(run_dir / "checkpoints")] == [256, 512]
    (run_dir / "checkpoints" / "step_768.zip.partial").write_bytes(b"half a save")

    resumed = MaskablePPOAgent(env, **settings)
    assert resumed.resume(run_dir) == 512
    assert not list((run_dir / "checkpoints").glob("*.partial"))
    for name, value in weights(killed).items():
        assert torch.equal(weights(resumed)[name], value), name
    recorder = Recorder()
    resumed.learn(config, 1024, seed=0, run_dir=run_dir, callback=recorder)
    assert resumed.model.num_timesteps == 1024
    assert recorder.checkpoints == [768, 1024]
    assert min(step for step, _ in recorder.episodes) > 512
    assert any(
        not torch.equal(weights(resumed)[name], value) for name, value in weights(killed).items()
    )
    assert MaskablePPOAgent(env, **settings).resume(run_dir) == 1024
    env.close()


def test_resume_refuses_other_hyperparameters(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    MaskablePPOAgent(env, **TINY_PPO).learn(config, 128, 0, tmp_path / "run", Recorder())
    changed = MaskablePPOAgent(env, **{**TINY_PPO, "gamma": 0.9})
    with pytest.raises(ValueError, match="gamma"):
        changed.resume(tmp_path / "run")
    assert MaskablePPOAgent(env, **TINY_PPO).resume(tmp_path / "nothing here") == 0
    env.close()


def test_a_run_writes_tensorboard_logs_checkpoints_and_evaluations(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    settings = {**TINY_PPO, "checkpoint_freq": 128, "eval_freq": 256, "eval_episodes": 1}
    agent = PPOAgent(env, **settings)
    recorder = Recorder()
    agent.learn(config, 512, seed=0, run_dir=tmp_path / "run", callback=recorder)
    assert list((tmp_path / "run" / "tensorboard").glob("run_*/events.out.tfevents.*"))
    assert recorder.checkpoints == [128, 256, 384, 512]
    kept = [step for step, _ in checkpoints(tmp_path / "run" / "checkpoints")]
    assert kept == [256, 384, 512]
    with np.load(tmp_path / "run" / "eval" / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [0, 256, 512]
    assert recorder.episodes and all(step <= 512 for step, _ in recorder.episodes)
    env.close()


def new_bests(evaluations: Evaluations) -> set[int]:
    """The steps whose mean validation return beat every earlier one."""
    best, found = -np.inf, set()
    for step, mean in zip(evaluations.steps, evaluations.means(), strict=True):
        if mean > best:
            best, found = mean, found | {step}
    return found


def saved_weight_steps(folder: Path) -> set[int]:
    return set(saved_weights(folder))


def test_the_agent_acts_with_its_best_validated_weights(tmp_path):
    config = scenario_config(tmp_path, MIXED_TYPES)
    env = config.make()
    settings = {**TINY_PPO, "eval_freq": 256, "eval_episodes": 2}
    agent = MaskablePPOAgent(env, **settings)
    agent.learn(config, 1024, seed=0, run_dir=tmp_path / "run", callback=Recorder())
    evaluations = Evaluations.read(tmp_path / "run" / "eval")
    assert evaluations.steps == [0, 256, 512, 768, 1024]  # the start, then every eval_freq
    assert all(len(row) == 2 for row in evaluations.returns)
    assert agent.selected_step == evaluations.best()
    assert saved_weight_steps(tmp_path / "run" / "eval") == new_bests(evaluations)
    best = load_file(saved_weights(tmp_path / "run" / "eval")[agent.selected_step])
    agent.save(tmp_path / "saved")
    saved = load_file(str(tmp_path / "saved" / "agent.safetensors"))
    assert saved.keys() == best.keys()
    assert all(torch.equal(saved[name], best[name]) for name in best)
    described = json.loads((tmp_path / "saved" / "agent.json").read_text())
    assert (described["num_timesteps"], described["selected_step"]) == (1024, agent.selected_step)
    MaskablePPOAgent.load(tmp_path / "saved", env).save(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "agent.json").read_text())
    assert again["selected_step"] == agent.selected_step  # a resaved agent keeps its origin
    env.close()


def test_every_validation_replays_the_same_episodes(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    # cloned from a heuristic, then frozen: PPO's updates change nothing
    cloned = {"teacher": "most-accurate", "demo_steps": 200, "dagger_rounds": 0, "clone_epochs": 5}
    frozen = {**TINY_PPO, **cloned, "learning_rate": 0.0, "eval_freq": 256, "eval_episodes": 2}
    agent = MaskablePPOAgent(env, **frozen)
    agent.learn(config, 768, seed=3, run_dir=tmp_path / "run", callback=Recorder())
    evaluations = Evaluations.read(tmp_path / "run" / "eval")
    # weights that never change score the same on every validation: the episodes are paired
    assert len(evaluations.steps) == 4
    assert all(row == evaluations.returns[0] for row in evaluations.returns)
    assert evaluations.returns[0][0] != evaluations.returns[0][1]  # two different episodes
    assert agent.selected_step == 0  # ties go to the earliest
    env.close()


def test_training_says_when_it_chooses_and_clones_its_teacher(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    cloned = {"teacher": "auto", "demo_steps": 64, "dagger_rounds": 1, "clone_epochs": 1}
    recorder = Recorder()
    MaskablePPOAgent(env, **TINY_PPO, **cloned).learn(config, 128, 0, tmp_path / "run", recorder)
    teacher = json.loads((tmp_path / "run" / "imitation.json").read_text())["teacher"]
    assert recorder.phases == [
        "choosing the teacher: the best heuristic at the scenario's load",
        f"behaviour cloning {teacher}: round 1/2",
        f"behaviour cloning {teacher}: round 2/2",
    ]
    env.close()


def test_validation_plays_every_episode_at_each_load(tmp_path):
    config = scenario_config(tmp_path, CLEAR_WINNER)
    env = config.make()
    frozen = {**TINY_PPO, "learning_rate": 0.0, "eval_freq": 256, "eval_episodes": 2}
    agent = MaskablePPOAgent(env, **frozen, eval_loads=[1.0, 3.0])
    agent.learn(config, 256, seed=5, run_dir=tmp_path / "run", callback=Recorder())
    evaluations = Evaluations.read(tmp_path / "run" / "eval")
    seeds = [5 + 1_000_003 + i for i in range(2)]
    played = [
        play(config.make(load_scale=load), agent.act, seed)[0]
        for load in (1.0, 3.0)
        for seed in seeds
    ]
    assert evaluations.returns[0] == played  # episodes ordered load by load
    assert played[:2] != played[2:]  # the heavier load is another workload
    env.close()


def test_a_resumed_run_forgets_the_validations_after_its_checkpoint(tmp_path):
    config = scenario_config(tmp_path, MIXED_TYPES)
    env = config.make()
    settings = {**TINY_PPO, "eval_freq": 256, "eval_episodes": 1, "checkpoint_freq": 512}
    run_dir = tmp_path / "run"
    MaskablePPOAgent(env, **settings).learn(config, 768, 0, run_dir, Recorder())
    # killed after validating at 768, before the checkpoint at 1024: the last checkpoint is 512
    (run_dir / "checkpoints" / "step_768.zip").unlink()
    resumed = MaskablePPOAgent(env, **settings)
    assert resumed.resume(run_dir) == 512
    resumed.learn(config, 1024, 0, run_dir, Recorder())
    evaluations = Evaluations.read(run_dir / "eval")
    assert evaluations.steps == [0, 256, 512, 768, 1024]
    assert saved_weight_steps(run_dir / "eval") == new_bests(evaluations)
    assert resumed.selected_step == evaluations.best()
    env.close()


def test_subprocess_workers_make_mtenv_envs_by_id(tmp_path):
    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized", "episode_tasks": 20})
    env = config.make()
    settings = {**TINY_PPO, "vec_env": "subproc", "n_steps": 32, "eval_freq": 64}
    agent = MaskablePPOAgent(env, **settings, eval_episodes=1)
    recorder = Recorder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent.learn(config, 64, seed=0, run_dir=tmp_path / "run", callback=recorder)
    # Evaluation in one in-process env beside the workers is expected: no warning breaks the bar.
    assert not [w for w in caught if "not of the same type" in str(w.message)]
    assert agent.model.num_timesteps == 64
    assert len(recorder.episodes) >= 2  # 20-task episodes finished in both workers
    env.close()


@pytest.mark.parametrize("kind", ["maskable-ppo", "ppo"])
@pytest.mark.parametrize("env_id", [*mtenv.ENV_IDS, "mtenv/TaskAllocation-v0"])
def test_every_env_id_has_valid_hyperparameters(kind, env_id):
    n_timesteps, hyperparameters = hyperparameters_for(kind, env_id)
    assert n_timesteps > 0
    assert hyperparameters["policy"] == "CandidatePolicy"  # the default of `mtenv train`
    assert hyperparameters["teacher"] == "auto"
    algorithm = MaskablePPOAgent.algorithm if kind == "maskable-ppo" else PPOAgent.algorithm
    TrainingSettings.parse(algorithm, hyperparameters).algo_arguments()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_step": 64}, "unknown MaskablePPO hyperparameter.*n_step"),
        ({"vec_env": "ray"}, "vec_env: expected one of"),
        ({"policy": "CnnPolicy"}, "policy: expected one of"),
        ({"credit": "later"}, "credit: expected one of"),
        ({"n_envs": 0}, "n_envs: expected an integer >= 1"),
        ({"learning_rate": "fast"}, "learning_rate: expected a number or 'lin_<number>'"),
        ({"policy_kwargs": {"activation_fn": "swish"}}, "activation_fn: expected one of"),
        ({"eval_loads": []}, "eval_loads: expected a list of numbers > 0"),
        ({"eval_loads": [1.0, 0]}, "eval_loads: expected a list of numbers > 0"),
        ({"load_range": [2.0, 1.0]}, "load_range: expected \\[low, high\\]"),
    ],
)
def test_bad_hyperparameters_are_named(clear_winner, change, message):
    _, env, _ = clear_winner
    with pytest.raises(ValueError, match=message):
        MaskablePPOAgent(env, **{**TINY_PPO, **change})


def test_act_before_training_says_what_to_do(clear_winner):
    _, env, _ = clear_winner
    obs, info = env.reset(seed=0)
    with pytest.raises(RuntimeError, match="call learn, resume or load first"):
        PPOAgent(env, **TINY_PPO).act(obs, info["action_mask"])


def test_mtenv_train_says_which_validated_policy_it_kept(tmp_path, capsys):
    from mtenv.tools.cli import main

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(merge(BASE_SCENARIO, CLEAR_WINNER)))
    hp = ["n_envs=2", "vec_env=dummy", "n_steps=64", "batch_size=64", "teacher=null"]
    hp += ["eval_freq=128", "eval_episodes=1"]
    argv = ["train", "--scenario", str(scenario), "--agent", "maskable-ppo", "--steps", "256"]
    argv += ["--out", str(tmp_path / "run"), "--quiet", *[x for h in hp for x in ("--hp", h)]]
    assert main(argv) == 0
    evaluations = Evaluations.read(tmp_path / "run" / "eval")
    assert evaluations.steps == [0, 128, 256]
    best = evaluations.best()
    kept = f"kept the policy of step {best:,} (mean validation return "
    assert kept in capsys.readouterr().out
    described = json.loads((tmp_path / "run" / "agent.json").read_text())
    assert described["selected_step"] == best
