"""Headroom per scenario: how far the clairvoyant oracle lies above the best deployable baseline.

For each scenario, every baseline (``mtenv.agents.policies.BASELINES``) and the oracle play
``--episodes`` episodes for each of ``--seeds`` evaluation seeds ``k``; episode ``i`` of seed
``k`` is seeded ``10_000 + 1000·k + i`` for every policy, so the results pair by seed. One seed
contributes one sample: the mean return of its episodes.

Per scenario the report gives the best baseline (highest mean return over seeds), the oracle's
mean, the headroom (oracle − best baseline, paired by seed, mean ± Student-t 95 % half-width over
seeds) and the headroom as a percentage of the best baseline's |mean return|. A scenario passes
when the interval excludes 0 and the headroom is at least 5 % of the best baseline's |return|.

    python benchmarks/headroom.py                                   # every shipped scenario
    python benchmarks/headroom.py --scenarios quickstart,edge_burst --seeds 3 --episodes 1
    python benchmarks/headroom.py --out headroom.json               # also write the JSON

The Markdown table goes to stdout, a progress line per (scenario, policy) to stderr. Inference is
memoized and torch runs on one thread, so a run is cheap on a laptop.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtenv.agents.policies import BASELINES, make_policy
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.io.scenario_files import shipped_scenarios
from mtenv.tools.bench.stats import beats, paired_difference
from mtenv.tools.evaluation import evaluate_policy

EVAL_SEED = 10_000
"""Episode ``i`` of evaluation seed ``k`` is seeded ``EVAL_SEED + 1000·k + i``."""
ORACLE = "oracle"
MIN_RELATIVE = 0.05
"""A scenario passes only with a headroom of at least this fraction of the best baseline's
|return|."""


def chosen_scenarios(option: str | None, program: str) -> list[str] | None:
    """The shipped scenarios a comma-separated ``--scenarios`` names (all when ``None``);
    ``None``, after a message on stderr, when it names one that is not shipped."""
    shipped = shipped_scenarios()
    scenarios = option.split(",") if option else list(shipped)
    unknown = sorted(set(scenarios) - set(shipped))
    if unknown:
        print(f"{program}: --scenarios: unknown {', '.join(unknown)}", file=sys.stderr)
        return None
    return scenarios


def per_seed_returns(scenario: str, policy: str, seeds: int, episodes: int) -> list[float]:
    """Mean episode return of ``policy`` on ``scenario`` for each evaluation seed."""
    env = TaskAllocationEnv(scenario=scenario, inference="memoized")
    try:
        returns = []
        for k in range(seeds):
            agent = make_policy(policy, env, seed=k)
            runs = evaluate_policy(env, agent, episodes, seed=EVAL_SEED + 1000 * k)
            returns.append(float(np.mean([r["episode_return"] for r in runs])))
        return returns
    finally:
        env.close()


def headroom(returns: dict[str, list[float]]) -> dict[str, Any]:
    """The headroom record of one scenario from each policy's per-seed returns."""
    baselines = {p: r for p, r in returns.items() if p != ORACLE}
    best = max(baselines, key=lambda p: float(np.mean(baselines[p])))
    best_mean = float(np.mean(baselines[best]))
    diff = paired_difference(returns[ORACLE], baselines[best])
    relative = diff.mean / abs(best_mean) if best_mean != 0 else math.inf
    excludes_zero = beats(diff)
    return {
        "best_baseline": best,
        "best_mean": best_mean,
        "oracle_mean": float(np.mean(returns[ORACLE])),
        "headroom": diff.as_dict(),
        "headroom_pct": 100.0 * relative,
        "passes": bool(excludes_zero and relative >= MIN_RELATIVE),
        "per_policy": {p: {"mean": float(np.mean(r)), "per_seed": r} for p, r in returns.items()},
    }


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The report as a Markdown table, one row per scenario."""
    lines = [
        "| scenario | best baseline | best mean | oracle mean | headroom ± 95 % CI | % | pass |",
        "| --- | --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for name, r in results.items():
        h = r["headroom"]
        lines.append(
            f"| {name} | {r['best_baseline']} | {r['best_mean']:.1f} | {r['oracle_mean']:.1f} "
            f"| {h['mean']:+.1f} ± {h['ci95']:.1f} | {r['headroom_pct']:.1f} "
            f"| {'yes' if r['passes'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    scenarios = chosen_scenarios(args.scenarios, "headroom")
    if scenarios is None:
        return 2
    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        returns: dict[str, list[float]] = {}
        for policy in (*BASELINES, ORACLE):
            started = time.perf_counter()
            returns[policy] = per_seed_returns(scenario, policy, args.seeds, args.episodes)
            print(
                f"  {scenario:<20} {policy:<14} return {np.mean(returns[policy]):9.2f} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        results[scenario] = headroom(returns)
    print(markdown(results))
    if args.out:
        report = {"seeds": args.seeds, "episodes": args.episodes, "scenarios": results}
        Path(args.out).write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=None, help="comma-separated; default: all shipped")
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds (CI samples)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per seed")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
