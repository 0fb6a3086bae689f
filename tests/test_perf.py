"""``mtenv perf``: the masked uniform policy drawn in advance picks only valid actions, the rows
and the table are built from the medians alone, the engine's torch-thread default, and a smoke
run of the whole command with tiny budgets. No test reads a wall-clock time."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector.utils import batch_space

from mtenv.core.inference import TORCH_THREADS_ENV, configure_torch_threads
from mtenv.tools import perf
from mtenv.tools.cli import main
from mtenv.tools.perf import QUICKSTART_ID, pick_valid, pick_valid_batch
from mtenv.tools.perf_table import build_rows, format_report

# --- the stepping policy -------------------------------------------------------------------------


def test_the_u_th_valid_action_is_picked_and_only_valid_ones() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((200, 13)) < rng.random((200, 1))
    masks[0] = False  # no valid action: action 0
    masks[1] = False
    masks[1, 7] = True  # one valid action: always it
    last = np.nextafter(1.0, 0.0)
    for u in [0.0, 0.3, 0.5, 0.999, last, *rng.random(20)]:
        batch = pick_valid_batch(masks.astype(np.int8), np.full(len(masks), u))
        single = [pick_valid(mask, u) for mask in masks]
        assert batch.tolist() == single
        for mask, action in zip(masks[2:], single[2:], strict=True):
            valid = np.flatnonzero(mask)
            if len(valid):
                assert mask[action]
                assert action == valid[min(int(u * len(valid)), len(valid) - 1)]
        assert single[0] == 0 and single[1] == 7
    # Every valid action is reached, in order, as u sweeps [0, 1).
    mask = masks[5]
    valid = np.flatnonzero(mask)
    sweep = [pick_valid(mask, (i + 0.5) / len(valid)) for i in range(len(valid))]
    assert sweep == valid.tolist()
    assert pick_valid(mask, last) == valid[-1]


def test_a_timed_episode_takes_only_valid_actions() -> None:
    env = gym.make(QUICKSTART_ID, inference="memoized", episode_tasks=60)
    draws = np.random.default_rng(1).random(150)
    _, info = env.reset(seed=0)
    for u in draws:
        action = pick_valid(info["action_mask"], u)
        assert info["action_mask"][action] == 1
        _, _, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"]
        if terminated or truncated:
            _, info = env.reset()
    env.close()


# --- the rows and the table (pure) -------------------------------------------------------------


def _rate(steps_per_s: float, share: float | None = None) -> dict[str, Any]:
    return {"steps_per_s": steps_per_s, "forward_share": share}


MEMORY = {
    "scenario": "large_cluster",
    "tasks": 1000,
    "steps_per_s": 5000.0,
    "rss_mb": [[0, 300.0], [100, 310.0], [1000, 312.0]],
    "peak_rss_mb": [310.0, 341.0],
    "peak_growth_mb": 31.0,
    "peak_growth": 0.1,
    "peak_restarted": True,
    "metrics_tasks": 1000,
}


def test_rows_are_ratios_of_the_medians_with_targets_and_reasons() -> None:
    rates = {
        "cartpole": _rate(100_000),
        "quickstart memoized": _rate(60_000),
        "quickstart live": _rate(20_000, 0.5),
        "large_cluster memoized": _rate(36_000),
        "batched memoized K=1": _rate(50_000),
        "batched memoized K=64": _rate(400_000),
        "batched live K=64": _rate(300_000, 0.2),
        "train maskable subproc": _rate(1_000),
        "train ppo cartpole": _rate(5_000),
    }
    missing = {"train maskable batched": "needs something"}
    rows = build_rows(rates, missing, MEMORY, (1, 64))
    by_label = {row["label"]: row for row in rows}
    assert [row["key"] for row in rows] == [
        "memoized_over_cartpole",
        "live_over_memoized",
        "batched_over_cartpole",
        "batched_over_cartpole",
        "batched_live_over_memoized",
        "large_over_quickstart",
        "memory_growth",
        "train_batched_over_subproc",
    ]
    first = rows[0]
    assert first["ratio"] == 0.6 and first["target"] == [">=", 0.5] and first["met"] is True
    assert rows[1]["ratio"] == pytest.approx(1 / 3, abs=1e-3) and rows[1]["met"] is False
    assert "50%" in rows[1]["note"]
    k1, k64 = rows[2], rows[3]
    assert k1["target"] is None and k1["met"] is None  # the target is about K = 64
    assert k64["ratio"] == 4.0 and k64["met"] is True
    assert rows[4]["ratio"] == 0.75 and rows[4]["met"] is True and "20%" in rows[4]["note"]
    assert rows[5]["ratio"] == 0.6 and rows[5]["met"] is True
    memory = by_label["peak RSS growth after the first tenth"]
    assert memory["ratio"] == 0.1 and memory["target"] == ["<", 0.05] and memory["met"] is False
    train = rows[7]
    assert train["ratio"] is None and train["met"] is None and train["note"] == "needs something"
    assert [caption for caption, _, _ in train["rates"]] == ["subproc", "PPO on CartPole-v1"]

    report = {
        "settings": {
            "steps": 10,
            "repeats": 3,
            "batch_sizes": [1, 64],
            "train_steps": 8,
            "train_envs": 2,
            "tasks": 1000,
        },
        "machine": {
            "cpu": "Some CPU",
            "cores": 2,
            "python": "3.11",
            "torch": "2.13",
            "torch_threads": 1,
            "torch_threads_env": None,
        },
        "rows": rows,
    }
    text = format_report(report)
    assert format_report(report) == text  # pure: same report, same table
    lines = text.splitlines()
    assert "Some CPU" in lines[2] and "1 intra-op thread" in lines[2]
    body = lines[-len(rows) :]
    assert [line.split()[0] for line in body] == ["1", "2", "3a", "3b", "4", "5", "6", "7"]
    assert "✓" in body[0] and "✗" in body[1] and "≥ 0.5" in body[0]
    assert "+10.0%" in body[6] and "< 5%" in body[6] and "✗" in body[6]
    assert "n/a" in body[7] and "needs something" in body[7]
    assert "✓" not in body[2] and "✗" not in body[2]


# --- torch threads -------------------------------------------------------------------------------


def test_engines_run_torch_on_one_thread_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = torch.get_num_threads()
    try:
        monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
        torch.set_num_threads(2)
        assert configure_torch_threads() == 1 == torch.get_num_threads()
        monkeypatch.setenv(TORCH_THREADS_ENV, "2")
        assert configure_torch_threads() == 2 == torch.get_num_threads()
        monkeypatch.setenv(TORCH_THREADS_ENV, "0")  # leave torch's setting alone
        torch.set_num_threads(3)
        assert configure_torch_threads() == 3
        monkeypatch.setenv(TORCH_THREADS_ENV, "many")
        with pytest.raises(ValueError, match=TORCH_THREADS_ENV):
            configure_torch_threads()
        monkeypatch.delenv(TORCH_THREADS_ENV)
        env = gym.make(QUICKSTART_ID, inference="memoized")  # building the engine applies it
        assert torch.get_num_threads() == 1
        env.close()
    finally:
        torch.set_num_threads(threads)


# --- the whole command ---------------------------------------------------------------------------


class StandInBatched(gym.vector.VectorEnv):
    """What ``perf`` needs of mtenv's batched env (``mtenv/envs/vector.py``), for a tree without
    it: K quickstart envs on one engine stepped one after the other, ``NEXT_STEP`` autoreset,
    ``infos["action_mask"]`` ``[K, n]`` int8."""

    def __init__(self, num_envs: int, autoreset_mode: Any = "NextStep", **kwargs: Any):
        if str(getattr(autoreset_mode, "value", autoreset_mode)) != "NextStep":
            raise ValueError("the stand-in autoresets on the next step only")
        first = gym.make(QUICKSTART_ID, **kwargs).unwrapped
        others = [
            gym.make(QUICKSTART_ID, engine=first.engine, **kwargs).unwrapped
            for _ in range(num_envs - 1)
        ]
        self.envs, self.engine, self.num_envs = [first, *others], first.engine, num_envs
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)
        self._ended = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        seeds = [None if seed is None else seed + k for k in range(self.num_envs)]
        out = [env.reset(seed=s) for env, s in zip(self.envs, seeds, strict=True)]
        self._ended[:] = False
        masks = np.stack([info["action_mask"] for _, info in out])
        return np.stack([obs for obs, _ in out]), {"action_mask": masks}

    def step(self, actions: np.ndarray) -> tuple:
        k = self.num_envs
        obs, masks = [], []
        rewards, ends = np.zeros(k), np.zeros((2, k), dtype=bool)
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self._ended[i]:
                o, info = env.reset()
            else:
                o, rewards[i], ends[0, i], ends[1, i], info = env.step(int(action))
            obs.append(o)
            masks.append(info["action_mask"])
        self._ended = ends[0] | ends[1]
        return np.stack(obs), rewards, ends[0], ends[1], {"action_mask": np.stack(masks)}

    def action_masks(self) -> np.ndarray:
        return np.stack([env.action_masks() for env in self.envs])

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


@pytest.fixture
def batched_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real batched env where the tree has it; a stand-in for each missing part."""
    spec = gym.spec(QUICKSTART_ID)
    if spec.vector_entry_point is None:
        monkeypatch.setattr(spec, "vector_entry_point", StandInBatched)
    real = perf.make_training_vec

    def with_stand_in(kind: str, n_envs: int, seed: int) -> Any:
        try:
            return real(kind, n_envs, seed)
        except perf.Unavailable:
            if kind != "batched":
                raise
        from stable_baselines3.common.vec_env import DummyVecEnv

        class StandInTraining(DummyVecEnv):
            pass

        vec = StandInTraining([lambda: gym.make(QUICKSTART_ID, inference="memoized")] * n_envs)
        vec.seed(seed)
        return vec

    monkeypatch.setattr(perf, "make_training_vec", with_stand_in)


def test_perf_smoke_measures_every_row(
    batched_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["perf", "--quick", "--steps", "40", "--batch-sizes", "1", "2", "--tasks", "300"]
    argv += ["--train-steps", "16", "--train-envs", "2", "--json"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["batch_sizes"] == [1, 2] and report["settings"]["repeats"] == 1
    assert report["missing"] == {}, report["missing"]
    rows = report["rows"]
    assert len(rows) == 8  # 1, 2, 3a (K=1), 3b (K=2), 4, 5, 6, 7
    for row in rows:
        assert row["ratio"] is not None, row
        assert (row["met"] is None) == (row["target"] is None), row
    assert all(rate["steps_per_s"] > 0 for rate in report["rates"].values())
    assert 0 < report["rates"]["quickstart live"]["forward_share"] < 1
    memory = report["memory"]
    assert memory["tasks"] == 300 == memory["metrics_tasks"]
    then, end = memory["peak_rss_mb"]
    assert memory["peak_growth"] == pytest.approx((end - then) / then, abs=1e-3)
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["cpu"]
    assert "round 1/1" in err and "memory: 300 tasks" in err
    table = format_report(report)
    assert len(table.splitlines()) == 4 + len(rows)
