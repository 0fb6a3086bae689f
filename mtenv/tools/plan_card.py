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
from mtenv.zoo import N_LEVELS, model_stats
from mtenv.zoo.card import CardSection, markdown_table
from mtenv.zoo.task_types import pool_for

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


def card_plans() -> list[Plan]:
    """The single models of the classify task, then :data:`CARD_PLANS`."""
    from mtenv.zoo import MODEL_NAMES

    singles = [
        SinglePlanConfig(model=m).build()
        for m in MODEL_NAMES
        if model_stats(m).task_types == ("classify",)
    ]
    return singles + parse_plans(CARD_PLANS)


def evaluate_plans(plans: list[Plan] | None = None) -> dict[str, Any]:
    """Accuracy per difficulty level, escalation rate and cost per task of each plan."""
    plans = card_plans() if plans is None else plans
    task_type = "classify"
    pool = pool_for(task_type)
    models = sorted({m for plan in plans for m in plan.models})
    engine = InferenceEngine(models, [task_type], mode="memoized")
    rows = {}
    for plan in plans:
        served = serve_pool(plan, engine, task_type)
        right, escalated = served.answer == pool.labels, served.escalated
        flops = _flops_per_task(plan, escalated, task_type)
        rows[plan.name] = {
            "kind": plan.kind,
            "models": list(plan.models),
            "accuracy": round(float(right.mean()), 4),
            "accuracy_by_level": [
                round(float(right[pool.levels == level].mean()), 4) for level in range(N_LEVELS)
            ],
            "escalation_rate": round(float(escalated.mean()), 4),
            "flops_per_task": round(flops),
            "t4_ms_per_task_batch8": round(1e3 * _t4_seconds_per_task(plan, escalated), 4),
        }
    return {"task_type": task_type, "batch": _BATCH, "device": _REFERENCE_DEVICE, "plans": rows}


def _flops_per_task(plan: Plan, escalated: np.ndarray, task_type: str) -> float:
    if isinstance(plan, CascadePlan):
        first = model_stats(plan.first).flops_for(task_type)
        return first + escalated.mean() * model_stats(plan.second).flops_for(task_type)
    return float(sum(model_stats(m).flops_for(task_type) for m in plan.models))


def _t4_seconds_per_task(plan: Plan, escalated: np.ndarray) -> float:
    spec, scale = device_spec(_REFERENCE_DEVICE), ProfileConfig().scale()

    def per_task(model: str) -> float:
        stats = model_stats(model)
        profile = derive_profile(
            flops=stats.flops_for("classify"),
            weight_bytes=stats.weight_bytes,
            layers=stats.layers_for("classify"),
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
    head = ["plan", "kind", *(f"acc L{i}" for i in range(N_LEVELS)), "acc all", "escalated",
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
        "Plans on the classify serving pool, one task at a time as the env serves them: "
        "ensembles fuse the members' real probabilities (uniform weights unless fitted on the "
        "validation pool), cascades escalate where the first model's real confidence is under "
        "the threshold. FLOPs per task count a cascade's second model only where it ran; the "
        "last column is the simulated latency per task of a batch of 8 on a T4 (default "
        "profile scale)."
    )
    return CardSection(
        "Plans: models that collaborate", f"{intro}\n\n{markdown_table(head, rows, left=2)}", result
    )
