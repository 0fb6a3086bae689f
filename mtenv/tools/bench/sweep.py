"""What a sweep runs: its scenarios (with load factors), policies, learners to train, seeds and
episodes, checked and resolved before any work starts.

A sweep's cells are ``(scenario, policy, seed)``:

* a **scenario** is a shipped name or a YAML file, optionally with a load suffix
  ``NAME@<factor>x`` (``quickstart@2x``): evaluated with the env's ``load_scale=factor``; ``@1x``
  is the bare name;
* a **policy** is a baseline (:data:`~mtenv.agents.policies.BASELINES`), ``oracle``, a run folder
  written by ``mtenv train`` (its manifest's scenario must be the cell's), or a learner kind
  trained inside the sweep (``--train AGENT=BUDGET``: one run per base scenario and seed);
* a **seed** ``k`` is the training seed of a learner and the index of the evaluation workloads:
  episode ``i`` of seed ``k`` runs with env seed ``EVAL_SEED + 1000·k + i`` for every policy, so
  results pair by seed.

Every name is checked up front; an unknown one is a :class:`~mtenv.tools.cli_common.CliError`
listing the known ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtenv.tools.cli_common import CliError

ORACLE = "oracle"
HP_BUDGET = "hp"
"""``--train AGENT=hp``: the budget of the learner's hyperparameter file (``n_timesteps``)."""
_LOAD = re.compile(r"^(?P<base>.+)@(?P<factor>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)x$")


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario of a sweep: ``name`` is how records name it (``quickstart@2x``), ``base``
    what loads it (a shipped name or an absolute YAML path), ``load`` the env's ``load_scale``
    (``None``: the scenario's own), ``label`` the base's short name (run folders)."""

    name: str
    base: str
    load: float | None
    label: str


@dataclass(frozen=True)
class PolicySpec:
    """One policy of a sweep. ``kind``: ``"baseline"`` (oracle included), ``"run"`` (a run
    folder, ``run_dir`` absolute) or ``"trained"`` (a learner trained in the sweep)."""

    name: str
    kind: str
    run_dir: str | None = None


@dataclass(frozen=True)
class TrainSpec:
    """A learner trained in the sweep; ``budget`` ``None`` is its hyperparameter file's."""

    agent: str
    budget: int | None


@dataclass
class Sweep:
    """A checked sweep: everything needed to list its cells and work units."""

    scenarios: list[ScenarioSpec]
    policies: list[PolicySpec]
    train: list[TrainSpec] = field(default_factory=list)
    seeds: int = 5
    episodes: int = 2
    episode_tasks: int | None = None
    reference: str | None = None
    suite: str | None = None

    def cells(self) -> list[tuple[ScenarioSpec, PolicySpec, int]]:
        """Every ``(scenario, policy, seed)``, scenario-major."""
        return [(s, p, k) for s in self.scenarios for p in self.policies for k in range(self.seeds)]

    def bases(self) -> list[ScenarioSpec]:
        """The base scenarios (one per ``base``, first occurrence), where learners train."""
        seen: dict[str, ScenarioSpec] = {}
        for s in self.scenarios:
            seen.setdefault(s.base, ScenarioSpec(s.label, s.base, None, s.label))
        return list(seen.values())

    def resolved(self) -> dict[str, Any]:
        """The sweep as plain data (for the manifest; :func:`from_resolved` reads it back)."""
        return {
            "scenarios": [s.name for s in self.scenarios],
            "policies": [p.name for p in self.policies],
            "paths": {
                **{_base_token(s.name): s.base for s in self.scenarios if s.base != s.label},
                **{p.name: p.run_dir for p in self.policies if p.kind == "run"},
            },
            "train": {t.agent: HP_BUDGET if t.budget is None else t.budget for t in self.train},
            "seeds": self.seeds,
            "episodes": self.episodes,
            "episode_tasks": self.episode_tasks,
            "reference": self.reference,
            "suite": self.suite,
        }


def from_resolved(data: dict[str, Any]) -> Sweep:
    """A sweep from :meth:`Sweep.resolved` (``--from-manifest``), checked again: names as they
    were given, scenario files and run folders found at the absolute paths recorded."""
    return build_sweep(
        scenarios=list(data["scenarios"]),
        policies=[str(p) for p in data["policies"]],
        train=[f"{a}={b}" for a, b in data.get("train", {}).items()],
        seeds=int(data["seeds"]),
        episodes=int(data["episodes"]),
        episode_tasks=data.get("episode_tasks"),
        reference=data.get("reference"),
        suite=data.get("suite"),
        paths=dict(data.get("paths", {})),
    )


def _base_token(name: str) -> str:
    """A scenario entry without its load suffix."""
    match = _LOAD.match(name)
    return match["base"] if match else name


def build_sweep(
    *,
    scenarios: list[str],
    policies: list[str],
    train: Sequence[str] = (),
    seeds: int = 5,
    episodes: int = 2,
    episode_tasks: int | None = None,
    reference: str | None = None,
    suite: str | None = None,
    paths: dict[str, str] | None = None,
) -> Sweep:
    """Check every name and value; raise :class:`CliError` naming the first bad one. ``paths``
    maps a scenario file or run folder, as named, to where it is (``--from-manifest``)."""
    for flag, value in (("--seeds", seeds), ("--episodes", episodes)):
        if value < 1:
            raise CliError(f"{flag}: expected a positive integer, got {value}")
    if episode_tasks is not None and episode_tasks < 1:
        raise CliError(f"--episode-tasks: expected a positive integer, got {episode_tasks}")
    paths = paths or {}
    scenario_specs = parse_scenarios(scenarios, paths)
    train_specs = parse_train(train)
    policy_specs = parse_policies(policies, [t.agent for t in train_specs], paths)
    _check_runs(policy_specs, scenario_specs)
    names = [p.name for p in policy_specs]
    if reference is not None and reference not in names:
        raise CliError(f"--reference: {reference!r} is not a policy of the sweep ({_join(names)})")
    return Sweep(
        scenarios=scenario_specs,
        policies=policy_specs,
        train=train_specs,
        seeds=seeds,
        episodes=episodes,
        episode_tasks=episode_tasks,
        reference=reference,
        suite=suite,
    )


def split_names(values: list[str] | str) -> list[str]:
    """Names separated by commas and/or given as several values, in order, without repeats."""
    values = [values] if isinstance(values, str) else values
    return list(dict.fromkeys(n.strip() for v in values for n in v.split(",") if n.strip()))


# --- scenarios -----------------------------------------------------------------------------------


def parse_scenarios(values: list[str], paths: dict[str, str] | None = None) -> list[ScenarioSpec]:
    """``--scenarios``: shipped names or YAML files, each optionally ``@<factor>x``; ``all``
    (or ``all@2x``) is every shipped scenario."""
    from mtenv.io.scenario_files import shipped_scenarios

    shipped = sorted(shipped_scenarios())
    specs: dict[str, ScenarioSpec] = {}
    for token in split_names(values):
        match = _LOAD.match(token)
        if token == "all" or (match and match["base"] == "all"):
            suffix = token[len("all") :]
            names = [f"{s}{suffix}" for s in shipped]
        else:
            names = [token]
        for name in names:
            spec = parse_scenario(name, shipped, paths)
            specs.setdefault(spec.name, spec)
    if not specs:
        raise CliError("--scenarios: expected at least one scenario")
    return list(specs.values())


def parse_scenario(
    token: str, shipped: list[str] | None = None, paths: dict[str, str] | None = None
) -> ScenarioSpec:
    """One ``--scenarios`` entry: ``NAME``, ``NAME@2x``, ``path.yaml`` or ``path.yaml@0.5x``."""
    if shipped is None:
        from mtenv.io.scenario_files import shipped_scenarios

        shipped = sorted(shipped_scenarios())
    base, load = token, None
    match = _LOAD.match(token)
    if match:
        base, load = match["base"], float(match["factor"])
        if not (math.isfinite(load) and load > 0):
            raise CliError(f"--scenarios: {token!r}: the load factor must be > 0")
    elif "@" in token:
        raise CliError(
            f"--scenarios: {token!r}: a load suffix reads NAME@<factor>x (quickstart@2x)"
        )
    shown = base
    file = Path((paths or {}).get(base, base))
    if base in shipped:
        label = base
    elif base.endswith((".yaml", ".yml")) and file.is_file():
        base, label = str(file.resolve()), Path(base).stem
    else:
        raise CliError(
            f"--scenarios: unknown scenario {base!r} (known: {_join(shipped)}; or a YAML file; "
            "'all'; a load suffix NAME@<factor>x)"
        )
    if load == 1.0:
        load = None
    name = shown if load is None else f"{shown}@{load:g}x"
    return ScenarioSpec(name=name, base=base, load=load, label=label)


def resolve_scenario(spec: ScenarioSpec, episode_tasks: int | None) -> Any:
    """The :class:`~mtenv.core.schema.Scenario` a cell runs: its base with the episode length
    and load factor applied, as :class:`~mtenv.envs.task_allocation.TaskAllocationEnv` does."""
    from mtenv.io.scenario_files import load_scenario

    scenario = load_scenario(spec.base)
    if episode_tasks is not None:
        scenario = scenario.model_copy(update={"episode_tasks": int(episode_tasks)})
    if spec.load is not None:
        workload = scenario.workload.model_copy(update={"load_scale": float(spec.load)})
        scenario = scenario.model_copy(update={"workload": workload})
    return scenario


def scenario_hash(scenario: Any) -> str:
    """``"sha256:…"`` of a resolved scenario's canonical JSON (sorted keys, no spaces; where it
    was loaded from left out)."""
    data = scenario.model_dump(mode="json", exclude={"source"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- policies and learners -----------------------------------------------------------------------


def parse_train(values: Sequence[str]) -> list[TrainSpec]:
    """``--train AGENT=BUDGET`` entries: a learner kind and env steps, or ``hp``."""
    from mtenv.agents.training import LEARNERS

    specs: dict[str, TrainSpec] = {}
    for text in values:
        agent, sep, budget = text.partition("=")
        agent, budget = agent.strip(), budget.strip()
        if not sep:
            raise CliError(
                f"--train: expected AGENT=BUDGET (steps, or '{HP_BUDGET}'), got {text!r}"
            )
        if agent not in LEARNERS:
            raise CliError(f"--train: unknown learner {agent!r} (known: {_join(LEARNERS)})")
        if agent in specs:
            raise CliError(f"--train: {agent} given twice")
        if budget == HP_BUDGET:
            steps = None
        else:
            try:
                steps = int(budget)
            except ValueError:
                steps = 0
            if steps < 1:
                raise CliError(
                    f"--train {agent}: expected a positive number of steps or '{HP_BUDGET}', "
                    f"got {budget!r}"
                )
        _check_learner_installed(agent)
        specs[agent] = TrainSpec(agent, steps)
    return list(specs.values())


def parse_policies(
    values: list[str], trained: list[str], paths: dict[str, str] | None = None
) -> list[PolicySpec]:
    """``--policies``: ``all`` (every baseline and the oracle), names, learner kinds given
    ``--train``, and run folders. Learners of ``--train`` are added when not listed."""
    from mtenv.agents.policies import BASELINES, POLICIES
    from mtenv.agents.saved import is_run_folder
    from mtenv.agents.training import LEARNERS

    specs: dict[str, PolicySpec] = {}
    for token in split_names(values):
        if token == "all":
            for name in (*BASELINES, ORACLE):
                specs.setdefault(name, PolicySpec(name, "baseline"))
        elif token in POLICIES:
            specs.setdefault(token, PolicySpec(token, "baseline"))
        elif token in LEARNERS:
            if token not in trained:
                raise CliError(
                    f"--policies: {token} is a learner: train it in the sweep with "
                    f"--train {token}=STEPS (or ={HP_BUDGET}), or give a run folder"
                )
        elif is_run_folder(folder := (paths or {}).get(token, token)):
            specs.setdefault(token, PolicySpec(token, "run", str(Path(folder).resolve())))
        else:
            raise CliError(
                f"--policies: unknown policy {token!r} (known: {_join(POLICIES)}, 'all', a "
                f"learner given --train ({_join(LEARNERS)}), or a run folder of `mtenv train`)"
            )
    for agent in trained:
        specs.setdefault(agent, PolicySpec(agent, "trained"))
    if not specs:
        raise CliError("--policies: expected at least one policy")
    return list(specs.values())


def _check_runs(policies: list[PolicySpec], scenarios: list[ScenarioSpec]) -> None:
    """Each run folder is a finished training run of every scenario it will be evaluated on."""
    from mtenv.agents.interfaces import AgentLoadError
    from mtenv.agents.saved import refuse_pickled_agent
    from mtenv.agents.training import read_manifest

    names: dict[str, str] = {}
    for policy in [p for p in policies if p.kind == "run"]:
        try:
            manifest = read_manifest(Path(policy.run_dir or ""))
        except AgentLoadError as exc:
            raise CliError(f"--policies: {exc}") from None
        if not manifest.get("complete", False):
            raise CliError(
                f"--policies: {policy.name}: training stopped at step "
                f"{manifest.get('steps_done', 0)} of {manifest.get('total_steps')}; finish it "
                "with `mtenv train ... --resume`"
            )
        _check_learner_installed(manifest["agent"])
        try:  # the sweep's workers load agents without pickle only
            refuse_pickled_agent(policy.run_dir or "")
        except AgentLoadError as exc:
            raise CliError(f"--policies: {exc}") from None
        for scenario in scenarios:
            if scenario.base not in names:
                names[scenario.base] = _scenario_name(scenario)
            if manifest["scenario"] != names[scenario.base]:
                raise CliError(
                    f"--policies: run folder {policy.name} was trained on scenario "
                    f"{manifest['scenario']!r}; the sweep evaluates it on "
                    f"{names[scenario.base]!r} ({scenario.name})"
                )


def _scenario_name(spec: ScenarioSpec) -> str:
    from mtenv.io.scenario_files import load_scenario

    return load_scenario(spec.base).name


def _check_learner_installed(agent: str) -> None:
    """Import the learner's code now: a missing extra fails before any work (one line)."""
    from mtenv.agents.training import learner_class

    learner_class(agent)


def _join(names: Any) -> str:
    return ", ".join(str(n) for n in names)
