"""What the load features read at 1× and 2× load: the median over an episode's decisions of
``load.arrival_rate`` and of the devices' mean ``<dev>.utilization``.

``infaas`` drives; episodes are seeded 100, 101, … at both loads, so the two columns see the
same tasks arriving at different rates. A feature that tells the loads apart roughly doubles
the arrival rate from the 1× column to the 2× one, and raises the utilisation.

    python benchmarks/load_features.py          # edge_burst, quickstart, datacenter_diurnal
    python benchmarks/load_features.py --scenarios cold_start --episodes 5
"""

from __future__ import annotations

import argparse

import numpy as np

from mtenv.agents.saved import resolve_policy
from mtenv.envs.observation import ObservationLayout
from mtenv.envs.task_allocation import TaskAllocationEnv

DEFAULT_SCENARIOS = "edge_burst,quickstart,datacenter_diurnal"


def medians(scenario: str, load: float, episodes: int) -> tuple[float, float]:
    """(arrival rate, mean utilisation): medians over every decision of ``episodes`` episodes."""
    env = TaskAllocationEnv(scenario, inference="memoized", load_scale=load)
    layout = ObservationLayout.of(env)
    policy = resolve_policy("infaas", env, 0)
    rates, utils = [], []
    for episode in range(episodes):
        seed = 100 + episode
        policy.reset(seed)
        obs, info = env.reset(seed=seed)
        while True:
            rates.append(layout.arrival_rate(obs))
            utils.append(layout.utilization(obs).mean())
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info["action_mask"]))
            if terminated or truncated:
                break
    env.close()
    return float(np.median(rates)), float(np.median(utils))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help="comma-separated names")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per load")
    args = parser.parse_args()
    print("| scenario | arrival rate, 1× → 2× | utilisation, 1× → 2× |")
    print("|---|---:|---:|")
    for scenario in args.scenarios.split(","):
        (rate_1, util_1), (rate_2, util_2) = (
            medians(scenario, load, args.episodes) for load in (1.0, 2.0)
        )
        print(f"| {scenario} | {rate_1:.2f} → {rate_2:.2f} | {util_1:.2f} → {util_2:.2f} |")


if __name__ == "__main__":
    main()
