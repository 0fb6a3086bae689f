"""Plans that make models collaborate: fusion, weights, cascades, the shared trunk.

Scripted episodes check every answer the env produced against the real models run here, outside
the env, on the same inputs.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
from conftest import first_valid, play

from mtenv.core.plans import OnlineWeights, fit_ensemble_weights, fuse_mean, fuse_vote
from mtenv.tools.plan_card import evaluate_plans
from mtenv.zoo import N_LEVELS, load_model, serving_pool

MS = 1e-3


def real_probs(model: str, input_ids: list[int]) -> np.ndarray:
    pool = serving_pool()
    with torch.inference_mode():
        logits = load_model(model)(pool.inputs[torch.tensor(input_ids)])
    return torch.softmax(logits, dim=1).numpy()


# --- fusion and weights, as formulas ------------------------------------------------------------


def test_weighted_mean_fusion_is_the_formula():
    y1 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y2 = np.array([[0.2, 0.7, 0.1], [0.3, 0.4, 0.3]])
    w = np.array([3.0, 1.0])
    fused = fuse_mean([y1, y2], w)
    np.testing.assert_allclose(fused, (3 * y1 + 1 * y2) / 4)


def test_weighted_vote_counts_weights_per_answer_and_breaks_ties_by_mean():
    y = [
        np.array([[0.6, 0.4, 0.0]]),  # votes 0
        np.array([[0.1, 0.9, 0.0]]),  # votes 1
        np.array([[0.2, 0.7, 0.1]]),  # votes 1
    ]
    assert fuse_vote(y, np.array([1.0, 1.0, 1.0])).argmax() == 1  # two votes beat one
    assert fuse_vote(y, np.array([3.0, 1.0, 1.0])).argmax() == 0  # a heavy voter wins
    tie = fuse_vote(y[:2], np.array([1.0, 1.0]))  # one vote each: the mean prefers class 1
    assert tie.argmax() == 1
    np.testing.assert_allclose(tie.sum(), 1.0, atol=1e-5)
    # The answer does not depend on how the weights are scaled, in float32 inputs too.
    y32 = [p.astype(np.float32) for p in y[:2]]
    for scale in (1.0, 0.5, 1 / 3, 7.0):
        assert fuse_vote(y32, np.array([scale, scale])).argmax() == 1


def test_online_weights_move_towards_the_member_that_is_right_more_often():
    weights = OnlineWeights(n_members=3, learning_rate=0.2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        weights.update(rng.random(3) < np.array([0.9, 0.6, 0.3]))  # member accuracies
    w = weights.weights
    assert w.sum() == pytest.approx(1.0)
    assert w[0] > w[1] > w[2]
    weights.reset()
    np.testing.assert_allclose(weights.weights, 1 / 3)


def test_fitted_weights_favour_the_accurate_member_and_lower_the_loss():
    rng = np.random.default_rng(1)
    labels = rng.integers(3, size=500)
    sharp = np.full((500, 3), 0.05)
    sharp[np.arange(500), labels] = 0.9
    noise = rng.dirichlet(np.ones(3), size=500)
    w = fit_ensemble_weights([sharp, noise], labels)

    def loss(weights):
        fused = fuse_mean([sharp, noise], weights)
        return -np.log(fused[np.arange(500), labels]).mean()

    assert w[0] > 0.8
    assert loss(w) < loss(np.array([0.5, 0.5]))


# --- scripted episodes ---------------------------------------------------------------------------


def one_device(**changes) -> dict:
    base = {
        "episode_tasks": 120,
        "models": ["linear", "mlp", "cnn_small", "cnn_wide"],
        "devices": [{"kind": "a100", "max_queue": 100_000, "max_batch": 8}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 500},
            "task_types": {"classify": {"slo_ms": 1000}},
        },
    }
    base.update(changes)
    return base


def test_ensemble_answers_are_the_fused_real_outputs(make_env):
    members = ["mlp", "cnn_small", "cnn_wide"]
    env = make_env(**one_device(plans=[{"kind": "ensemble", "members": members}]))
    episode = play(env, first_valid, seed=2)
    tasks = [t for t in episode.tasks if t.status.name == "COMPLETED"]
    ids = [t.input_id for t in tasks]
    fused = np.mean([real_probs(m, ids) for m in members], axis=0)
    assert [t.answer for t in tasks] == fused.argmax(axis=1).tolist()
    np.testing.assert_allclose([t.confidence for t in tasks], fused.max(axis=1), rtol=1e-5)
    assert episode.metrics["ensemble_weights"][env.sim.plans[0].name] == pytest.approx(
        dict.fromkeys(members, 1 / 3)
    )


def test_ensemble_costs_the_sum_of_its_members(make_env):
    """Members run one after another on the device: batch latency is the sum of theirs."""
    env = make_env(**one_device(plans=[{"kind": "ensemble", "members": ["mlp", "cnn_wide"]}]))
    sim = env.sim
    (stage,) = sim.layout.stages
    mlp, wide = (sim.models.index(m) for m in ("mlp", "cnn_wide"))
    for b in (1, 8):
        expected = sum(sim.model_profiles[m][0].batch_latency(b) for m in (mlp, wide))
        assert sim._alpha[0][0] + sim._beta[0][0] * b == pytest.approx(expected)


def test_cascade_escalates_exactly_when_confidence_is_under_threshold(make_env):
    threshold = 0.9
    plan = {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": threshold}
    env = make_env(**one_device(plans=[plan], workload={
        "arrivals": {"process": "poisson", "rate": 500},
        "task_types": {"classify": {"slo_ms": 1000}},
        "difficulty": [0.2, 0.2, 0.2, 0.2, 0.2],
    }))  # fmt: skip
    episode = play(env, first_valid, seed=4)
    tasks = [t for t in episode.tasks if t.status.name == "COMPLETED"]
    ids = [t.input_id for t in tasks]
    cheap, big = real_probs("linear", ids), real_probs("cnn_wide", ids)
    unsure = cheap.max(axis=1) < threshold
    assert [t.escalated for t in tasks] == unsure.tolist()
    expected = np.where(unsure, big.argmax(axis=1), cheap.argmax(axis=1))
    assert [t.answer for t in tasks] == expected.tolist()
    assert 0 < unsure.sum() < len(tasks), "the scenario exercises both branches"
    assert episode.metrics["escalation_rate"] == pytest.approx(unsure.mean())
    assert episode.metrics["escalations"] == int(unsure.sum())


def test_escalated_task_queues_and_computes_again(make_env, tmp_path):
    """One task, a threshold of 1 (always escalate): it finishes after both models' batches."""
    path = tmp_path / "t.csv"
    path.write_text("timestamp\n0\n1\n")
    plan = {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": 1.0}
    env = make_env(**one_device(
        episode_tasks=2,
        plans=[plan],
        devices=[{"kind": "a100", "resident": ["linear", "cnn_wide"], "max_batch": 1,
                  "batch_timeout_ms": 0}],
        workload={"arrivals": {"process": "trace", "path": str(path), "loop": False},
                  "task_types": {"classify": {"slo_ms": 1000}}},
        profile={"overrides": [
            {"model": "linear", "device": "a100", "alpha_ms": 1, "beta_ms": 0},
            {"model": "cnn_wide", "device": "a100", "alpha_ms": 5, "beta_ms": 0},
        ]},
    ))  # fmt: skip
    episode = play(env, first_valid)
    first = min(episode.tasks, key=lambda t: t.id)
    assert first.escalated
    assert first.finished == pytest.approx((1 + 5) * MS)


def test_online_ensemble_learns_to_trust_the_stronger_member(make_env):
    """On hard inputs the wide CNN is right far more often than the linear model."""
    plan = {"kind": "ensemble", "members": ["linear", "cnn_wide"], "weighting": "online",
            "learning_rate": 0.2}  # fmt: skip
    env = make_env(**one_device(
        episode_tasks=300,
        plans=[plan],
        workload={"arrivals": {"process": "poisson", "rate": 500},
                  "task_types": {"classify": {"slo_ms": 1000}},
                  "difficulty": [0, 0, 0, 0.5, 0.5]},
    ))  # fmt: skip
    episode = play(env, first_valid, seed=0)
    (weights,) = episode.metrics["ensemble_weights"].values()
    assert weights["cnn_wide"] > 0.9 > weights["linear"]
    # A new episode starts from uniform weights again.
    env.reset(seed=1)
    np.testing.assert_allclose(env.sim.runner.weights(0), 0.5)


def test_fitted_ensemble_weights_come_from_the_validation_pool(make_env):
    plan = {"kind": "ensemble", "members": ["linear", "cnn_wide"], "weighting": "fitted"}
    env = make_env(**one_device(plans=[plan]))
    w = env.sim.runner.weights(0)
    assert w.sum() == pytest.approx(1.0)
    assert w[1] > w[0]  # the wide CNN is the better model on held-out data


def test_plans_share_model_queues_and_are_masked_by_memory(make_env):
    env = make_env(**one_device(
        plans=[
            {"model": "cnn_small"},
            {"kind": "cascade", "first": "cnn_small", "second": "cnn_wide", "threshold": 0.8},
            {"kind": "ensemble", "members": ["mlp", "cnn_wide"]},
        ],
        devices=[{"kind": "a100"}, {"kind": "t4", "memory_gb": 0.01}],
    ))  # fmt: skip
    layout = env.sim.layout
    assert layout.first[0] == layout.first[1], "single and cascade share the cnn_small queue"
    obs, info = env.reset(seed=0)
    mask = dict(zip(env.action_labels, info["action_mask"].tolist(), strict=True))
    assert mask["cnn_small@a100-0"] == mask["cnn_small@t4-1"] == 1
    assert mask["cnn_small>cnn_wide@0.8@t4-1"] == 0  # cnn_wide does not fit in 10 MB
    assert mask["mean(mlp+cnn_wide)/uniform@t4-1"] == 0


def test_shared_trunk_runs_once_per_mixed_batch_and_heads_answer(make_env):
    env = make_env(**one_device(
        models=["multitask"],
        plans=[{"kind": "multitask", "model": "multitask"}],
        devices=[{"kind": "t4", "max_batch": 8, "batch_timeout_ms": 5, "resident": ["multitask"]}],
        workload={"arrivals": {"process": "poisson", "rate": 2000},
                  "task_types": {"classify": {"slo_ms": 1000, "share": 1},
                                 "localize": {"slo_ms": 1000, "share": 1}}},
        inference={"mode": "live"},
    ))  # fmt: skip
    batches: list[list] = []
    runner = env.sim.runner
    original_run = runner.run

    def recording_run(stage, batch):
        batches.append(list(batch))
        return original_run(stage, batch)

    runner.run = recording_run
    episode = play(env, first_valid, seed=0)
    mixed = [b for b in batches if len({t.type for t in b}) == 2]
    assert mixed, "some batch mixes classify and localize tasks"
    assert env.engine.stats.trunk_calls == len(batches)  # one trunk pass per batch, never per type

    net = load_model("multitask")
    for name in ("classify", "localize"):
        t_index = env.sim.task_types.index(name)
        tasks = [t for t in episode.tasks if t.type == t_index and t.status.name == "COMPLETED"]
        pool = env.engine.pools[name]
        with torch.inference_mode():
            logits = net(pool.inputs[torch.tensor([t.input_id for t in tasks])], name)
        assert [t.answer for t in tasks] == logits.argmax(dim=1).tolist()


def test_shared_trunk_batch_latency_is_trunk_plus_heads(make_env):
    env = make_env(**one_device(
        models=["multitask"],
        plans=[{"kind": "multitask", "model": "multitask"}],
        workload={"arrivals": {"process": "poisson", "rate": 100},
                  "task_types": {"classify": {"slo_ms": 1000}, "localize": {"slo_ms": 1000}}},
    ))  # fmt: skip
    sim = env.sim
    env.reset(seed=0)
    trunk, heads = sim._trunk_parts[0][0]

    class T:  # the latency only reads a task's type
        def __init__(self, type_):
            self.type = type_

    batch = [T(0), T(0), T(1)]
    expected = trunk.batch_latency(3) + heads[0].batch_latency(2) + heads[1].batch_latency(1)
    assert sim._batch_latency(0, 0, batch) == pytest.approx(expected)
    single_type = trunk.batch_latency(3) + heads[0].batch_latency(3)
    assert sim._batch_latency(0, 0, [T(0)] * 3) == pytest.approx(single_type)


# --- the card's plans section ------------------------------------------------------------------


def test_card_plans_section_is_generated_and_shows_collaboration_paying():
    """The shipped card's plan rows equal a fresh offline evaluation, and they show what an
    allocator can exploit: on the hardest inputs a collaborating plan beats every single model,
    and the cheap models cost a small fraction of the big one per task."""
    shipped = json.loads((resources.files("mtenv.zoo") / "card.json").read_text("utf-8"))
    (section,) = [s for s in shipped["extra_sections"] if s["title"].startswith("Plans")]
    fresh = evaluate_plans()
    assert section["data"] == fresh

    rows = fresh["plans"]
    hardest = N_LEVELS - 1
    best_single = max(
        r["accuracy_by_level"][hardest] for r in rows.values() if r["kind"] == "single"
    )
    best_collaboration = max(
        r["accuracy_by_level"][hardest] for r in rows.values() if r["kind"] != "single"
    )
    assert best_collaboration > best_single
    assert rows["linear"]["flops_per_task"] * 100 < rows["cnn_wide"]["flops_per_task"]
    assert rows["linear"]["t4_ms_per_task_batch8"] * 10 < rows["cnn_wide"]["t4_ms_per_task_batch8"]
    cascade = rows["cnn_small>cnn_wide@0.99"]
    assert cascade["accuracy"] >= rows["cnn_wide"]["accuracy"] - 0.005
    assert cascade["flops_per_task"] < 0.8 * rows["cnn_wide"]["flops_per_task"]


# --- one serving rule: the simulator, the catalog and the card agree ------------------------------


def test_simulator_catalog_and_card_serve_the_same_outputs_identically(monkeypatch):
    """Outputs written here (some rows NaN, as a broken model would give) go through the
    simulator's stage runner, the action catalog and the zoo card: every path gives the same
    answers, and a NaN confidence never escalates a cascade."""
    import mtenv.core.inference as inference
    import mtenv.envs.catalog as catalog
    from mtenv.core.plans import CascadePlan, serve_pool
    from mtenv.core.stages import StageRunner, build_stages
    from mtenv.core.tasks import Task
    from mtenv.io.scenario_files import parse_plans
    from mtenv.zoo import get_zoo, pool_for

    models = ["linear", "cnn_small", "cnn_wide"]
    rng = np.random.default_rng(0)
    memo = {}
    for split in ("serving", "validation"):
        n = pool_for("classify", split).n_inputs
        for m in models:
            table = rng.dirichlet(np.full(10, 0.3), size=n).astype(np.float32)
            table[::7] = np.nan  # every seventh input: a model that returned NaN
            memo[(get_zoo(), m, "classify", split, "cpu")] = table
    monkeypatch.setattr(inference, "_MEMO", memo)
    monkeypatch.setattr(catalog, "_QUALITY", {})
    plans = parse_plans(
        [
            {"kind": "single", "model": "cnn_small"},
            {"kind": "ensemble", "members": ["cnn_small", "cnn_wide"]},
            {"kind": "ensemble", "members": models, "fusion": "vote", "weighting": "fitted"},
            {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": 0.6},
        ]
    )
    pool = pool_for("classify")
    engine = inference.InferenceEngine(models, ["classify"], mode="memoized")
    layout = build_stages(plans, models)
    runner = StageRunner(plans, models, ["classify"], layout, engine)
    card = evaluate_plans(plans)["plans"]
    for p, plan in enumerate(plans):
        tasks = [
            Task(i, 0, i, int(label), int(level), 1.0, 0, 0.0, 1.0, plan=p, stage=layout.first[p])
            for i, (label, level) in enumerate(zip(pool.labels, pool.levels, strict=True))
        ]
        runner.run(layout.first[p], tasks)
        escalated = [t for t in tasks if t.escalate]
        if escalated:
            for task in escalated:
                task.stage = layout.escalation[p]
            runner.run(layout.escalation[p], escalated)
        simulated = np.array([t.answer for t in tasks])
        flagged = np.array([t.escalate for t in tasks])

        served = serve_pool(plan, engine, "classify")
        np.testing.assert_array_equal(simulated, served.answer)
        np.testing.assert_array_equal(flagged, served.escalated)
        right = simulated == pool.labels
        by_level = [right[pool.levels == level].mean() for level in range(N_LEVELS)]
        quality = catalog.plan_quality(plan, "classify", engine, split="serving")
        np.testing.assert_allclose(quality.accuracy, by_level)
        np.testing.assert_allclose(card[plan.name]["accuracy_by_level"], by_level, atol=5e-5)
        if isinstance(plan, CascadePlan):
            nan_rows = np.isnan(memo[(get_zoo(), "linear", "classify", "serving", "cpu")][:, 0])
            assert nan_rows.any() and not flagged[nan_rows].any()
            assert flagged.any() and card[plan.name]["escalation_rate"] > 0
