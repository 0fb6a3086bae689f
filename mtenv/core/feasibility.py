"""What the simulator needs of a scenario beyond well-formed fields.

:func:`reference_problems` checks that every name resolves: the zoo, its task types (their
inputs come from its pools) and models, device kinds, the models plans and devices refer to,
plan names. It also runs on the parts of a file with schema errors, so that one run reports
every problem of the file.

:func:`feasibility_problems` runs inside :class:`~mtenv.core.schema.Scenario` validation once
every name resolves, so a scenario that validates can be simulated as written:

* the difficulty mix names no more levels than the zoo has, and ``reward.miss_penalty`` names
  the workload's task types and their classes;
* the devices are at most :data:`~mtenv.core.limits.MAX_DEVICES` in all and their names (with
  ``count`` expanded) are unique, since metrics and actions are keyed by name;
* resident models fit their device, in the order listed (nothing is dropped silently);
* every task type has at least one plan that serves it and fits on at least one device (else
  each of its tasks could only be rejected).

Memory is counted as the simulator counts it: a model's zoo weight bytes times the profile's
``bytes_scale``, a plan's as the sum over its models, a device's capacity from its catalogue
spec with the entry's overrides.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from mtenv.core.limits import MAX_DEVICES
from mtenv.core.plans import Plan
from mtenv.core.schema import (
    DEVICE_KINDS,
    DeviceConfig,
    PlanConfig,
    Scenario,
    WorkloadConfig,
    default_plans,
)
from mtenv.messages import excerpt, listed, unknown_name


def feasibility_problems(scenario: Scenario) -> list[str]:
    """One ``"field: expected ..., got ..."`` line per problem; empty when the scenario can run."""
    zoo = scenario.zoo_models()
    known = zoo.task_type_names
    problems: list[str] = []
    levels = zoo.n_levels
    if len(scenario.workload.difficulty) > levels:
        problems.append(
            f"workload.difficulty: expected at most {levels} probabilities (levels 0.."
            f"{levels - 1} of zoo {zoo.name!r}), got {excerpt(scenario.workload.difficulty)}"
        )
    for name, by_class in scenario.reward.miss_penalty.items():
        if name not in scenario.workload.task_types:
            problems.append(
                f"reward.miss_penalty: expected one of the workload's task types "
                f"({', '.join(scenario.workload.task_types)}), got {excerpt(name)}"
            )
        elif name in known:
            n = zoo.n_classes[name]
            problems += [
                f"reward.miss_penalty.{name}: expected classes 0..{n - 1}, got {label}"
                for label in by_class
                if not 0 <= label < n
            ]
    total = sum(dev.count for dev in scenario.devices)
    if total > MAX_DEVICES:
        problems.append(
            f"devices: expected at most {MAX_DEVICES} devices in all (entries times count), "
            f"got {total}"
        )
        return problems
    problems += _name_problems(scenario)
    model_bytes = _model_bytes(scenario)
    problems += _resident_problems(scenario, model_bytes)
    if not problems:
        problems += _coverage_problems(scenario, model_bytes)
    return problems


def _model_bytes(scenario: Scenario) -> dict[str, float]:
    """Each offered model's memory on a device, as the simulator's profiles count it."""
    scale = scenario.profile.bytes_scale
    zoo = scenario.zoo_models()
    return {m: zoo.stats(m).weight_bytes * scale for m in scenario.models}


def _name_problems(scenario: Scenario) -> list[str]:
    """Device names (``count`` expanded) that collide."""
    problems = []
    first: dict[str, int] = {}
    names = iter(scenario.device_names())
    for i, dev in enumerate(scenario.devices):
        for _ in range(dev.count):
            name = next(names)
            if name in first:
                where = "name" if dev.name is not None else "kind"
                problems.append(
                    f"devices[{i}].{where}: expected unique device names, got {excerpt(name)} "
                    f"again (devices[{first[name]}] has it)"
                )
            else:
                first[name] = i
    return problems


def _resident_problems(scenario: Scenario, model_bytes: dict[str, float]) -> list[str]:
    """Resident models listed twice, or that do not fit in what their device has left."""
    problems = []
    names = scenario.device_names()
    index = 0
    for i, dev in enumerate(scenario.devices):
        capacity = dev.spec().memory_bytes
        used = 0.0
        seen: set[str] = set()
        for j, model in enumerate(dev.resident):
            if model in seen:
                problems.append(f"devices[{i}].resident[{j}]: model {model!r} is listed twice")
                continue
            seen.add(model)
            need = model_bytes[model]
            if used + need > capacity:
                problems.append(
                    f"devices[{i}].resident[{j}]: model {model!r} needs {need:,.0f} bytes, but "
                    f"device {excerpt(names[index])} has {capacity - used:,.0f} of its "
                    f"{capacity:,.0f} bytes free"
                )
            else:
                used += need
        index += dev.count
    return problems


def _coverage_problems(scenario: Scenario, model_bytes: dict[str, float]) -> list[str]:
    """Task types that no plan both serves and fits on some device."""
    largest = max(dev.spec().memory_bytes for dev in scenario.devices)
    plans = scenario.plan_list()
    problems = []
    for name in scenario.workload.task_types:
        serving = [p for p in plans if name in p.task_types]
        if not serving:
            problems.append(f"workload.task_types.{name}: no plan on offer serves this task type")
            continue
        smallest = min(sum(model_bytes[m] for m in p.models) for p in serving)
        if smallest > largest:
            problems.append(
                f"workload.task_types.{name}: no plan serving it fits on any device (the "
                f"smallest needs {smallest:,.0f} bytes, the largest device has {largest:,.0f})"
            )
    return problems


# --- names that must resolve ----------------------------------------------------------------


def reference_problems(
    zoo_name: str | None,
    models: list[str] | None,
    plans: list[Any] | None,
    devices: list[DeviceConfig | None] | None,
    task_types: set[str] | None,
) -> list[str]:
    """Every name that does not resolve: the zoo, its task types and models (and the device kinds
    its models were measured on), device kinds, the models plans and devices refer to,
    duplicate plan names, and plans that serve none of the workload's task types.

    Works on parts validated one by one, so that a file with schema errors still has its names
    checked in the same run: a part that failed its own validation is ``None`` and skipped.
    """
    from mtenv.zoo import DEFAULT_ZOO, ZooError, get_zoo

    try:
        zoo = get_zoo(zoo_name or DEFAULT_ZOO)
    except ZooError as exc:
        return [f"zoo: {exc}"]
    problems = [
        f"workload.task_types: unknown task type {excerpt(name)} "
        f"(known: {', '.join(zoo.task_type_names)})"
        for name in sorted(task_types or ())
        if name not in zoo.task_type_names
    ]
    served = {t for t in task_types or () if t in zoo.task_type_names}
    offered = list(models or [])
    for i, model in enumerate(offered):
        if model not in zoo.model_names:
            problems.append(f"models[{i}]: {unknown_name('model', model, zoo.model_names)}")
        else:
            problems += [
                f"models[{i}]: zoo {zoo.name!r} measured {model!r} on "
                f"{unknown_name('device kind', kind, DEVICE_KINDS)}"
                for kind in zoo.model(model).latency_ms
                if kind not in DEVICE_KINDS
            ]
    known = [m for m in offered if m in zoo.model_names]
    buildable: list[tuple[int, Plan]] = []
    for i, plan in enumerate(plans or []):
        if plan is None:
            continue
        missing = [m for m in plan.model_names() if m not in offered]
        if models is not None and missing:
            problems.append(
                f"plans[{i}]: expected models among the scenario's "
                f"({listed(offered)}), got {excerpt(missing[0])}"
            )
        elif all(m in zoo.model_names for m in plan.model_names()):
            buildable.append((i, plan.build(zoo)))
    for i, dev in enumerate(devices or []):
        if dev is None:
            continue
        if dev.kind not in DEVICE_KINDS:
            problems.append(
                f"devices[{i}].kind: {unknown_name('device kind', dev.kind, DEVICE_KINDS)}"
            )
        for j, model in enumerate(dev.resident):
            if models is not None and model not in offered:
                problems.append(
                    f"devices[{i}].resident[{j}]: expected one of the scenario's models "
                    f"({listed(offered)}), got {excerpt(model)}"
                )
    if plans is None or not plans:
        buildable = list(enumerate(default_plans(known, served, zoo)))
    names = [plan.name for _, plan in buildable]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"plans: expected unique plan names, got duplicates {excerpt(duplicates)}")
    for i, plan in buildable:
        if served and not served & set(plan.task_types):
            problems.append(
                f"plans[{i}]: plan {excerpt(plan.name)} serves {list(plan.task_types)}, none of "
                f"the workload's task types {excerpt(sorted(served))}"
            )
    return problems


def validated_parts(raw: dict[str, Any]) -> dict[str, Any]:
    """The parts of a raw scenario that :func:`reference_problems` reads, each validated on
    its own; a part that does not validate is ``None``."""

    def each(key: str, adapter: TypeAdapter) -> list[Any] | None:
        items = raw.get(key)
        if not isinstance(items, list):
            return None
        out = []
        for item in items:
            try:
                out.append(adapter.validate_python(item))
            except ValidationError:
                out.append(None)
        return out

    models = raw.get("models")
    try:
        workload = WorkloadConfig.model_validate(raw.get("workload"))
    except ValidationError:
        workload = None
    zoo = raw.get("zoo", Scenario.model_fields["zoo"].default)
    return {
        "zoo_name": zoo if isinstance(zoo, str) else None,
        "models": [m for m in models if isinstance(m, str)] if isinstance(models, list) else None,
        "plans": each("plans", TypeAdapter(PlanConfig)),
        "devices": each("devices", TypeAdapter(DeviceConfig)),
        "task_types": set(workload.task_types) if workload is not None else None,
    }
