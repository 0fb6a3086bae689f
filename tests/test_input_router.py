"""benchmarks/input_router.py: labels from the env, cross-fitting without leaks, its AUC, and a
router policy that differs from ``expected-reward`` only in the chances it reads."""

from __future__ import annotations

import importlib
import itertools
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mtenv.agents.baselines.heuristics import ExpectedRewardPolicy
from mtenv.tools.evaluation import evaluate_policy

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("input_router")
    monkeypatch.setattr(module, "EPOCHS", 30)  # enough to fit, quick to run
    return module


def test_labels_are_what_the_clairvoyant_env_reports_for_its_task(router, make_env) -> None:
    env = make_env()
    right = router.right_answers(env, task_type=0)
    assert right.shape == (env.engine.pools["classify"].n_inputs, env.n_plans)
    for seed in range(5):
        env.reset(seed=seed)
        task = env._task
        np.testing.assert_array_equal(right[task.input_id], env.clairvoyant_correct())
    # the big model is right more often than the linear one, most of all on hard inputs
    pool = env.engine.pools["classify"]
    hardest = pool.levels == pool.levels.max()
    assert right[hardest, 1].mean() > right[hardest, 0].mean()


def test_a_prediction_never_comes_from_a_network_that_saw_its_image(router, make_env) -> None:
    env = make_env()
    pool = env.engine.pools["classify"]
    right = router.right_answers(env, task_type=0)
    x = router.features(pool, n_levels=int(pool.levels.max()) + 1)
    folds = 3
    before = router.cross_fitted(x, pool, right, folds)
    # Flip every label of fold 0's images (all their levels): fold 0's predictions stay put,
    # the other folds' move.
    in_fold_0 = np.arange(pool.n_inputs) % pool.n_per_level % folds == 0
    flipped = right.copy()
    flipped[in_fold_0] = ~flipped[in_fold_0]
    after = router.cross_fitted(x, pool, flipped, folds)
    np.testing.assert_array_equal(after[in_fold_0], before[in_fold_0])
    assert np.abs(after[~in_fold_0] - before[~in_fold_0]).max() > 0.1
    assert ((before >= 0) & (before <= 1)).all()


def test_auc_counts_ordered_pairs_and_half_the_ties(router) -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=40).astype(float)  # many ties
    right = rng.random(40) < 0.4
    pairs = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for a, b in itertools.product(scores[right], scores[~right])
    ]
    assert router.auc(scores, right) == pytest.approx(np.mean(pairs))
    assert router.auc(np.arange(4.0), np.array([False, False, True, True])) == 1.0


def test_probe_features_read_the_probe_models_output(router, make_env) -> None:
    env = make_env()
    pool = env.engine.pools["classify"]
    probs = env.engine.pool_outputs("linear", "classify")
    x = router.features(pool, 5, probs)
    assert x.shape == (pool.n_inputs, 5 + 3 + 1)
    top = np.sort(probs, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(x[:, 5:8].numpy(), top, rtol=1e-6)
    np.testing.assert_array_equal(x[:, :5].argmax(dim=1).numpy(), pool.levels)


def test_the_router_policy_with_the_card_as_its_chances_is_expected_reward(
    router, make_env
) -> None:
    env = make_env()
    pool = env.engine.pools["classify"]
    card = np.nan_to_num(env.catalog.accuracy[:, 0, :], nan=0.0)[:, pool.levels].T
    routed = evaluate_policy(env, router.InputRouterPolicy(env, {0: card}), 2, seed=7)
    rule = evaluate_policy(env, ExpectedRewardPolicy(env), 2, seed=7)
    assert rule[0]["plan_mix"]["cnn_wide"] == 1.0  # the card favours the big model
    assert [r["episode_return"] for r in routed] == [r["episode_return"] for r in rule]
    # with chances that say the linear model is always right and the big one never, it
    # serves with the linear model wherever that is on time
    always_linear = np.tile([1.0, 0.0], (pool.n_inputs, 1))
    runs = evaluate_policy(env, router.InputRouterPolicy(env, {0: always_linear}), 1, seed=7)
    assert runs[0]["plan_mix"]["linear"] > 0.9


def test_the_study_prints_one_row_per_scenario(router, capsys) -> None:
    assert router.main(["--scenarios", "quickstart", "--seeds", "2", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| quickstart |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 8
    assert 0.5 < float(cells[6]) < 1 and 0.5 < float(cells[7]) < 1  # the two AUCs
    assert router.main(["--scenarios", "nowhere"]) == 2
