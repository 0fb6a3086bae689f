"""What the simulator needs of a scenario beyond well-formed fields and names that resolve.

:func:`feasibility_problems` runs inside :class:`~mtenv.core.schema.Scenario` validation once
every name resolves, so a scenario that validates can be simulated as written:

* the task types are ones the zoo serves (their inputs come from its pools);
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

from typing import TYPE_CHECKING

from mtenv.core.limits import MAX_DEVICES, excerpt

if TYPE_CHECKING:
    from mtenv.core.schema import Scenario


def feasibility_problems(scenario: Scenario) -> list[str]:
    """One ``"field: expected ..., got ..."`` line per problem; empty when the scenario can run."""
    from mtenv.zoo import TASK_TYPES

    problems = [
        f"workload.task_types: unknown task type {excerpt(name)} (known: {', '.join(TASK_TYPES)})"
        for name in scenario.workload.task_types
        if name not in TASK_TYPES
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
    from mtenv.zoo import model_stats

    scale = scenario.profile.bytes_scale
    return {m: model_stats(m).weight_bytes * scale for m in scenario.models}


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
