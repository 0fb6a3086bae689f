"""How much of the oracle's headroom can an allocator reach by reading each task's input?

The clairvoyant oracle (``mtenv.agents.oracle``) knows which plans answer a task right. Every
deployable policy in mtenv, the learned ones included, sees a task's type and difficulty level
instead, so its best guess of a plan's chance of being right is the card accuracy of that
(type, level). A router that looks at the input itself could do better, if which plans get an
input right can be told from the input. This study measures how far that goes:

1. **Labels.** For every input of each of the scenario's task types (the serving pool, every
   level), every plan is run on it as the env would serve it at the start of an episode
   (``TaskAllocationEnv._answers_correctly``: the memoised models, the cascades' confidence
   rule, the ensembles' starting weights): ``right[input, plan]``. A real deployment would
   gather such labels by running every plan on a logged, labelled sample.
2. **Router, cross-fitted.** The serving pool's base images are split into ``--folds`` folds.
   For the inputs of one fold (every level of those images), a small network trained on the
   other folds' inputs predicts each plan's chance of being right from the input's pixels and
   its level. No prediction comes from a network that saw the image it is made for.
3. **Policy.** ``expected-reward`` with the router's per-input chance in place of the card
   accuracy (everything else as in the rule), against ``expected-reward`` itself and the
   oracle, on the evaluation seeds of ``benchmarks/headroom.py`` (paired by seed).

Per scenario the report gives the three mean returns, the router policy's paired difference to
``expected-reward`` (mean ± Student-t 95 % half-width over seeds), the share of the headroom it
closes, and how well the router and the card rank right against wrong answers (AUC, pooled
over plans, on the serving pool; 0.5 is chance, 1 perfect).

    python benchmarks/input_router.py                                  # every shipped scenario
    python benchmarks/input_router.py --scenarios quickstart --seeds 3 --episodes 2
    python benchmarks/input_router.py --probe mlp  # route on the mlp's output, pass unpaid

With ``--probe MODEL`` the router reads that model's class probabilities on the input (their
three largest and their entropy) instead of the pixels: a router that runs a cheap model first.
Its forward pass is not charged in the env, so the result is an optimistic bound on what such a
router could earn; a paid probe is a cascade plan, which scenarios can offer and every rule
already weighs. Task types the probe does not serve are routed on their pixels.

The Markdown table goes to stdout, a progress line per scenario to stderr. Inference is
memoised and torch runs on one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from headroom import EVAL_SEED, ORACLE, chosen_scenarios, per_seed_returns

from mtenv.agents.baselines.heuristics import ExpectedRewardPolicy, Situation
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.tools.bench.stats import headroom_closed, paired_difference
from mtenv.tools.evaluation import evaluate_policy

RULE = "expected-reward"
ROUTER_SEED = 0
EPOCHS = 400
HIDDEN = 64


def right_answers(env: TaskAllocationEnv, task_type: int) -> np.ndarray:
    """``[n_inputs, n_plans]`` bool: plan ``p`` answers pool input ``i`` of ``task_type`` right
    (False for plans that do not serve the type)."""
    env.reset(seed=0)
    name = env.sim.task_types[task_type]
    pool = env.engine.pools[name]
    serves = env.sim.plan_serves[:, task_type]
    template = env._task
    right = np.zeros((pool.n_inputs, env.n_plans), dtype=bool)
    for i in range(pool.n_inputs):
        task = dataclasses.replace(
            template,
            type=task_type,
            input_id=i,
            label=int(pool.labels[i]),
            difficulty=int(pool.levels[i]),
        )
        for p in np.flatnonzero(serves):
            right[i, p] = env._answers_correctly(task, int(p))
    return right


def features(pool: Any, n_levels: int, probe: np.ndarray | None = None) -> torch.Tensor:
    """Each input's level, one-hot, and either its pixels (scaled to [0, 1]) or, given a probe
    model's class probabilities ``[n_inputs, n_classes]``, their three largest and entropy."""
    levels = torch.nn.functional.one_hot(torch.tensor(np.array(pool.levels)), n_levels).float()
    if probe is None:
        pixels = pool.inputs.reshape(pool.n_inputs, -1).float()
        return torch.cat([levels, pixels / pixels.max().clamp(min=1e-9)], dim=1)
    probs = torch.tensor(np.array(probe), dtype=torch.float32)
    top = probs.sort(dim=1, descending=True).values[:, :3]
    entropy = -(probs * probs.clamp(min=1e-9).log()).sum(dim=1, keepdim=True)
    return torch.cat([levels, top, entropy], dim=1)


def fit(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
    """A one-hidden-layer network from inputs to each plan's logit of being right."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, y.shape[1])
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(EPOCHS):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        loss.backward()
        optimiser.step()
    return net


def cross_fitted(x: torch.Tensor, pool: Any, right: np.ndarray, folds: int) -> np.ndarray:
    """``[n_inputs, n_plans]`` each plan's predicted chance of answering each input right, from
    networks (on features ``x``) that never saw the input's base image."""
    y = torch.as_tensor(right, dtype=torch.float32)
    fold = np.arange(pool.n_inputs) % pool.n_per_level % folds
    predicted = np.zeros(right.shape)
    for k in range(folds):
        held = fold == k
        net = fit(x[~held], y[~held], ROUTER_SEED + k)
        with torch.no_grad():
            predicted[held] = torch.sigmoid(net(x[held])).numpy()
    return predicted


def auc(scores: np.ndarray, right: np.ndarray) -> float:
    """Probability that a right answer scores above a wrong one (ties count half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    n_right = right.sum()
    n_wrong = len(right) - n_right
    return float((ranks[right].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


class InputRouterPolicy(ExpectedRewardPolicy):
    """``expected-reward`` with a per-input chance of being right in place of the card accuracy.

    Reads the id of the task being decided from the env (``env.unwrapped._task.input_id``):
    the input itself, which a router in front of the models would see; nothing about its label.
    """

    name = "expected-reward+router"

    def __init__(self, env: gym.Env, chance: dict[int, np.ndarray], seed: int | None = None):
        super().__init__(env, seed)
        self._env = env.unwrapped
        self._chance = chance

    def situation(self, obs: np.ndarray, mask: np.ndarray) -> Situation:
        s = super().situation(obs, mask)
        task = self._env._task
        chance = self._chance[task.type][task.input_id]
        accuracy = np.where(np.isfinite(s.accuracy[:, 0]), chance, -np.inf)[:, None]
        return dataclasses.replace(s, accuracy=accuracy)


def study(
    scenario: str, seeds: int, episodes: int, folds: int, probe: str | None = None
) -> dict[str, Any]:
    """The router, its AUC against the card's, and the three policies' per-seed returns."""
    env = TaskAllocationEnv(scenario=scenario, inference="memoized")
    try:
        n_levels = env.catalog.n_levels
        chance, auc_router, auc_card = {}, [], []
        for t, name in enumerate(env.sim.task_types):
            pool = env.engine.pools[name]
            right = right_answers(env, t)
            probes = probe and name in env.engine.zoo.model(probe).task_types
            probed = env.engine.pool_outputs(probe, name) if probes else None
            chance[t] = cross_fitted(features(pool, n_levels, probed), pool, right, folds)
            card = np.nan_to_num(env.catalog.accuracy[:, t, :], nan=0.0)[:, pool.levels].T
            served = np.broadcast_to(env.sim.plan_serves[:, t], right.shape)
            auc_router.append((chance[t][served], right[served]))
            auc_card.append((card[served], right[served]))
        returns = {p: per_seed_returns(scenario, p, seeds, episodes) for p in (RULE, ORACLE)}
        routed = []
        for k in range(seeds):
            agent = InputRouterPolicy(env, chance, seed=k)
            runs = evaluate_policy(env, agent, episodes, seed=EVAL_SEED + 1000 * k)
            routed.append(float(np.mean([r["episode_return"] for r in runs])))
        returns["router"] = routed
    finally:
        env.close()

    def pooled_auc(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
        return auc(np.concatenate([s for s, _ in pairs]), np.concatenate([r for _, r in pairs]))

    means = {p: float(np.mean(r)) for p, r in returns.items()}
    return {
        "means": means,
        "router_minus_rule": paired_difference(returns["router"], returns[RULE]).as_dict(),
        "closed": headroom_closed(means["router"], means[RULE], means[ORACLE]),
        "auc_router": pooled_auc(auc_router),
        "auc_card": pooled_auc(auc_card),
        "per_seed": returns,
    }


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"| scenario | {RULE} | + router | oracle | router − rule ± 95 % CI | headroom closed "
        "| AUC card | AUC router |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        m, d = r["means"], r["router_minus_rule"]
        lines.append(
            f"| {name} | {m[RULE]:.1f} | {m['router']:.1f} | {m[ORACLE]:.1f} "
            f"| {d['mean']:+.1f} ± {d['ci95']:.1f} | {100 * r['closed']:.0f} % "
            f"| {r['auc_card']:.3f} | {r['auc_router']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    scenarios = chosen_scenarios(args.scenarios, "input_router")
    if scenarios is None:
        return 2
    results = {}
    for scenario in scenarios:
        started = time.perf_counter()
        results[scenario] = study(scenario, args.seeds, args.episodes, args.folds, args.probe)
        d = results[scenario]["router_minus_rule"]
        print(
            f"  {scenario:<20} router − rule {d['mean']:+.1f} ± {d['ci95']:.1f} "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    print(markdown(results))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=None, help="comma-separated; default: all shipped")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds (CI samples)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per seed")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds of base images")
    parser.add_argument(
        "--probe",
        default=None,
        help="route on this zoo model's output on the input instead of its pixels (its forward "
        "pass is not charged: an optimistic bound on routing after a cheap model)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
