"""Scenarios: the YAML files that name a whole allocation problem, and their validation.

A scenario names the devices, the models and plans on offer, the workload (arrival process, task
types with their SLOs, difficulty and priority mix), the profile scale, the reward weights and the
episode length. Every field is validated; a bad file raises :class:`ScenarioError` with one line
per problem, each naming the file, the field path, what was expected and what was found::

    quickstart.yaml: devices[1].memory_gb: expected a number > 0, got -4

Shipped scenarios live in the ``mtenv.scenarios`` package data and are found by name.
"""

from __future__ import annotations

import difflib
import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from mtenv.devices import DEVICE_KINDS, DeviceSpec, device_spec
from mtenv.plans import CascadePlan, EnsemblePlan, MultiTaskPlan, Plan, SinglePlan
from mtenv.profiles import ProfileScale

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the file, field and expectation."""


class _Strict(BaseModel):
    """Base for every schema block: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- arrival processes ---------------------------------------------------------------------


class PoissonConfig(_Strict):
    """Poisson arrivals at a constant ``rate`` (tasks per second)."""

    process: Literal["poisson"]
    rate: PositiveFloat


class GammaConfig(_Strict):
    """Gamma renewal arrivals: mean ``rate`` per second, inter-arrival coefficient of variation
    ``cv`` (1 is Poisson, above 1 is bursty)."""

    process: Literal["gamma"]
    rate: PositiveFloat
    cv: PositiveFloat


class OnOffConfig(_Strict):
    """Two-state Markov-modulated Poisson arrivals (bursts of ``rate_on`` between lulls)."""

    process: Literal["on_off"]
    rate_on: PositiveFloat
    rate_off: NonNegativeFloat
    mean_on_s: PositiveFloat
    mean_off_s: PositiveFloat


class DiurnalConfig(_Strict):
    """A daily cycle: rate ``mean_rate · (1 + amplitude · sin(2π(t/period_s + phase)))``."""

    process: Literal["diurnal"]
    mean_rate: PositiveFloat
    amplitude: Probability
    period_s: PositiveFloat
    phase: float = 0.0


class SpikeConfig(_Strict):
    """A step or spike: ``base_rate``, then ``spike_rate`` from ``start_s`` for ``duration_s``
    seconds (omit the duration for a permanent step)."""

    process: Literal["spike"]
    base_rate: PositiveFloat
    spike_rate: PositiveFloat
    start_s: NonNegativeFloat
    duration_s: PositiveFloat = math.inf


class TraceConfig(_Strict):
    """Replay of a CSV trace of timestamps; ``path`` is relative to the scenario file."""

    process: Literal["trace"]
    path: str
    rate_scale: PositiveFloat = 1.0
    loop: bool = True


ArrivalConfig = Annotated[
    PoissonConfig | GammaConfig | OnOffConfig | DiurnalConfig | SpikeConfig | TraceConfig,
    Field(discriminator="process"),
]


# --- workload ------------------------------------------------------------------------------


class TaskTypeConfig(_Strict):
    """One task type: its share of arrivals and its latency objective."""

    share: PositiveFloat = 1.0
    slo_ms: PositiveFloat


class PriorityClass(_Strict):
    """A priority class: its reward weight and its share of arrivals."""

    name: str
    weight: PositiveFloat
    share: PositiveFloat


class WorkloadConfig(_Strict):
    """What arrives: when, of which type, how hard and how important."""

    arrivals: ArrivalConfig
    task_types: dict[str, TaskTypeConfig] = Field(
        default_factory=lambda: {"classify": TaskTypeConfig(slo_ms=20.0)}, min_length=1
    )
    difficulty: list[NonNegativeFloat] = Field(
        default_factory=lambda: [0.2] * 5,
        description="probability of each difficulty level (0 = clean input), normalised",
    )
    priorities: list[PriorityClass] = Field(
        default_factory=lambda: [PriorityClass(name="normal", weight=1.0, share=1.0)],
        min_length=1,
    )
    drop_expired: bool = Field(
        False, description="drop a queued task whose deadline passed before its batch starts"
    )

    @model_validator(mode="after")
    def _check_difficulty(self) -> WorkloadConfig:
        from mtenv.zoo import N_LEVELS

        if len(self.difficulty) > N_LEVELS:
            raise ValueError(
                f"difficulty: expected at most {N_LEVELS} probabilities (levels 0..{N_LEVELS - 1}),"
                f" got {self.difficulty!r}"
            )
        if not self.difficulty or sum(self.difficulty) <= 0:
            raise ValueError(
                f"difficulty: expected at least one positive probability, got {self.difficulty!r}"
            )
        return self


# --- devices, models, plans ----------------------------------------------------------------


class DeviceConfig(_Strict):
    """One device (or ``count`` identical ones) of a catalogue kind, with optional overrides."""

    kind: str
    count: Annotated[int, Field(ge=1, le=4096)] = 1
    name: str | None = None
    memory_gb: PositiveFloat | None = None
    price_per_hour: NonNegativeFloat | None = None
    max_batch: Annotated[int, Field(ge=1)] = 8
    batch_timeout_ms: NonNegativeFloat = 2.0
    max_queue: Annotated[int, Field(ge=1)] = 64
    resident: list[str] = Field(default_factory=list, description="models loaded at time 0")

    def spec(self) -> DeviceSpec:
        """The catalogue spec with this entry's overrides applied."""
        base = device_spec(self.kind)
        changes: dict[str, float] = {}
        if self.memory_gb is not None:
            changes["memory_bytes"] = self.memory_gb * 1e9
        if self.price_per_hour is not None:
            changes["price_per_hour"] = self.price_per_hour
        return base.with_overrides(**changes) if changes else base


def _served_types(models: tuple[str, ...]) -> tuple[str, ...]:
    """The task types every one of ``models`` serves (from the zoo's measured stats)."""
    from mtenv.zoo import model_stats

    types = [model_stats(m).task_types for m in models]
    return tuple(t for t in types[0] if all(t in other for other in types[1:]))


class SinglePlanConfig(_Strict):
    """One model serves the task. Named after the model unless ``name`` is given."""

    kind: Literal["single"] = "single"
    model: str
    name: str | None = None

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def build(self) -> Plan:
        return SinglePlan(self.name or self.model, _served_types((self.model,)), self.model)


class EnsemblePlanConfig(_Strict):
    """Several models answer; outputs fused by weighted mean or vote, with uniform, fitted
    (offline, validation pool) or online (multiplicative-weights) weights."""

    kind: Literal["ensemble"]
    members: list[str] = Field(min_length=2)
    fusion: Literal["mean", "vote"] = "mean"
    weighting: Literal["uniform", "fitted", "online"] = "uniform"
    learning_rate: PositiveFloat = 0.1
    name: str | None = None

    def model_names(self) -> tuple[str, ...]:
        return tuple(self.members)

    def build(self) -> Plan:
        members = tuple(self.members)
        name = self.name or f"{self.fusion}({'+'.join(members)}){'/' + self.weighting}"
        return EnsemblePlan(
            name, _served_types(members), members, self.fusion, self.weighting, self.learning_rate
        )


class CascadePlanConfig(_Strict):
    """``first`` answers; when its confidence is under ``threshold`` the task escalates to
    ``second`` on the same device."""

    kind: Literal["cascade"]
    first: str
    second: str
    threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
    name: str | None = None

    def model_names(self) -> tuple[str, ...]:
        return (self.first, self.second)

    def build(self) -> Plan:
        name = self.name or f"{self.first}>{self.second}@{self.threshold:g}"
        types = _served_types((self.first, self.second))
        return CascadePlan(name, types, self.first, self.second, self.threshold)


class MultiTaskPlanConfig(_Strict):
    """A shared-trunk multi-task model serving every task type it has a head for."""

    kind: Literal["multitask"]
    model: str
    name: str | None = None

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def build(self) -> Plan:
        return MultiTaskPlan(self.name or self.model, _served_types((self.model,)), self.model)


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

    model: str
    device: str
    alpha_ms: NonNegativeFloat
    beta_ms: NonNegativeFloat


class ProfileConfig(_Strict):
    """How the zoo's small models stand in for production-sized ones (see mtenv.profiles).

    The defaults make ``cnn_wide`` cost about what ResNet-50 costs (≈ 8 GFLOPs, ≈ 100 MB of
    weights, ≈ 50 layers) and scale the other models by the same factors.
    """

    flops_scale: PositiveFloat = 2000.0
    bytes_scale: PositiveFloat = 200.0
    layer_scale: PositiveFloat = 10.0
    overrides: list[ProfileOverride] = Field(default_factory=list)

    def scale(self) -> ProfileScale:
        return ProfileScale(self.flops_scale, self.bytes_scale, self.layer_scale)


class RewardConfig(_Strict):
    """Reward weights. A finished task earns ``priority × correct × (1 if on time else
    late_credit)`` minus the weighted latency, SLO-miss, cost and energy penalties; a rejection
    costs ``reject × priority``; an invalid action is served as a rejection and costs
    ``invalid_action`` more."""

    correct: NonNegativeFloat = 1.0
    late_credit: Probability = 0.0
    latency_per_s: NonNegativeFloat = 0.0
    slo_miss: NonNegativeFloat = 0.5
    cost_per_usd: NonNegativeFloat = 0.0
    energy_per_j: NonNegativeFloat = 0.0
    reject: NonNegativeFloat = 0.3
    invalid_action: NonNegativeFloat = 0.5


class InferenceConfig(_Strict):
    """How the real models run: ``live`` forward passes, or ``memoized`` outputs per pool input
    (identical results, faster); on ``cpu`` or ``cuda``."""

    mode: Literal["live", "memoized"] = "live"
    device: Literal["cpu", "cuda"] = "cpu"


class ObservationConfig(_Strict):
    """Observation shaping: the time constant of recent-load averages and the clip bound."""

    ewma_tau_s: PositiveFloat = 1.0
    clip: PositiveFloat = 10.0


class Scenario(_Strict):
    """A whole allocation problem, as loaded from one YAML file."""

    name: str
    summary: str = ""
    episode_tasks: Annotated[int, Field(ge=1)]
    models: list[str] = Field(min_length=1)
    plans: list[PlanConfig] = Field(
        default_factory=list, description="plans on offer; default: one single plan per model"
    )
    devices: list[DeviceConfig] = Field(min_length=1)
    workload: WorkloadConfig
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    observation: ObservationConfig = Field(default_factory=ObservationConfig)
    source: str | None = Field(None, exclude=True, description="file it was loaded from")

    @model_validator(mode="after")
    def _check_names(self) -> Scenario:
        from mtenv.zoo import MODEL_NAMES

        problems: list[str] = []
        for i, model in enumerate(self.models):
            if model not in MODEL_NAMES:
                problems.append(f"models[{i}]: {_unknown('model', model, MODEL_NAMES)}")
        for i, plan in enumerate(self.plans):
            for model in plan.model_names():
                if model not in self.models:
                    problems.append(
                        f"plans[{i}]: expected models among the scenario's "
                        f"({', '.join(self.models)}), got {model!r}"
                    )
        for i, dev in enumerate(self.devices):
            if dev.kind not in DEVICE_KINDS:
                problems.append(
                    f"devices[{i}].kind: {_unknown('device kind', dev.kind, DEVICE_KINDS)}"
                )
            for j, model in enumerate(dev.resident):
                if model not in self.models:
                    problems.append(
                        f"devices[{i}].resident[{j}]: expected one of the scenario's models "
                        f"({', '.join(self.models)}), got {model!r}"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        plans = self.plan_list()
        names = [p.name for p in plans]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"plans: expected unique plan names, got duplicates {duplicates}")
        types = set(self.workload.task_types)
        for i, plan in enumerate(plans):
            if not types & set(plan.task_types):
                problems.append(
                    f"plans[{i}]: plan {plan.name!r} serves {list(plan.task_types)}, none of the "
                    f"workload's task types {sorted(types)}"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def plan_list(self) -> list[Plan]:
        """The plans on offer, in action order."""
        if self.plans:
            return [p.build() for p in self.plans]
        types = set(self.workload.task_types)
        defaults = [
            MultiTaskPlanConfig(kind="multitask", model=m).build()
            if len(_served_types((m,))) > 1
            else SinglePlanConfig(model=m).build()
            for m in self.models
        ]
        return [plan for plan in defaults if types & set(plan.task_types)]

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


def parse_plans(raw: list[dict[str, Any]], label: str = "plans") -> list[Plan]:
    """Plans written as in a scenario's ``plans`` list, validated and built."""
    try:
        configs = TypeAdapter(list[PlanConfig]).validate_python(raw)
    except ValidationError as exc:
        raise ScenarioError("\n".join(f"{label}{line}" for line in _format_errors(exc))) from None
    return [config.build() for config in configs]


def _unknown(what: str, value: str, known: Any) -> str:
    close = difflib.get_close_matches(value, list(known), n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown {what} {value!r} (known: {', '.join(known)}){hint}"


# --- loading ---------------------------------------------------------------------------------


def shipped_scenarios() -> dict[str, Path]:
    """Names of the scenarios shipped in the package, mapped to their files."""
    root = resources.files("mtenv.scenarios")
    found = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name[: -len(".yaml")]] = Path(str(entry))
    return dict(sorted(found.items()))


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """The file behind a scenario name (``quickstart``, ``cold-start``) or path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{text}: no such scenario file")
        return path
    shipped = shipped_scenarios()
    by_key = {name.replace("-", "_"): file for name, file in shipped.items()}
    key = text.replace("-", "_")
    if key in by_key:
        return by_key[key]
    raise ScenarioError(f"scenario: {_unknown('scenario', text, shipped)}")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by shipped name or by file path."""
    path = resolve_scenario_path(name_or_path)
    label = path.name if _is_shipped(path) else str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{label}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{label}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{label}: expected a mapping of fields, got {type(raw).__name__}")
    return parse_scenario(raw, label=label, source=str(path))


def parse_scenario(
    raw: dict[str, Any], *, label: str = "<scenario>", source: str | None = None
) -> Scenario:
    """Validate a scenario given as a mapping; ``label`` prefixes every error line."""
    try:
        return Scenario.model_validate({**raw, "source": source})
    except ValidationError as exc:
        lines = [f"{label}: {line}" for line in _format_errors(exc)]
        raise ScenarioError("\n".join(lines)) from None


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == Path(str(resources.files("mtenv.scenarios"))).resolve()


_EXPECTATIONS = {
    "greater_than": "expected a number > {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than_equal": "expected a number <= {le}",
    "less_than": "expected a number < {lt}",
    "finite_number": "expected a finite number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "too_short": "expected at least {min_length} item(s)",
    "union_tag_invalid": "expected one of {expected_tags}",
    "union_tag_not_found": "expected a 'process' field naming the arrival process",
}


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = _format_loc(err["loc"])
        ctx = err.get("ctx", {})
        if err["type"] == "value_error":
            # Our own validators phrase their messages as "field: expected ..., got ...", the
            # field relative to the block that raised; prefix the block's own path.
            message = str(ctx["error"]) if "error" in ctx else err["msg"]
            lines += [_join_path(loc, m) for m in message.splitlines()]
            continue
        if err["type"] == "invalid_key" or err["loc"][-1:] == ("[key]",):
            # A mapping key that is not a string: name the mapping, show the key.
            where = _format_loc(err["loc"][: -1 if err["type"] == "invalid_key" else -2])
            text = f"expected field names to be strings, got {err['input']!r}"
            lines.append(f"{where}: {text}" if where else text)
            continue
        got = err["input"]
        if err["type"] == "union_tag_invalid":
            # Point at the discriminating field itself and show its value, not the whole block.
            field_name = str(ctx["discriminator"]).strip("'")
            loc, got = f"{loc}.{field_name}" if loc else field_name, ctx["tag"]
        elif err["type"] == "plan_kind" and isinstance(got, dict):
            loc, got = f"{loc}.kind", got.get("kind")
        template = _EXPECTATIONS.get(err["type"])
        text = template.format(**{k: _plain(v) for k, v in ctx.items()}) if template else err["msg"]
        if err["type"] not in {"missing", "extra_forbidden"}:
            text += f", got {got!r}"
        lines.append(f"{loc}: {text}" if loc else text)
    return lines


_RELATIVE_FIELD = re.compile(r"^[A-Za-z_][\w.\[\]]*: ")


def _join_path(loc: str, message: str) -> str:
    """``message`` (maybe ``"field: ..."`` relative to ``loc``) prefixed with ``loc``."""
    if not loc:
        return message
    if _RELATIVE_FIELD.match(message):
        return f"{loc}.{message}"
    return f"{loc}: {message}"


def _plain(value: Any) -> Any:
    """A bound for a message: ``0`` rather than ``0.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_UNION_TAGS = {"poisson", "gamma", "on_off", "diurnal", "spike", "trace"} | {
    "single",
    "ensemble",
    "cascade",
    "multitask",
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue  # the discriminated union's branch name adds nothing for the reader
        elif not _PLAIN_KEY.fullmatch(str(part)):
            out += f"[{part!r}]"  # an odd key (spaces, line breaks) stays visible and on one line
        else:
            out += f".{part}" if out else str(part)
    return out


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
