"""Named benchmark suites: fixed sweeps that papers cite by name (``mtenv bench --suite v0``).

**v0** (``mtenv bench --suite v0 --out bench-v0``):

* scenarios: every shipped scenario (one per ``scenarios/*.yaml``, the ``mtenv/<Name>-v0`` ids
  of :data:`mtenv.ENV_IDS`), each at 1× its load and at 0.5× and 2× (``NAME@0.5x``,
  ``NAME@2x``);
* policies: every baseline (:data:`mtenv.agents.policies.BASELINES`) and the clairvoyant
  ``oracle`` (an upper bound, not a policy);
* learners: ``q-learning``, ``sarsa``, ``expected-sarsa`` and ``maskable-ppo``, each trained once
  per scenario and seed at its recipe's load (the base scenario; MaskablePPO over its
  ``load_range``) with the budget of its hyperparameter file (``agents/hyperparams/*.yml``,
  ``n_timesteps``: ``--train AGENT=hp``), then evaluated at every load;
* seeds 0–4, 2 held-out episodes per seed (env seeds ``EVAL_SEED + 1000·k + i``);
* reference: the best baseline of each scenario (``reference`` left unset).

A suite fixes what is run; ``--out``, ``--backend``, ``--workers`` and ``--resume`` still apply.
The scenario hashes in ``manifest.json`` pin the scenarios a result was measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtenv.tools.bench.sweep import HP_BUDGET, ORACLE
from mtenv.tools.cli_common import CliError


@dataclass(frozen=True)
class Suite:
    """A named sweep, as the arguments of :func:`~mtenv.tools.bench.sweep.build_sweep`."""

    name: str
    loads: tuple[float, ...]
    learners: tuple[str, ...]
    seeds: int
    episodes: int

    def arguments(self) -> dict[str, object]:
        from mtenv.agents.policies import BASELINES
        from mtenv.io.scenario_files import shipped_scenarios

        scenarios = [
            name if load == 1.0 else f"{name}@{load:g}x"
            for name in sorted(shipped_scenarios())
            for load in self.loads
        ]
        return {
            "scenarios": scenarios,
            "policies": [*BASELINES, ORACLE],
            "train": [f"{agent}={HP_BUDGET}" for agent in self.learners],
            "seeds": self.seeds,
            "episodes": self.episodes,
            "reference": None,
            "suite": self.name,
        }


SUITES: dict[str, Suite] = {
    "v0": Suite(
        name="v0",
        loads=(1.0, 0.5, 2.0),
        learners=("q-learning", "sarsa", "expected-sarsa", "maskable-ppo"),
        seeds=5,
        episodes=2,
    )
}
"""The suites by name."""


def suite_arguments(name: str) -> dict[str, object]:
    """The sweep arguments of a named suite; an unknown name lists the known ones."""
    try:
        return SUITES[name].arguments()
    except KeyError:
        raise CliError(f"--suite: unknown suite {name!r} (known: {', '.join(SUITES)})") from None
