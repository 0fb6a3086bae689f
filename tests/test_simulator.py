"""The simulator's physics: queueing, batching, cold starts, eviction, deadlines.

Each test builds a tiny scenario whose timing is known in closed form (profile overrides fix
alpha and beta, trace files fix arrival times) and checks what the simulator did against it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import first_valid, play, tiny_scenario
from hypothesis import given, settings
from hypothesis import strategies as st

from mtenv.core.schema import ProfileConfig
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.zoo import load_model, model_stats, serving_pool

MS = 1e-3


def trace(tmp_path: Path, times_s: list[float]) -> str:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp\n" + "\n".join(f"{t:.9f}" for t in times_s) + "\n")
    return str(path)


def one_device(tmp_path: Path | None = None, times: list[float] | None = None, **device) -> dict:
    """A scenario with one T4 and one model (linear) whose batch takes alpha + beta·b."""
    alpha_ms = device.pop("alpha_ms", 1.0)
    beta_ms = device.pop("beta_ms", 0.0)
    arrivals = (
        {"process": "trace", "path": trace(tmp_path, times), "loop": False}
        if times is not None
        else {"process": "poisson", "rate": 700}
    )
    return {
        "episode_tasks": len(times) if times is not None else 100,
        "models": ["linear"],
        "devices": [
            {
                "kind": "t4",
                "resident": ["linear"],
                "max_batch": 1,
                "batch_timeout_ms": 0,
                "max_queue": 100_000,
                **device,
            }
        ],
        "workload": {"arrivals": arrivals, "task_types": {"classify": {"slo_ms": 1000}}},
        "profile": {
            "overrides": [
                {"model": "linear", "device": "t4", "alpha_ms": alpha_ms, "beta_ms": beta_ms}
            ]
        },
    }


def real_correct(model: str, input_id: int) -> float:
    """1.0 if the zoo model, run here outside the env, answers this pool input right."""
    pool = serving_pool()
    with torch.inference_mode():
        logits = load_model(model)(pool.inputs[input_id : input_id + 1])
    return float(int(logits.argmax()) == int(pool.labels[input_id]))


def test_md1_queue_matches_pollaczek_khinchine(make_env):
    """Poisson arrivals, deterministic 1 ms service, one server: M/D/1 at load ρ = 0.7.

    Mean time in system W = S + ρ·S / (2(1 − ρ)) (Pollaczek–Khinchine) = 2.1667 ms.
    """
    rate, service = 700.0, 1 * MS
    env = make_env(**{**one_device(), "episode_tasks": 40_000})
    episode = play(env, first_valid, seed=3)
    rho = rate * service
    expected_ms = 1e3 * (service + rho * service / (2 * (1 - rho)))
    m = episode.metrics
    assert m["latency_mean_ms"] == pytest.approx(expected_ms, rel=0.05)
    assert m["utilization"]["t4-0"] == pytest.approx(rho, rel=0.03)
    assert m["throughput"] == pytest.approx(rate, rel=0.03)


def test_scripted_episode_rewards(make_env, tmp_path):
    """Three tasks at 0, 0.5 and 5 ms on a 1 ms server with a 1.4 ms SLO: the second waits for
    the first and finishes 1.5 ms after it arrived, late. Rewards arrive one step later."""
    spec = one_device(tmp_path, [0.0, 0.5 * MS, 5 * MS])
    spec["workload"]["task_types"] = {"classify": {"slo_ms": 1.4}}
    spec["reward"] = {"correct": 1.0, "slo_miss": 0.5, "late_credit": 0.0, "reject": 0.3}
    env = make_env(**spec)
    episode = play(env, first_valid)
    tasks = sorted(episode.tasks, key=lambda t: t.id)
    c0, c2 = (real_correct("linear", tasks[i].input_id) for i in (0, 2))
    assert [t.finished for t in tasks] == pytest.approx([1 * MS, 2 * MS, 6 * MS])
    assert episode.rewards == pytest.approx([0.0, c0 - 0.5, c2])
    assert episode.metrics["slo_attainment"] == pytest.approx(2 / 3)
    assert episode.metrics["episode_return"] == pytest.approx(sum(episode.rewards))


def test_rejection_costs_its_penalty_at_once(make_env, tmp_path):
    spec = one_device(tmp_path, [0.0, 0.5 * MS, 5 * MS])
    spec["reward"] = {"correct": 1.0, "reject": 0.3}
    env = make_env(**spec)
    reject = env.reject_action
    episode = play(env, lambda obs, mask, e: reject if e.sim.arrived == 2 else 0)
    tasks = sorted(episode.tasks, key=lambda t: t.id)
    c0, c2 = (real_correct("linear", tasks[i].input_id) for i in (0, 2))
    assert episode.rewards == pytest.approx([0.0, c0 - 0.3, c2])
    assert episode.metrics["reject_rate"] == pytest.approx(1 / 3)


def test_batch_starts_when_full(make_env, tmp_path):
    times = [0.0, 0.1 * MS, 0.2 * MS, 0.3 * MS]
    env = make_env(**one_device(tmp_path, times, max_batch=4, batch_timeout_ms=10, beta_ms=0.5))
    episode = play(env, first_valid)
    finish = 0.3 * MS + 1 * MS + 4 * 0.5 * MS
    assert [t.finished for t in episode.tasks] == pytest.approx([finish] * 4)
    assert env.sim.metrics.devices[0].batches == 1


def test_partial_batch_waits_for_timeout(make_env, tmp_path):
    times = [0.0, 0.1 * MS, 0.2 * MS]
    env = make_env(**one_device(tmp_path, times, max_batch=8, batch_timeout_ms=10, beta_ms=0.5))
    episode = play(env, first_valid)
    finish = 10 * MS + 1 * MS + 3 * 0.5 * MS
    assert [t.finished for t in episode.tasks] == pytest.approx([finish] * 3)


def test_cold_start_loads_before_serving(make_env, tmp_path):
    env = make_env(**one_device(tmp_path, [0.0, 1.0], resident=[]))
    episode = play(env, first_valid)
    load_s = env.sim.model_profiles[0][0].load_s
    assert load_s > 0
    assert [t.finished for t in episode.tasks] == pytest.approx([load_s + 1 * MS, 1.0 + 1 * MS])
    assert episode.metrics["loads"] == 1


def test_lru_eviction_when_memory_is_short(make_env, tmp_path):
    """Memory for one model only: alternating plans load and evict every time, and resident
    bytes never exceed capacity."""
    small, big = (model_stats(m).weight_bytes for m in ("linear", "cnn_wide"))
    spec = one_device(tmp_path, [0.0, 1.0, 2.0, 3.0], resident=[])
    spec["models"] = ["linear", "cnn_wide"]
    spec["profile"] = {}
    spec["devices"][0]["memory_gb"] = (big + small / 2) * ProfileConfig().bytes_scale / 1e9
    env = make_env(**spec)
    used: list[float] = []

    def alternate(obs, mask, e):
        used.append(float(e.sim.used_bytes[0]))
        return (e.sim.arrived - 1) % 2  # plan 0 (linear), then plan 1 (cnn_wide), ...

    episode = play(env, alternate)
    assert episode.metrics["loads"] == 4
    assert episode.metrics["evictions"] == 3
    assert max(used) <= env.sim.capacity[0]


def test_expired_tasks_are_dropped_when_the_scenario_says_so(make_env, tmp_path):
    spec = one_device(tmp_path, [0.0, 1 * MS, 2 * MS], alpha_ms=20.0)
    spec["workload"]["task_types"] = {"classify": {"slo_ms": 5}}
    spec["workload"]["drop_expired"] = True
    episode = play(make_env(**spec), first_valid)
    m = episode.metrics
    assert (m["completed"], m["drop_rate"], m["late_rate"]) == (
        1,
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    )


def test_every_task_is_settled_and_time_never_goes_back(make_env):
    """Conservation at every step: every arrived task is settled, in flight (queued or running)
    or the one awaiting a decision; at the end nothing is in flight. Under overload (small
    queues that fill up) the mask stays the simulator's own validity rule."""
    env = make_env(
        episode_tasks=300,
        devices=[
            {"kind": "t4", "resident": ["linear"], "max_queue": 3},
            {"kind": "a100", "resident": ["cnn_wide"], "max_queue": 5},
        ],
        workload={"arrivals": {"process": "poisson", "rate": 3000}},
    )
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=5)
    settled, last_now = 0, 0.0

    while True:
        valid = np.flatnonzero(info["action_mask"])
        obs, _, terminated, truncated, info = env.step(int(rng.choice(valid)))
        sim = env.sim
        if not (
            terminated or truncated
        ):  # the env's mask is the simulator's own notion of a runnable action
            expected = [
                sim.can_run(a // env.n_devices, a % env.n_devices, env._task.type)
                for a in range(env.reject_action)
            ]
            assert info["action_mask"][:-1].astype(bool).tolist() == expected
        assert sim.now >= last_now
        last_now = sim.now
        assert np.all(sim.used_bytes <= sim.capacity)
        m = sim.metrics
        settled = m.completed + m.rejected + m.dropped
        awaiting_decision = 0 if terminated or truncated else 1
        assert settled + sim.in_flight + awaiting_decision == sim.arrived
        if terminated or truncated:
            break
    assert sim.in_flight == 0
    assert settled == sim.arrived == 300


_OVERLOADED = {
    "episode_tasks": 60,
    "devices": [
        {"kind": "t4", "max_queue": 2, "memory_gb": 0.0005},
        {"kind": "a100", "resident": ["cnn_wide"], "max_queue": 3},
    ],
    "workload": {"arrivals": {"process": "poisson", "rate": 4000}},
}
_MOVES = st.one_of(
    st.tuples(st.just("valid"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("forbidden"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("reject"), st.just(0.0)),
    st.tuples(
        st.just("not an action"),
        st.sampled_from([-1, 10**9, 2.5, "1", True, None, np.float32(1.0), [1]]),
    ),
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(moves=st.lists(_MOVES, min_size=1, max_size=80), seed=st.integers(0, 2**16))
def test_random_action_sequences_keep_every_invariant(moves, seed):
    """Valid, forbidden and reject actions, and values that are not actions at all, in any
    order: time never goes back, no device holds more weights than its memory, a non-action
    raises and changes nothing, the step's feedback sums to its reward, and at the end every
    arrived task is completed, dropped or rejected."""
    env = TaskAllocationEnv(tiny_scenario(**_OVERLOADED), inference="memoized")
    _, info = env.reset(seed=seed)
    sim, last_now, episode_return = env.sim, 0.0, 0.0
    for kind, value in itertools.islice(itertools.cycle(moves), 400):
        mask = info["action_mask"].astype(bool)
        if kind == "not an action":
            arrived = sim.arrived
            with pytest.raises((TypeError, ValueError)):
                env.step(value)
            assert sim.arrived == arrived
            continue
        pool = np.flatnonzero(mask if kind == "valid" else ~mask)
        action = (
            env.reject_action
            if kind == "reject" or pool.size == 0
            else pool[int(value * pool.size)]
        )
        _, reward, terminated, truncated, info = env.step(action)
        episode_return += reward
        assert info["invalid_action"] == (kind == "forbidden" and pool.size > 0)
        assert info["feedback"]["reward"].sum() == pytest.approx(reward, abs=1e-9)
        assert sim.now >= last_now
        last_now = sim.now
        assert (sim.used_bytes <= sim.capacity).all()
        if terminated:
            metrics = info["metrics"]
            settled = metrics["completed"] + round(
                (metrics["drop_rate"] + metrics["reject_rate"]) * metrics["tasks"]
            )
            assert metrics["tasks"] == settled == 60
            assert metrics["episode_return"] == pytest.approx(episode_return)
            return
        assert not truncated
    env.close()
