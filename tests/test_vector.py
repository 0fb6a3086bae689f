"""The batched vector env (``gym.make_vec`` of every mtenv id) and SB3's view of it.

Each sub-env must follow exactly the trajectory of a single env with the same seed and actions,
memoized and live (where the vector env prefetches one forward pass per model for all of them);
autoresets follow Gymnasium's ``NEXT_STEP`` rule; the SB3 adapter behaves as ``DummyVecEnv``
does and trains MaskablePPO. Episodes are tiny (``episode_tasks=``) to keep every test fast.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import registered_kwargs
from gymnasium.spaces import Box, MultiDiscrete
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import mtenv
from mtenv.agents.interfaces import EnvConfig, decided_rewards
from mtenv.agents.ppo.batched import BatchedVecEnv
from mtenv.agents.ppo.learner import MaskablePPOAgent
from mtenv.agents.ppo.rollouts import make_vec_env
from mtenv.agents.ppo.settings import TrainingSettings
from mtenv.core.stages import prefetch
from mtenv.envs.feedback import Feedback
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.envs.vector import BatchedTaskAllocationEnv

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALL_IDS = [*sorted(mtenv.ENV_IDS), "mtenv/TaskAllocation-v0"]
# Every plan kind (ensembles, cascades, a shared trunk, two task types), small and large queues.
SCENARIOS = ["quickstart", "collaboration", "multi_task", "edge_burst"]
K = 3


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The adapter sets torch's threads; leave the process as the test found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def batched(scenario: str, num_envs: int = K, **kwargs: Any) -> BatchedTaskAllocationEnv:
    kwargs.setdefault("inference", "memoized")
    env = gym.make_vec(
        "mtenv/TaskAllocation-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        scenario=scenario,
        **kwargs,
    )
    assert isinstance(env, BatchedTaskAllocationEnv)
    return env


def chooser(seed: int):
    """A masked random policy that now and then takes any action, invalid ones included."""
    rng = np.random.default_rng(seed)

    def choose(mask: np.ndarray) -> int:
        if rng.random() < 0.1:
            return int(rng.integers(len(mask)))
        return int(rng.choice(np.flatnonzero(mask)))

    return choose


def unbatch(infos: dict[str, Any], k: int) -> dict[str, Any]:
    """Sub-env ``k``'s info out of Gymnasium's vector infos."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_") or not infos[f"_{key}"][k]:
            continue
        out[key] = unbatch(value, k) if isinstance(value, dict) else value[k]
    return out


def same(a: Any, b: Any) -> bool:
    """Equal values, NaN equal to NaN, numpy scalars equal to Python numbers."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same(a[key], b[key]) for key in a)
        )
    if isinstance(a, Feedback) or isinstance(b, Feedback):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def assert_matches_single_envs(
    vec: BatchedTaskAllocationEnv, singles: list[TaskAllocationEnv], seed: int, steps: int
) -> int:
    """Step ``vec`` and the single envs side by side with the same actions (the singles reset
    where the vector env autoresets) and compare everything; returns the episodes ended."""
    obs, infos = vec.reset(seed=seed)
    single = [env.reset(seed=seed + k) for k, env in enumerate(singles)]
    for k, (o, info) in enumerate(single):
        assert np.array_equal(obs[k], o)
        assert same(unbatch(infos, k), info)
    choosers = [chooser(seed + 100 + k) for k in range(vec.num_envs)]
    ended = np.zeros(vec.num_envs, dtype=bool)
    episodes = 0
    for _ in range(steps):
        masks = vec.action_masks()
        actions = np.array([choose(m) for choose, m in zip(choosers, masks, strict=True)])
        obs, rewards, terminations, truncations, infos = vec.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float64
        for k, env in enumerate(singles):
            if ended[k]:  # NEXT_STEP: this step resets sub-env k, its action ignored
                o, info = env.reset()
                r, term, trunc = 0.0, False, False
            else:
                assert np.array_equal(masks[k], env.action_masks())
                o, r, term, trunc, info = env.step(int(actions[k]))
            assert np.array_equal(obs[k], o), k
            assert rewards[k] == r
            assert (terminations[k], truncations[k]) == (term, trunc)
            assert same(unbatch(infos, k), info), k
            assert np.array_equal(vec.action_masks()[k], env.action_masks())
            episodes += term or trunc
        ended = terminations | truncations
    return episodes


# --- Gymnasium's vector API ----------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_make_vec_of_every_id_gives_the_batched_env(env_id):
    envs = gym.make_vec(
        env_id,
        num_envs=2,
        vectorization_mode="vector_entry_point",
        inference="memoized",
        episode_tasks=5,
        **registered_kwargs(env_id),
    )
    assert isinstance(envs, BatchedTaskAllocationEnv)
    assert envs.num_envs == 2 and envs.spec.id == env_id
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    single = envs.single_observation_space
    assert isinstance(single, Box) and single.dtype == np.float32
    assert envs.observation_space == batch_space(single, 2)
    assert envs.action_space == batch_space(envs.single_action_space, 2)
    assert isinstance(envs.action_space, MultiDiscrete)
    obs, info = envs.reset(seed=0)
    assert obs.shape == (2, *single.shape) and obs in envs.observation_space
    assert info["action_mask"].dtype == np.int8
    assert info["action_mask"].shape == (2, envs.single_action_space.n)
    for _ in range(3):
        obs, rewards, terminations, truncations, info = envs.step(envs.action_space.sample())
        assert obs in envs.observation_space
        assert rewards.shape == terminations.shape == truncations.shape == (2,)
        assert terminations.dtype == truncations.dtype == np.bool_
    envs.close()
    envs.close()  # safe twice


def test_make_vec_without_a_mode_takes_the_vector_entry_point_and_sync_still_works():
    envs = gym.make_vec("mtenv/Quickstart-v0", num_envs=2, inference="memoized")
    assert isinstance(envs, BatchedTaskAllocationEnv)
    envs.close()
    sync = gym.make_vec(
        "mtenv/Quickstart-v0", num_envs=2, vectorization_mode="sync", inference="memoized"
    )
    assert isinstance(sync, gym.vector.SyncVectorEnv)
    sync.close()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_sub_env_follows_a_single_env_memoized(scenario):
    loads = [0.5, 1.0, 2.0]
    vec = batched(scenario, episode_tasks=12, load_scales=loads)
    singles = [
        TaskAllocationEnv(scenario, inference="memoized", episode_tasks=12, load_scale=load)
        for load in loads
    ]
    assert assert_matches_single_envs(vec, singles, seed=7, steps=40) >= K  # past episode ends
    vec.close()


@pytest.mark.parametrize("scenario", ["quickstart", "collaboration"])
def test_each_sub_env_follows_a_single_env_live_with_the_prefetch(scenario):
    vec = batched(scenario, inference="live", episode_tasks=10)
    assert vec.engine.mode == "live"
    singles = [
        TaskAllocationEnv(scenario, inference="live", episode_tasks=10, engine=None)
        for _ in range(K)
    ]
    assert assert_matches_single_envs(vec, singles, seed=3, steps=25) >= K
    vec.close()


def test_sub_envs_share_one_engine():
    vec = batched("collaboration", num_envs=4)
    assert all(env.engine is vec.engine for env in vec.envs)
    assert len({id(env.sim) for env in vec.envs}) == 4
    vec.close()


def test_live_prefetch_runs_one_forward_pass_per_model_per_step():
    vec = batched("quickstart", num_envs=4, inference="live", episode_tasks=30)
    runner = vec.envs[0].sim.runner
    obs, info = vec.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(40):
        masks = vec.action_masks()
        if step % 2:  # every env dispatches to the same plan where it can
            actions = np.array([0 if m[0] else len(m) - 1 for m in masks])
        else:
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        models = set()
        for env, action in zip(vec.envs, actions, strict=True):
            planned = env.planned(int(action))
            if planned is not None:
                stage = runner.layout.stages[runner.layout.first[planned[1]]]
                models |= {runner.models[m] for m in stage.models}
        before = vec.engine.stats.calls
        vec.step(actions)
        # quickstart's plans are single models, one task type, no cascade: each model once.
        assert vec.engine.stats.calls - before == len(models), step
    vec.close()


def test_the_prefetch_serves_each_plan_as_its_batch_would():
    """Every kind of plan (collaboration has singles, cascades, ensembles and a shared trunk):
    the answers read from the prefetch equal those of running the stage on the task alone, and
    the batches that read them run no model."""
    vec = batched("collaboration", num_envs=2, inference="live", episode_tasks=10)
    vec.reset(seed=0)
    runners = [env.sim.runner for env in vec.envs]
    layout, engine = runners[0].layout, vec.engine
    task = vec.envs[0]._task
    serves = vec.envs[0].sim.plan_serves[:, task.type]
    plans = [p for p in range(len(runners[0].plans)) if serves[p]]
    requests, alone = [], []
    for plan in plans:
        for runner in runners:  # the same plan from two simulators: one serve for both
            copy = dataclasses.replace(task, plan=plan, stage=layout.first[plan])
            requests.append((runner, copy, plan))
            if runner is runners[0]:
                alone.append(dataclasses.replace(copy))
    engine_calls = engine.stats.calls
    prefetch(engine, requests)
    assert engine.stats.calls > engine_calls
    engine_calls = engine.stats.calls
    for runner, copy, plan in requests:
        ensemble = layout.stages[layout.first[plan]].kind == "ensemble"
        assert (copy.served is None) == ensemble and (copy.outputs is not None) == ensemble
        runner.run(copy.stage, [copy])
    assert engine.stats.calls == engine_calls  # every answer came from the prefetch
    for (_, copy, _), single in zip(requests[::2], alone, strict=True):
        runners[0].run(single.stage, [single])
        assert (copy.answer, copy.escalate) == (single.answer, single.escalate)
        # float32 kernels may round differently at another batch size
        assert copy.confidence == pytest.approx(single.confidence, rel=1e-5)
    vec.close()


def test_memoized_mode_skips_the_prefetch():
    vec = batched("quickstart", num_envs=2, episode_tasks=10)
    vec.engine.warm_up()
    vec.reset(seed=0)
    calls = vec.engine.stats.calls
    for _ in range(12):
        vec.step(np.array([np.flatnonzero(m)[0] for m in vec.action_masks()]))
        assert all(t.outputs is None for env in vec.envs for t in env.settled)
    assert vec.engine.stats.calls == calls
    vec.close()


def test_next_step_autoreset():
    vec = batched("quickstart", num_envs=2, episode_tasks=4)
    vec.reset(seed=0)
    reject = vec.single_action_space.n - 1
    for _ in range(3):
        _, _, terminations, _, _ = vec.step(np.array([reject, reject]))
        assert not terminations.any()
    obs, rewards, terminations, truncations, infos = vec.step(np.array([reject, reject]))
    assert terminations.all() and not truncations.any()
    assert infos["_metrics"].all() and infos["metrics"]["tasks"].tolist() == [4, 4]
    assert vec.action_masks()[:, :-1].sum() == 0  # ended: only reject until the reset
    obs, rewards, terminations, truncations, infos = vec.step(np.array([0, 0]))  # ignored
    assert rewards.tolist() == [0.0, 0.0]
    assert not terminations.any() and not truncations.any()
    assert "metrics" not in infos and "invalid_action" not in infos  # reset infos
    assert all(f.n_tasks == 0 for f in infos["feedback"])
    assert vec.action_masks()[:, :-1].any()  # a fresh episode's first task
    vec.close()


def test_vector_infos_are_what_gymnasium_merges_env_by_env():
    """The stacked every-step keys and the rest (metrics at episode ends, reset infos after
    them) equal Gymnasium's own ``_add_info`` merge of the same per-env infos."""
    vec = batched("quickstart", num_envs=3, episode_tasks=5)
    _, infos = vec.reset_each(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(12):
        masks = vec.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        steps = [(infos, vec._vector_infos(infos))]
        *_, infos = vec.step_each(actions)
        steps.append((infos, vec._vector_infos(infos)))
        for per_env, merged in steps:
            expected: dict[str, Any] = {}
            for k, info in enumerate(per_env):
                if info is not None:
                    expected = vec._add_info(expected, info, k)
            assert merged.keys() == expected.keys()
            for key, value in expected.items():
                if key == "metrics":
                    assert data_equivalence(merged[key], value)
                else:
                    assert merged[key].dtype == value.dtype
                    assert merged[key].tolist() == value.tolist()
    vec.close()


def test_same_step_autoreset_gives_final_obs_and_info():
    vec = batched("quickstart", num_envs=2, episode_tasks=3, autoreset_mode="SameStep")
    first, _ = vec.reset(seed=0)
    for _ in range(3):
        obs, rewards, terminations, _, infos = vec.step(np.array([0, 0]))
    assert terminations.all() and infos["_final_obs"].all()
    assert infos["final_info"]["metrics"]["tasks"].tolist() == [3, 3]
    again = TaskAllocationEnv("quickstart", inference="memoized", episode_tasks=3)
    again.reset(seed=0)
    for _ in range(3):
        o, *_ = again.step(0)
    assert np.array_equal(infos["final_obs"][0], o)
    assert not np.array_equal(obs[0], o)  # already the next episode's first observation
    vec.close()


def test_max_episode_steps_truncates_like_time_limit():
    vec = batched("quickstart", num_envs=2, episode_tasks=50, max_episode_steps=4)
    single = gym.make(
        "mtenv/Quickstart-v0", inference="memoized", episode_tasks=50, max_episode_steps=4
    )
    vec.reset(seed=1)
    o, info = single.reset(seed=1)
    for step in range(4):
        obs, rewards, terminations, truncations, infos = vec.step(np.array([0, 0]))
        o, r, term, trunc, info = single.step(0)
        assert truncations[0] == trunc == (step == 3) and not terminations.any()
        assert np.array_equal(obs[0], o) and rewards[0] == r
    assert "metrics" not in infos and "metrics" not in info
    single.close()
    vec.close()


def test_reset_seeds_lists_and_reset_mask():
    vec = batched("quickstart", num_envs=3, episode_tasks=10)
    by_int, _ = vec.reset(seed=5)
    by_list, _ = vec.reset(seed=[5, 6, 7])
    assert np.array_equal(by_int, by_list)
    assert vec.np_random_seed == (5, 6, 7)
    with pytest.raises(ValueError, match="num_envs=3"):
        vec.reset(seed=[1, 2])
    for _ in range(2):
        stepped, *_ = vec.step(np.array([0, 0, 0]))
    mask = np.array([False, True, False])
    obs, infos = vec.reset(seed=[None, 6, None], options={"reset_mask": mask})
    assert infos["_action_mask"].tolist() == [False, True, False]
    assert np.array_equal(obs[1], by_list[1]) and np.array_equal(obs[0], stepped[0])
    vec.close()


def test_masks_are_per_sub_env():
    vec = batched("multi_task", num_envs=4, episode_tasks=20)
    obs, info = vec.reset(seed=0)
    masks = vec.action_masks()
    assert masks.dtype == np.bool_ and masks.shape == (4, vec.single_action_space.n)
    assert np.array_equal(masks, info["action_mask"].astype(bool))
    differ = False
    for _ in range(10):
        masks = vec.action_masks()
        assert np.array_equal(masks, np.stack([env.action_masks() for env in vec.envs]))
        differ |= any(not np.array_equal(masks[0], m) for m in masks[1:])
        obs, _, _, _, info = vec.step(np.array([np.flatnonzero(m)[0] for m in masks]))
        assert np.array_equal(vec.action_masks(), info["action_mask"].astype(bool))
    assert differ  # two task types: the sub-envs' masks are their own
    vec.close()


def test_returned_observations_are_copies():
    vec = batched("quickstart", num_envs=2, episode_tasks=10)
    obs, _ = vec.reset(seed=0)
    kept = obs.copy()
    obs[:] = -1
    nxt, *_ = vec.step(np.array([0, 0]))
    assert not np.shares_memory(obs, nxt)
    again, _ = vec.reset(seed=0)
    assert np.array_equal(again, kept)
    vec.close()


def test_pickle_round_trip_continues_identically():
    vec = batched("collaboration", num_envs=2, episode_tasks=15)
    vec.reset(seed=2)
    for _ in range(4):
        vec.step(np.array([np.flatnonzero(m)[0] for m in vec.action_masks()]))
    copy = pickle.loads(pickle.dumps(vec))
    assert copy.envs[0].engine is copy.envs[1].engine is copy.engine
    for _ in range(15):
        actions = np.array([np.flatnonzero(m)[-2:][0] for m in vec.action_masks()])
        a, b = vec.step(actions), copy.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            assert np.array_equal(x, y)
        assert all(same(unbatch(a[4], k), unbatch(b[4], k)) for k in range(2))
    vec.close()
    copy.close()


def test_render_ansi_gives_one_frame_per_sub_env():
    vec = batched("quickstart", num_envs=2, render_mode="ansi", episode_tasks=5)
    vec.reset(seed=0)
    frames = vec.render()
    assert isinstance(frames, tuple) and len(frames) == 2
    assert all(isinstance(f, str) and "quickstart" in f for f in frames)
    vec.close()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="load_scales: expected 3 values"):
        batched("quickstart", load_scales=[1.0, 2.0])
    with pytest.raises(ValueError, match="not both"):
        batched("quickstart", load_scale=1.0, load_scales=[1.0] * K)
    with pytest.raises(ValueError, match="num_envs"):
        BatchedTaskAllocationEnv(num_envs=0, scenario="quickstart")
    with pytest.raises(ValueError, match="scenario: required"):
        BatchedTaskAllocationEnv(num_envs=2)
    vec = batched("quickstart", num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions: expected shape"):
        vec.step(np.array([0, 0, 0]))
    vec.close()


# --- stable-baselines3 ---------------------------------------------------------------------------


def sb3_pair(scenario: str, n: int = 2, tasks: int = 6) -> tuple[BatchedVecEnv, DummyVecEnv]:
    kwargs = {"inference": "memoized", "episode_tasks": tasks}
    adapter = BatchedVecEnv(num_envs=n, scenario=scenario, **kwargs)
    dummy = DummyVecEnv([lambda: Monitor(TaskAllocationEnv(scenario, **kwargs)) for _ in range(n)])
    return adapter, dummy


@pytest.mark.parametrize("scenario", ["quickstart", "collaboration"])
def test_sb3_adapter_behaves_as_dummy_vec_env(scenario):
    adapter, dummy = sb3_pair(scenario)
    for vec in (adapter, dummy):
        vec.seed(11)
    assert np.array_equal(adapter.reset(), dummy.reset())
    assert adapter.reset_infos[0].keys() == dummy.reset_infos[0].keys()
    rng = np.random.default_rng(0)
    dones_seen = 0
    for _ in range(20):
        masks = np.stack(adapter.env_method("action_masks"))
        assert np.array_equal(masks, np.stack(dummy.env_method("action_masks")))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        a_obs, a_rew, a_done, a_infos = adapter.step(actions)
        d_obs, d_rew, d_done, d_infos = dummy.step(actions)
        assert np.array_equal(a_obs, d_obs) and a_obs.dtype == d_obs.dtype
        assert np.array_equal(a_rew, d_rew) and a_rew.dtype == d_rew.dtype
        assert np.array_equal(a_done, d_done)
        assert isinstance(a_infos, list) and len(a_infos) == 2
        for a_info, d_info in zip(a_infos, d_infos, strict=True):
            for info in (a_info, d_info):  # wall-clock seconds since built: not comparable
                info.get("episode", {}).pop("t", None)
            assert same(a_info, d_info)
        dones_seen += int(a_done.sum())
    assert dones_seen >= 4  # terminal observations compared too
    adapter.close()
    dummy.close()


def test_sb3_adapter_attributes_and_wrappers():
    adapter, dummy = sb3_pair("quickstart")
    dummy.close()
    adapter.reset()
    assert adapter.has_attr("action_masks")
    assert adapter.get_attr("action_labels") == [env.action_labels for env in adapter.venv.envs]
    assert adapter.get_attr("reject_action", indices=[1]) == [adapter.venv.envs[1].reject_action]
    adapter.set_attr("custom", 3, indices=0)
    assert adapter.venv.envs[0].custom == 3 and not hasattr(adapter.venv.envs[1], "custom")
    assert adapter.env_is_wrapped(Monitor) == [False, False]
    assert adapter.env_method("action_masks", indices=[0])[0].dtype == np.bool_
    assert adapter.render_mode is None and adapter.get_images() == [None, None]
    with pytest.raises(ValueError, match="SameStep"):
        BatchedVecEnv(BatchedTaskAllocationEnv(num_envs=2, scenario="quickstart"))
    adapter.close()


def test_make_vec_env_batched_seeds_loads_and_one_torch_thread(monkeypatch):
    monkeypatch.delenv("MTENV_TORCH_THREADS", raising=False)
    torch.set_num_threads(2)
    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized", "episode_tasks": 8})
    vec = make_vec_env(config, 3, "batched", seed=4, load_range=(0.5, 1.5))
    assert torch.get_num_threads() == 1
    batched_env = vec.venv
    assert [env.scenario.workload.load_scale for env in batched_env.envs] == [0.5, 1.0, 1.5]
    obs = vec.reset()
    for k, load in enumerate([0.5, 1.0, 1.5]):
        single = config.make(load_scale=load)
        assert np.array_equal(obs[k], single.reset(seed=4 + k)[0])
        single.close()
    episodes = 0
    for _ in range(9):
        masks = np.stack(vec.env_method("action_masks"))
        _, _, dones, infos = vec.step(np.array([np.flatnonzero(m)[0] for m in masks]))
        episodes += sum("episode" in info for info in infos)
    assert episodes == 3
    vec.close()
    make_vec_env(config, 2, "batched", seed=0, torch_threads=2).close()
    assert torch.get_num_threads() == 2  # set once the envs are built
    monkeypatch.setenv("MTENV_TORCH_THREADS", "2")
    torch.set_num_threads(1)
    make_vec_env(config, 2, "batched", seed=0).close()
    assert torch.get_num_threads() == 2  # the engine's override stands


def test_settings_default_to_batched_for_several_envs():
    from sb3_contrib import MaskablePPO

    assert TrainingSettings.parse(MaskablePPO, {"n_envs": 4}).vec_env == "batched"
    assert TrainingSettings.parse(MaskablePPO, {"n_envs": 1}).vec_env == "dummy"
    assert TrainingSettings.parse(MaskablePPO, {"vec_env": "subproc"}).vec_env == "subproc"
    assert TrainingSettings.parse(MaskablePPO, {"n_envs": 4, "vec_env": "dummy"}).vec_env == "dummy"


def test_maskable_ppo_trains_on_the_batched_env_with_decision_credit(tmp_path):
    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized", "episode_tasks": 200})
    env = config.make()
    settings = {
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "gamma": 0.5,
        "checkpoint_freq": 0,
        "policy_kwargs": {"net_arch": [16]},
    }
    agent = MaskablePPOAgent(env, **settings)
    assert agent.settings.vec_env == "batched"

    class Recorder:
        episodes: list[tuple[int, float]] = []  # noqa: RUF012

        def on_episode(self, step: int, episode_return: float) -> None:
            self.episodes.append((step, episode_return))

        def on_checkpoint(self, step: int) -> None:
            pass

        def on_phase(self, text: str) -> None:
            pass

    agent.learn(config, 128, seed=5, run_dir=tmp_path / "run", callback=Recorder())
    assert agent.model.num_timesteps == 128
    # Each env's rewards sit at the steps that decided the tasks (env k seeded with 5 + k).
    buffer = agent.model.rollout_buffer
    assert buffer.rewards.shape == (64, 2)
    actions = buffer.actions.reshape(2, 64)  # flattened env by env for the training epochs
    for k in range(2):
        replay = config.make()
        replay.reset(seed=5 + k)
        expected = np.zeros(64)
        for action in actions[k].astype(int):
            _, _, _, _, info = replay.step(action)
            for decided, reward in decided_rewards(info["feedback"]):
                expected[decided] += reward
        np.testing.assert_allclose(buffer.rewards[:, k], expected, atol=1e-5)
        replay.close()
    env.close()


def test_episodes_are_reported_as_monitor_reports_them():
    """The batched env's ``info["episode"]`` returns and lengths are what SB3's ``Monitor``
    reports for the same envs, seeds and actions (float64 sums rounded to six decimals)."""
    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized", "episode_tasks": 30})
    batched_vec = make_vec_env(config, 2, "batched", seed=3)
    dummy_vec = make_vec_env(config, 2, "dummy", seed=3)
    batched_vec.reset(), dummy_vec.reset()
    reported: dict[str, list[tuple[float, int]]] = {"batched": [], "dummy": []}
    rng = np.random.default_rng(0)
    for _ in range(70):
        masks = np.stack(dummy_vec.env_method("action_masks"))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        for name, vec in (("batched", batched_vec), ("dummy", dummy_vec)):
            *_, infos = vec.step(actions)
            reported[name] += [
                (i["episode"]["r"], i["episode"]["l"]) for i in infos if "episode" in i
            ]
    assert len(reported["dummy"]) >= 4
    assert reported["batched"] == reported["dummy"]
    batched_vec.close(), dummy_vec.close()


def test_maskable_ppo_reports_episodes_from_the_batched_env(tmp_path):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import Logger

    config = EnvConfig("mtenv/Quickstart-v0", {"inference": "memoized", "episode_tasks": 25})
    vec = make_vec_env(config, 4, "batched", seed=0)
    model = MaskablePPO("MlpPolicy", vec, n_steps=64, batch_size=128, n_epochs=1, seed=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no temp folder
    model.learn(256)
    assert model.num_timesteps == 256
    returns = [info["r"] for info in model.ep_info_buffer]
    assert len(returns) >= 8 and all(math.isfinite(r) for r in returns)
    vec.close()


@pytest.mark.parametrize(
    "actions", [np.array([0, 99]), np.array([0.0, 1.0]), np.array([True, False]), np.array([-1, 0])]
)
def test_actions_are_checked_before_any_sub_env_steps(actions):
    vec = batched("quickstart", num_envs=2, episode_tasks=5)
    vec.reset(seed=0)
    before = [env.sim.arrived for env in vec.envs]
    with pytest.raises(ValueError, match=r"actions: expected integers in \[0, \d+\]"):
        vec.step(actions)
    assert [env.sim.arrived for env in vec.envs] == before
    vec.close()
