"""Hyperparameters of the tabular learners: the ε and α schedules and
:class:`TabularHyperparameters`, with their validation and JSON-safe form.

ε is linear from ``start`` to ``end`` over the first ``fraction`` of the run's ``total_steps``
and constant after; α is either linear the same way or per (state, action)
``α = max(min, n^-power)`` with ``n`` the number of updates of that entry, this one included.
The defaults (γ 0.9, α 0.1 → 0.02 over the run, ε 1 → 0.1 over its first half) are what worked
on the shipped scenarios. The first trials (visit-count α, ε ending at 0.02) did worse: the
actions rarely tried late kept values learned under the early, worse policy (every value contains
the mean reward of the policy), so whichever action was greedy when the policy improved stayed
greedy. ε staying at 0.1 keeps every entry tracking the current policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtenv.agents.tabular.discretiser import DiscretiserConfig


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` at step 0, linear to ``end`` at ``fraction · total_steps``, ``end`` after."""

    start: float
    end: float
    fraction: float = 1.0

    def at(self, step: int, total_steps: int) -> float:
        horizon = self.fraction * total_steps
        if step >= horizon:
            return self.end
        return self.start + (self.end - self.start) * (step / horizon)

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end, "fraction": self.fraction}


@dataclass(frozen=True)
class VisitCountStepSize:
    """α = max(``min``, n^-``power``) for the n-th update of one (state, action) entry."""

    power: float
    min: float = 0.0

    def at(self, visits: int) -> float:
        return max(self.min, visits**-self.power)

    def to_dict(self) -> dict[str, float]:
        return {"power": self.power, "min": self.min}


StepSize = LinearSchedule | VisitCountStepSize
CREDITS = ("decision", "settle")


@dataclass(frozen=True)
class TabularHyperparameters:
    """What a tabular learner is built with (the keyword arguments of its constructor).

    ``gamma``: discount in [0, 1]. ``alpha``: a number (constant), ``{start, end, fraction}``
    (linear over the run) or ``{power, min}`` (per-entry visit count). ``epsilon``: a number or
    ``{start, end, fraction}``. ``q_init``: the initial Q-value of every entry (above the
    typical return it is optimistic and drives exploration). ``n_step``: rewards summed before
    the bootstrap (1: the one-step rule). ``credit``: ``decision`` (a step's reward is that of
    the task it decided, from ``info["feedback"]``) or ``settle`` (the env's step reward, paid
    when tasks settle). ``discretiser``: a list of feature specs (see
    :mod:`mtenv.agents.tabular.discretiser`) or ``{features, max_table_entries}``; ``None`` for the
    default set.
    """

    gamma: float = 0.9
    alpha: StepSize = field(default_factory=lambda: LinearSchedule(0.1, 0.02, 1.0))
    epsilon: LinearSchedule = field(default_factory=lambda: LinearSchedule(1.0, 0.1, 0.5))
    q_init: float = 0.0
    n_step: int = 1
    credit: str = "decision"
    discretiser: DiscretiserConfig = field(default_factory=DiscretiserConfig)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TabularHyperparameters:
        """Validated hyperparameters; a bad one raises ``ValueError`` naming it."""
        known = ("gamma", "alpha", "epsilon", "q_init", "n_step", "credit", "discretiser")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(
                f"unknown tabular hyperparameter(s) {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(known)}"
            )
        default = cls()
        gamma = _number(raw.get("gamma", default.gamma), "gamma", 0.0, 1.0)
        alpha = _step_size(raw["alpha"]) if "alpha" in raw else default.alpha
        epsilon = (
            _linear(raw["epsilon"], "epsilon", 0.0, 1.0) if "epsilon" in raw else default.epsilon
        )
        q_init = _number(raw.get("q_init", default.q_init), "q_init", -math.inf, math.inf)
        n_step = raw.get("n_step", default.n_step)
        if isinstance(n_step, bool) or not isinstance(n_step, int) or n_step < 1:
            raise ValueError(f"n_step: expected an integer >= 1, got {n_step!r}")
        credit = raw.get("credit", default.credit)
        if credit not in CREDITS:
            raise ValueError(f"credit: expected one of {', '.join(CREDITS)}, got {credit!r}")
        discretiser = DiscretiserConfig.from_spec(raw.get("discretiser"))
        return cls(gamma, alpha, epsilon, q_init, n_step, credit, discretiser)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form :meth:`from_dict` reads back."""
        return {
            "gamma": self.gamma,
            "alpha": self.alpha.to_dict(),
            "epsilon": self.epsilon.to_dict(),
            "q_init": self.q_init,
            "n_step": self.n_step,
            "credit": self.credit,
            "discretiser": self.discretiser.to_spec(),
        }


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name}: expected a finite number in [{low}, {high}], got {value!r}")
    return float(value)


def _linear(value: Any, name: str, low: float, high: float) -> LinearSchedule:
    """A number (constant) or ``{start, end, fraction}``."""
    if not isinstance(value, Mapping):
        constant = _number(value, name, low, high)
        return LinearSchedule(constant, constant, 1.0)
    unknown = sorted(set(value) - {"start", "end", "fraction"})
    if unknown or "start" not in value or "end" not in value:
        raise ValueError(
            f"{name}: expected a number or {{start, end, fraction}}, got {dict(value)!r}"
        )
    return LinearSchedule(
        _number(value["start"], f"{name}.start", low, high),
        _number(value["end"], f"{name}.end", low, high),
        _number(value.get("fraction", 1.0), f"{name}.fraction", 1e-9, 1.0),
    )


def _step_size(value: Any) -> StepSize:
    """α: a number, ``{start, end, fraction}``, or ``{power, min}``."""
    if isinstance(value, Mapping) and "power" in value:
        unknown = sorted(set(value) - {"power", "min"})
        if unknown:
            raise ValueError(f"alpha: expected {{power, min}}, got {dict(value)!r}")
        return VisitCountStepSize(
            _number(value["power"], "alpha.power", 0.0, 1.0),
            _number(value.get("min", 0.0), "alpha.min", 0.0, 1.0),
        )
    schedule = _linear(value, "alpha", 0.0, 1.0)
    if schedule.start <= 0 and schedule.end <= 0:
        raise ValueError("alpha: a step size of 0 learns nothing")
    return schedule
