"""The plans section of the zoo card: how collaborating models do, measured offline.

Every plan in :data:`CARD_PLANS` is evaluated on the serving pool of its task type with the
shipped weights, exactly as the env would serve one task at a time: ensembles fuse the members'
real probabilities (uniform or validation-fitted weights), cascades escalate where the first
model's real confidence is under the threshold. Cost per task is the FLOPs the plan really
spends (a cascade pays its second model only on escalated tasks) and the simulated latency of a
batch of 8 on a T4 with the default profile scale, per task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtenv.core.devices import device_spec
from mtenv.core.inference import InferenceEngine
from mtenv.core.plans import CascadePlan, Plan, serve_pool
from mtenv.core.profiles import derive_profile
from mtenv.core.schema import ProfileConfig, SinglePlanConfig
from mtenv.io.scenario_files import parse_plans
from mtenv.zoo import DEFAULT_ZOO, Zoo, get_zoo
from mtenv.zoo.card import CardSection, markdown_table

CARD_PLANS: list[dict[str, Any]] = [
    {"kind": "ensemble", "members": ["cnn_wide", "cnn_deep"]},
    {"kind": "ensemble", "members": ["cnn_small", "cnn_wide", "cnn_deep"]},
    {"kind": "ensemble", "members": ["cnn_small", "cnn_wide", "cnn_deep"], "fusion": "vote"},
    {"kind": "ensemble", "members": ["mlp", "cnn_small", "cnn_wide"], "weighting": "fitted"},
    {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": 0.8},
    {"kind": "cascade", "first": "linear", "second": "cnn_wide", "threshold": 0.95},
    {"kind": "cascade", "first": "cnn_small", "second": "cnn_wide", "threshold": 0.9},
    {"kind": "cascade", "first": "cnn_small", "second": "cnn_wide", "threshold": 0.99},
]
"""The collaborating plans the card reports (classify), beside every single model."""

_BATCH = 8
_REFERENCE_DEVICE = "t4"


def card_plans(zoo: Zoo | None = None, task_type: str = "classify") -> list[Plan]:
    """The single models serving only ``task_type``, then the collaborating plans: on the
    digits zoo :data:`CARD_PLANS`, on any other :func:`generic_plans`."""
    zoo = zoo if zoo is not None else get_zoo()
    names = [m.name for m in zoo.models if m.task_types == (task_type,)]
    singles = [SinglePlanConfig(model=name).build(zoo) for name in names]
    collaborating = CARD_PLANS if zoo.name == DEFAULT_ZOO else generic_plans(zoo, names, task_type)
    return singles + parse_plans(collaborating, zoo=zoo)


def generic_plans(zoo: Zoo, names: list[str], task_type: str) -> list[dict[str, Any]]:
    """Plans any zoo with two or more single models of ``task_type`` can form: the uniform and
    the validation-fitted ensemble of them all, and cascades from the cheapest to the most
    expensive (by FLOPs) at confidence thresholds 0.8 and 0.95."""
    if len(names) < 2:
        return []
    by_cost = sorted(names, key=lambda name: zoo.stats(name).flops_for(task_type))
    cheapest, dearest = by_cost[0], by_cost[-1]
    return [
        {"kind": "ensemble", "members": names},
        {"kind": "ensemble", "members": names, "weighting": "fitted"},
        *(
            {"kind": "cascade", "first": cheapest, "second": dearest, "threshold": threshold}
            for threshold in (0.8, 0.95)
        ),
    ]


def evaluate_plans(
    plans: list[Plan] | None = None, zoo: Zoo | None = None, task_type: str = "classify"
) -> dict[str, Any]:
    """Accuracy per difficulty level, escalation rate and cost per task of each plan of
    ``zoo`` (default: digits) on ``task_type``."""
    zoo = zoo if zoo is not None else get_zoo()
    plans = card_plans(zoo, task_type) if plans is None else plans
    pool = zoo.pool_for(task_type)
    models = sorted({m for plan in plans for m in plan.models})
    engine = InferenceEngine(models, [task_type], mode="memoized", zoo=zoo)
    rows = {}
    for plan in plans:
        served = serve_pool(plan, engine, task_type)
        right, escalated = served.answer == pool.labels, served.escalated
        flops = _flops_per_task(zoo, plan, escalated, task_type)
        rows[plan.name] = {
            "kind": plan.kind,
            "models": list(plan.models),
            "accuracy": round(float(right.mean()), 4),
            "accuracy_by_level": [
                round(float(right[pool.levels == level].mean()), 4) for level in range(zoo.n_levels)
            ],
            "escalation_rate": round(float(escalated.mean()), 4),
            "flops_per_task": round(flops),
            "t4_ms_per_task_batch8": round(
                1e3 * _t4_seconds_per_task(zoo, plan, escalated, task_type), 4
            ),
        }
    return {"task_type": task_type, "batch": _BATCH, "device": _REFERENCE_DEVICE, "plans": rows}


def _flops_per_task(zoo: Zoo, plan: Plan, escalated: np.ndarray, task_type: str) -> float:
    if isinstance(plan, CascadePlan):
        first = zoo.stats(plan.first).flops_for(task_type)
        return first + escalated.mean() * zoo.stats(plan.second).flops_for(task_type)
    return float(sum(zoo.stats(m).flops_for(task_type) for m in plan.models))


def _t4_seconds_per_task(zoo: Zoo, plan: Plan, escalated: np.ndarray, task_type: str) -> float:
    spec, scale = device_spec(_REFERENCE_DEVICE), ProfileConfig().scale()

    def per_task(model: str) -> float:
        stats = zoo.stats(model)
        profile = derive_profile(
            flops=stats.flops_for(task_type),
            weight_bytes=stats.weight_bytes,
            layers=stats.layers_for(task_type),
            device=spec,
            scale=scale,
        )
        return profile.batch_latency(_BATCH) / _BATCH

    if isinstance(plan, CascadePlan):
        return per_task(plan.first) + escalated.mean() * per_task(plan.second)
    return sum(per_task(m) for m in plan.models)


def plan_section(result: dict[str, Any] | None = None) -> CardSection:
    """The card section: one row per plan."""
    result = evaluate_plans() if result is None else result
    n_levels = len(next(iter(result["plans"].values()))["accuracy_by_level"])
    head = ["plan", "kind", *(f"acc L{i}" for i in range(n_levels)), "acc all", "escalated",
            "FLOPs/task", f"T4 ms/task (b={_BATCH})"]  # fmt: skip
    rows = [
        [
            f"`{name}`",
            row["kind"],
            *(f"{a:.3f}" for a in row["accuracy_by_level"]),
            f"{row['accuracy']:.3f}",
            f"{row['escalation_rate']:.3f}" if row["kind"] == "cascade" else "",
            f"{row['flops_per_task']:,}",
            f"{row['t4_ms_per_task_batch8']:.3f}",
        ]
        for name, row in result["plans"].items()
    ]
    intro = (
        f"Plans on the {result['task_type']} serving pool, one task at a time as the env "
        "serves them: "
        "ensembles fuse the members' real probabilities (uniform weights unless fitted on the "
        "validation pool), cascades escalate where the first model's real confidence is under "
        "the threshold. FLOPs per task count a cascade's second model only where it ran; the "
        "last column is the simulated latency per task of a batch of 8 on a T4 (default "
        "profile scale)."
    )
    return CardSection(
        "Plans: models that collaborate", f"{intro}\n\n{markdown_table(head, rows, left=2)}", result
    )
