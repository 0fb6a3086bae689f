"""The scenario schema: validated, immutable configuration of one allocation problem.

A :class:`Scenario` names the devices, the models and plans on offer, the workload (arrival
process, task types with their SLOs, difficulty and priority mix), the profile scale, the reward
weights and the episode length. It configures the simulator the way a Jumanji generator's config
does; the simulator reads it and nothing else. Every field is checked by pydantic, and the names
a scenario refers to (zoo models, device kinds, the models of plans and resident sets) are
resolved here, and what the simulator needs is checked (:mod:`mtenv.core.feasibility`: unique
device names, resident models that fit, a plan that fits somewhere for every task type), so that
a :class:`Scenario` that exists can be run. Types are strict (``true`` is not a number, ``"5"``
not an integer) and sizes bounded (:mod:`mtenv.core.limits`): a file may come from someone else.

Reading one from YAML (with ``extends``) and turning pydantic's errors into one line per problem
is :mod:`mtenv.io.scenario_files`; the Markdown reference of every field is
:mod:`mtenv.io.schema_reference`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from mtenv.core import limits as lim
from mtenv.core.devices import DEVICE_KINDS, DeviceSpec, device_spec
from mtenv.core.plans import CascadePlan, EnsemblePlan, MultiTaskPlan, Plan, SinglePlan
from mtenv.core.profiles import ProfileScale
from mtenv.messages import excerpt

if TYPE_CHECKING:
    from mtenv.zoo import Zoo

PositiveFloat = Annotated[float, Field(gt=0, le=lim.MAX_AMOUNT, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, le=lim.MAX_AMOUNT, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=lim.MIN_RATE, le=lim.MAX_RATE, allow_inf_nan=False)]
RateOrZero = Annotated[float, Field(ge=0, le=lim.MAX_RATE, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=lim.MAX_SECONDS, allow_inf_nan=False)]
Sojourn = Annotated[float, Field(ge=lim.MIN_SECONDS, le=lim.MAX_SECONDS, allow_inf_nan=False)]
Gigabytes = Annotated[float, Field(gt=0, le=lim.MAX_MEMORY_GB, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=lim.MAX_NAME_CHARS)]


def _zero_or_rate(name: str, value: float) -> None:
    """A rate that may be 0 (silence) must otherwise be at least the smallest rate."""
    if 0 < value < lim.MIN_RATE:
        raise ValueError(f"{name}: expected 0 or a number >= {lim.MIN_RATE:g}, got {value!r}")


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the file, field and expectation::

    quickstart.yaml: devices[1].memory_gb: expected a number > 0, got -4
    """


class _Strict(BaseModel):
    """Base for every schema block: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- arrival processes ---------------------------------------------------------------------


class PoissonConfig(_Strict):
    """Poisson arrivals at a constant ``rate`` (tasks per second)."""

    process: Literal["poisson"] = Field(description="selects this arrival process")
    rate: Rate = Field(description="mean arrivals per second")


class GammaConfig(_Strict):
    """Gamma renewal arrivals: mean ``rate`` per second, inter-arrival coefficient of variation
    ``cv`` (1 is Poisson, above 1 is bursty)."""

    process: Literal["gamma"] = Field(description="selects this arrival process")
    rate: Rate = Field(description="mean arrivals per second")
    cv: Annotated[float, Field(ge=lim.MIN_CV, le=lim.MAX_CV, allow_inf_nan=False)] = Field(
        description="coefficient of variation of inter-arrival times (1 = Poisson, > 1 = bursty)"
    )


class OnOffConfig(_Strict):
    """Two-state Markov-modulated Poisson arrivals (bursts of ``rate_on`` between lulls). At
    least 0.01 arrivals are expected per on/off cycle (``rate_on·mean_on_s +
    rate_off·mean_off_s``): each switch costs a draw (see *Limits*)."""

    process: Literal["on_off"] = Field(description="selects this arrival process")
    rate_on: Rate = Field(description="arrivals per second while in the on (burst) state")
    rate_off: RateOrZero = Field(description="arrivals per second while in the off state")
    mean_on_s: Sojourn = Field(description="mean seconds spent in the on state")
    mean_off_s: Sojourn = Field(description="mean seconds spent in the off state")

    @model_validator(mode="after")
    def _check_switching(self) -> OnOffConfig:
        _zero_or_rate("rate_off", self.rate_off)
        per_cycle = self.rate_on * self.mean_on_s + self.rate_off * self.mean_off_s
        if per_cycle < lim.MIN_ARRIVALS_PER_CYCLE:
            raise ValueError(
                "expected at least "
                f"{lim.MIN_ARRIVALS_PER_CYCLE:g} arrivals per on/off cycle (rate_on·mean_on_s + "
                f"rate_off·mean_off_s), got {per_cycle:.3g}"
            )
        return self


class DiurnalConfig(_Strict):
    """A daily cycle: rate ``mean_rate · (1 + amplitude · sin(2π(t/period_s + phase)))``."""

    process: Literal["diurnal"] = Field(description="selects this arrival process")
    mean_rate: Rate = Field(description="arrivals per second averaged over a period")
    amplitude: Probability = Field(
        description="relative swing around the mean rate (0 = flat, 1 = down to zero)"
    )
    period_s: Sojourn = Field(description="length of one cycle in simulated seconds")
    phase: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] = Field(
        0.0, description="offset into the cycle at time 0, in periods"
    )


class SpikeConfig(_Strict):
    """A step or spike: ``base_rate``, then ``spike_rate`` from ``start_s`` for ``duration_s``
    seconds (omit the duration for a permanent step)."""

    process: Literal["spike"] = Field(description="selects this arrival process")
    base_rate: Rate = Field(description="arrivals per second outside the spike")
    spike_rate: Rate = Field(description="arrivals per second during the spike")
    start_s: Seconds = Field(description="simulated second at which the spike starts")
    duration_s: Annotated[float, Field(gt=0)] = Field(
        math.inf, description="seconds the spike lasts; omit (or `.inf`) for a permanent step"
    )

    @model_validator(mode="after")
    def _check_duration(self) -> SpikeConfig:
        if math.isfinite(self.duration_s) and self.duration_s > lim.MAX_SECONDS:
            raise ValueError(
                f"duration_s: expected a number <= {lim.MAX_SECONDS:g} or .inf, "
                f"got {self.duration_s!r}"
            )
        return self


class TraceConfig(_Strict):
    """Replay of a CSV trace; ``path`` is relative to the scenario file. ``format`` says its
    shape: one arrival per row (``timestamps``, as in the Azure Functions 2021 invocation trace)
    or arrivals per minute (``minute_counts``, as in the Azure Functions 2019 trace, spread
    uniformly within each minute with a fixed seed)."""

    process: Literal["trace"] = Field(description="selects this arrival process")
    path: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="CSV trace file, relative to the scenario file"
    )
    format: Literal["timestamps", "minute_counts"] = Field(
        "timestamps", description="the CSV's shape: one row per arrival, or counts per minute"
    )
    rate_scale: Annotated[float, Field(gt=0, le=lim.MAX_RATE, allow_inf_nan=False)] = Field(
        1.0, description="multiplies the trace's arrival rate (2 = twice as many per second)"
    )
    loop: bool = Field(True, description="replay the trace from the start when it runs out")


ArrivalConfig = Annotated[
    PoissonConfig | GammaConfig | OnOffConfig | DiurnalConfig | SpikeConfig | TraceConfig,
    Field(discriminator="process"),
]


# --- workload ------------------------------------------------------------------------------


class TaskTypeConfig(_Strict):
    """One task type: its share of arrivals and its latency objective."""

    share: PositiveFloat = Field(
        1.0, description="relative share of arrivals of this type (normalised over types)"
    )
    slo_ms: PositiveFloat = Field(description="latency objective: deadline after arrival, in ms")


class PriorityClass(_Strict):
    """A priority class: its reward weight and its share of arrivals."""

    name: Name = Field(description="the class's name, shown in metrics")
    weight: PositiveFloat = Field(description="reward multiplier for tasks of this class")
    share: PositiveFloat = Field(
        description="relative share of arrivals in this class (normalised over classes)"
    )


class WorkloadConfig(_Strict):
    """What arrives: when, of which type, how hard and how important."""

    arrivals: ArrivalConfig = Field(
        description="the arrival process; its `process` field selects which fields apply"
    )
    task_types: dict[str, TaskTypeConfig] = Field(
        default_factory=lambda: {"classify": TaskTypeConfig(slo_ms=20.0)},
        min_length=1,
        max_length=16,
        description="task types by name (`classify`, `localize`), each with share and SLO",
    )
    difficulty: list[NonNegativeFloat] = Field(
        default_factory=list,
        description="probability of each difficulty level (0 = clean input), normalised; "
        "levels left out get 0; empty: every level of the zoo alike",
    )
    priorities: list[PriorityClass] = Field(
        default_factory=lambda: [PriorityClass(name="normal", weight=1.0, share=1.0)],
        min_length=1,
        max_length=lim.MAX_LIST_ITEMS,
        description="priority classes tasks are drawn from",
    )
    drop_expired: bool = Field(
        False, description="drop a queued task whose deadline passed before its batch starts"
    )
    load_scale: Annotated[float, Field(ge=lim.MIN_SCALE, le=lim.MAX_SCALE, allow_inf_nan=False)] = (
        Field(
            1.0,
            description="multiplies the arrival rate: arrival times are divided by it, so the "
            "process's shape over time compresses alike (observations still normalise the rate by "
            "the unscaled process's mean)",
        )
    )

    @property
    def max_priority(self) -> float:
        """The largest priority weight: the observation's ``task.priority`` is a task's weight
        divided by it."""
        return max(p.weight for p in self.priorities)

    def level_weights(self, n_levels: int) -> list[float]:
        """Unnormalised probability of each of a zoo's ``n_levels`` difficulty levels."""
        if not self.difficulty:
            return [1.0] * n_levels
        given = list(self.difficulty)[:n_levels]
        return given + [0.0] * (n_levels - len(given))

    @model_validator(mode="after")
    def _check_difficulty(self) -> WorkloadConfig:
        if self.difficulty and sum(self.difficulty) <= 0:
            raise ValueError(
                f"difficulty: expected at least one positive probability, got "
                f"{excerpt(self.difficulty)}"
            )
        return self


# --- devices, models, plans ----------------------------------------------------------------


class DeviceConfig(_Strict):
    """One device (or ``count`` identical ones) of a catalogue kind, with optional overrides."""

    kind: str = Field(description="catalogue device kind: " + ", ".join(DEVICE_KINDS))
    count: Annotated[int, Field(ge=1, le=lim.MAX_DEVICES)] = Field(
        1, description="number of identical devices this entry stands for"
    )
    name: Name | None = Field(None, description="display name; default `<kind>-<index>`")
    memory_gb: Annotated[float, Field(gt=0, le=lim.MAX_MEMORY_GB, allow_inf_nan=False)] | None = (
        Field(None, description="memory capacity in GB; default: the catalogue's")
    )
    price_per_hour: NonNegativeFloat | None = Field(
        None, description="price in USD per hour; default: the catalogue's"
    )
    max_batch: Annotated[int, Field(ge=1, le=4096)] = Field(
        8, description="largest batch the device's queues form"
    )
    batch_timeout_ms: NonNegativeFloat = Field(
        2.0, description="how long a partial batch waits for more tasks before it starts"
    )
    max_queue: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        64, description="queued tasks per device beyond which its actions are masked"
    )
    resident: list[str] = Field(
        default_factory=list, max_length=lim.MAX_LIST_ITEMS, description="models loaded at time 0"
    )

    def spec(self) -> DeviceSpec:
        """The catalogue spec with this entry's overrides applied."""
        base = device_spec(self.kind)
        changes: dict[str, float] = {}
        if self.memory_gb is not None:
            changes["memory_bytes"] = self.memory_gb * 1e9
        if self.price_per_hour is not None:
            changes["price_per_hour"] = self.price_per_hour
        return base.with_overrides(**changes) if changes else base


def _served_types(models: tuple[str, ...], zoo: Zoo) -> tuple[str, ...]:
    """The task types every one of ``models`` serves."""
    types = [zoo.model(m).task_types for m in models]
    return tuple(t for t in types[0] if all(t in other for other in types[1:]))


class SinglePlanConfig(_Strict):
    """One model serves the task. Named after the model unless ``name`` is given."""

    kind: Literal["single"] = Field("single", description="selects this plan kind")
    model: str = Field(description="the zoo model that serves the task")
    name: Name | None = Field(None, description="plan name; default: the model's")

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def build(self, zoo: Zoo) -> Plan:
        return SinglePlan(self.name or self.model, _served_types((self.model,), zoo), self.model)


class EnsemblePlanConfig(_Strict):
    """Several models answer; outputs fused by weighted mean or vote, with uniform, fitted
    (offline, validation pool) or online (multiplicative-weights) weights."""

    kind: Literal["ensemble"] = Field(description="selects this plan kind")
    members: list[str] = Field(
        min_length=2, max_length=lim.MAX_MEMBERS, description="the zoo models that all answer"
    )
    fusion: Literal["mean", "vote"] = Field(
        "mean", description="weighted mean of probabilities, or weighted majority vote"
    )
    weighting: Literal["uniform", "fitted", "online"] = Field(
        "uniform", description="member weights: equal, fitted offline, or learned online"
    )
    learning_rate: PositiveFloat = Field(
        0.1, description="step size of the online multiplicative-weights update"
    )
    name: Name | None = Field(None, description="plan name; default `fusion(a+b)/weighting`")

    def model_names(self) -> tuple[str, ...]:
        return tuple(self.members)

    def build(self, zoo: Zoo) -> Plan:
        members = tuple(self.members)
        name = self.name or f"{self.fusion}({'+'.join(members)}){'/' + self.weighting}"
        return EnsemblePlan(
            name,
            _served_types(members, zoo),
            members,
            self.fusion,
            self.weighting,
            self.learning_rate,
        )


class CascadePlanConfig(_Strict):
    """``first`` answers; when its confidence is under ``threshold`` the task escalates to
    ``second`` on the same device."""

    kind: Literal["cascade"] = Field(description="selects this plan kind")
    first: str = Field(description="the cheap zoo model that answers first")
    second: str = Field(description="the zoo model a low-confidence task escalates to")
    threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        description="escalate when the first model's top softmax probability is below this"
    )
    name: Name | None = Field(None, description="plan name; default `first>second@threshold`")

    def model_names(self) -> tuple[str, ...]:
        return (self.first, self.second)

    def build(self, zoo: Zoo) -> Plan:
        name = self.name or f"{self.first}>{self.second}@{self.threshold:g}"
        types = _served_types((self.first, self.second), zoo)
        return CascadePlan(name, types, self.first, self.second, self.threshold)


class MultiTaskPlanConfig(_Strict):
    """A shared-trunk multi-task model serving every task type it has a head for."""

    kind: Literal["multitask"] = Field(description="selects this plan kind")
    model: str = Field(description="the shared-trunk zoo model")
    name: Name | None = Field(None, description="plan name; default: the model's")

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def build(self, zoo: Zoo) -> Plan:
        return MultiTaskPlan(self.name or self.model, _served_types((self.model,), zoo), self.model)


def _plan_kind(value: Any) -> str | None:
    """The plan's ``kind``; a plan written without one is a single-model plan."""
    if isinstance(value, dict):
        return value.get("kind", "single")
    return getattr(value, "kind", None)


PlanConfig = Annotated[
    Annotated[SinglePlanConfig, Tag("single")]
    | Annotated[EnsemblePlanConfig, Tag("ensemble")]
    | Annotated[CascadePlanConfig, Tag("cascade")]
    | Annotated[MultiTaskPlanConfig, Tag("multitask")],
    Discriminator(
        _plan_kind,
        custom_error_type="plan_kind",
        custom_error_message="expected kind to be one of 'single', 'ensemble', 'cascade', "
        "'multitask'",
    ),
]


class ProfileOverride(_Strict):
    """Measured latency for one (model, device kind) pair, replacing the derived profile."""

    model: str = Field(description="the zoo model measured")
    device: str = Field(description="the catalogue device kind it was measured on")
    alpha_ms: NonNegativeFloat = Field(description="fixed latency per batch, in ms")
    beta_ms: NonNegativeFloat = Field(description="added latency per task in the batch, in ms")


class ProfileConfig(_Strict):
    """How the zoo's small models stand in for production-sized ones (see mtenv.core.profiles).

    The defaults make ``cnn_wide`` cost about what ResNet-50 costs (≈ 8 GFLOPs, ≈ 100 MB of
    weights, ≈ 50 layers) and scale the other models by the same factors.
    """

    flops_scale: PositiveFloat = Field(2000.0, description="multiplies each model's FLOPs")
    bytes_scale: PositiveFloat = Field(200.0, description="multiplies each model's weight bytes")
    layer_scale: PositiveFloat = Field(10.0, description="multiplies each model's layer count")
    overrides: list[ProfileOverride] = Field(
        default_factory=list,
        max_length=lim.MAX_LIST_ITEMS,
        description="measured latencies replacing derived profiles",
    )

    def scale(self) -> ProfileScale:
        return ProfileScale(self.flops_scale, self.bytes_scale, self.layer_scale)


class RewardConfig(_Strict):
    """Reward weights. A finished task earns ``priority × correct × (1 if on time else
    late_credit)`` minus the weighted latency, SLO-miss, cost and energy penalties; a rejection
    costs ``reject × priority``; an invalid action is served as a rejection and costs
    ``invalid_action`` more; a task of a class listed in ``miss_penalty`` that is not answered
    right costs that penalty × priority more."""

    correct: NonNegativeFloat = Field(1.0, description="reward for a correct answer")
    late_credit: Probability = Field(
        0.0, description="fraction of the correctness reward kept when the SLO is missed"
    )
    latency_per_s: NonNegativeFloat = Field(0.0, description="penalty per second of latency")
    slo_miss: NonNegativeFloat = Field(0.5, description="penalty for a missed SLO")
    cost_per_usd: NonNegativeFloat = Field(0.0, description="penalty per USD of device time")
    energy_per_j: NonNegativeFloat = Field(0.0, description="penalty per joule of energy")
    reject: NonNegativeFloat = Field(0.3, description="penalty per rejection, times priority")
    invalid_action: NonNegativeFloat = Field(
        0.5, description="extra penalty for a masked-out action (served as a rejection)"
    )
    miss_penalty: dict[str, dict[int, NonNegativeFloat]] = Field(
        default_factory=dict,
        max_length=lim.MAX_LIST_ITEMS,
        description="task type → true class → extra penalty, times priority, when a task of that "
        "class is not answered right (wrong, rejected or dropped): missed positives cost more",
    )


class InferenceConfig(_Strict):
    """How the real models run: ``live`` forward passes, or ``memoized`` outputs per pool input
    (identical results, faster); on ``cpu`` or ``cuda``."""

    mode: Literal["live", "memoized"] = Field(
        "live", description="run forward passes, or reuse memoised outputs (identical results)"
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the real models run")


class ObservationConfig(_Strict):
    """Observation shaping: the time constant of recent-load averages and the clip bound."""

    ewma_tau_s: PositiveFloat = Field(
        1.0, description="time constant of the utilisation and arrival-rate averages, in s"
    )
    clip: PositiveFloat = Field(10.0, description="observation features are clipped to ±clip")


class Scenario(_Strict):
    """A whole allocation problem, as loaded from one YAML file."""

    name: Name = Field(description="the scenario's name; with `extends`, the extending file's")
    summary: Annotated[str, Field(max_length=2000)] = Field(
        "", description="one line saying what the scenario is about"
    )
    episode_tasks: Annotated[int, Field(ge=1, le=lim.MAX_EPISODE_TASKS)] = Field(
        description="tasks per episode"
    )
    zoo: Name = Field("digits", description="the zoo whose models and data serve the tasks")
    models: list[str] = Field(
        min_length=1, max_length=lim.MAX_LIST_ITEMS, description="the zoo models on offer"
    )
    plans: list[PlanConfig] = Field(
        default_factory=list,
        max_length=lim.MAX_LIST_ITEMS,
        description="plans on offer; default: one single plan per model",
    )
    devices: list[DeviceConfig] = Field(
        min_length=1, max_length=lim.MAX_DEVICES, description="the cluster's devices"
    )
    workload: WorkloadConfig = Field(description="what arrives, when, and how hard")
    profile: ProfileConfig = Field(
        default_factory=ProfileConfig, description="how zoo models stand in for production ones"
    )
    reward: RewardConfig = Field(default_factory=RewardConfig, description="reward weights")
    inference: InferenceConfig = Field(
        default_factory=InferenceConfig, description="how and where the real models run"
    )
    observation: ObservationConfig = Field(
        default_factory=ObservationConfig, description="observation shaping"
    )
    source: str | None = Field(None, exclude=True, description="file it was loaded from")

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        from mtenv.core.feasibility import feasibility_problems, reference_problems

        problems = reference_problems(
            self.zoo, self.models, self.plans, self.devices, set(self.workload.task_types)
        ) or feasibility_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def plan_list(self) -> list[Plan]:
        """The plans on offer, in action order."""
        zoo = self.zoo_models()
        if self.plans:
            return [p.build(zoo) for p in self.plans]
        return default_plans(self.models, set(self.workload.task_types), zoo)

    def zoo_models(self) -> Zoo:
        """The :class:`~mtenv.zoo.Zoo` this scenario names."""
        from mtenv.zoo import get_zoo

        return get_zoo(self.zoo)

    def device_names(self) -> list[str]:
        """One unique name per device, in action order (``count`` entries expanded)."""
        names: list[str] = []
        for i, dev in enumerate(self.devices):
            base = dev.name or f"{dev.kind}-{i}"
            names += [base] if dev.count == 1 else [f"{base}.{k}" for k in range(dev.count)]
        return names

    def device_entries(self) -> list[DeviceConfig]:
        """The device entries expanded by ``count``, aligned with :meth:`device_names`."""
        return [dev for dev in self.devices for _ in range(dev.count)]


def default_plans(models: list[str], task_types: set[str], zoo: Zoo) -> list[Plan]:
    """One plan per model serving one of ``task_types``: a multi-task plan for a model with
    several heads, a single plan otherwise (what a scenario without ``plans`` offers)."""
    defaults = [
        MultiTaskPlanConfig(kind="multitask", model=m).build(zoo)
        if len(_served_types((m,), zoo)) > 1
        else SinglePlanConfig(model=m).build(zoo)
        for m in models
    ]
    return [plan for plan in defaults if task_types & set(plan.task_types)]
