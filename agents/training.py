"""Training runs: one folder per run, resumable, holding everything a paper needs to cite it.

``train(TrainingRequest(...))`` builds the learner with the scenario's hyperparameters (from
:mod:`mtenv.agents.hyperparams`, with overrides), trains it, and writes into the run folder:

* ``manifest.json``: format and version, agent kind, scenario and env id, seed, budget, steps
  done, hyperparameters, package versions, feature names and action labels (what a later load
  checks), CPU and wall seconds, and whether training finished;
* the agent: ``agent.npz`` (tabular) or ``agent.json`` + ``agent.safetensors`` (PPO), both
  read without pickle;
* ``scenario.yaml``: the scenario resolved, defaults filled in;
* ``hyperparameters.yml``: exactly what the learner was built with, ``n_timesteps`` included;
* ``learning_curve.csv`` (``step,episode_return``, one row per finished training episode) and
  ``learning_curve.png`` (when matplotlib is installed);
* ``checkpoints/`` (for PPO, SB3 zips that unpickle code: only ``resume`` reads them;
  and ``eval/`` and ``tensorboard/``).

Nothing is written before every input has been checked. A killed run is continued by the same
call with ``resume=True``: the learner restores its last checkpoint and the learning curve drops
the episodes recorded after it, so finished work is kept and nothing is counted twice.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mtenv.agents.hyperparams import FILES, HyperparameterError, hyperparameters_for
from mtenv.agents.interfaces import AgentLoadError, EnvConfig, Learner
from mtenv.agents.limits import MAX_JSON_BYTES, read_json

MANIFEST = "manifest.json"
FORMAT = "mtenv-agent"
FORMAT_VERSION = 1
LEARNERS = tuple(FILES)
"""The learner kinds ``mtenv train --agent`` accepts."""

_CURVE = "learning_curve.csv"
_CURVE_WINDOW = 10  # episodes in the progress bar's running mean return


class TrainingError(ValueError):
    """A training request that cannot be carried out; the message names the input."""


def learner_class(kind: str) -> type[Learner]:
    """The class of a learner kind; PPO's import (torch, SB3) happens only when asked for."""
    if kind in ("q-learning", "sarsa", "expected-sarsa"):
        from mtenv.agents.tabular import learners as tabular

        return {
            "q-learning": tabular.QLearning,
            "sarsa": tabular.Sarsa,
            "expected-sarsa": tabular.ExpectedSarsa,
        }[kind]
    if kind in ("ppo", "maskable-ppo"):
        from mtenv.agents.ppo import (
            learner as ppo,  # the train extra: the CLI names it when missing
        )

        return ppo.PPOAgent if kind == "ppo" else ppo.MaskablePPOAgent
    raise TrainingError(f"--agent: expected one of {', '.join(LEARNERS)}, got {kind!r}")


def env_config_for(scenario: str | Path) -> EnvConfig:
    """The training env of a scenario: its registered id for a shipped name, the generic id
    with an absolute path otherwise. Training uses memoized inference (same trajectories)."""
    from mtenv import ENV_IDS
    from mtenv.io.scenario_files import load_scenario, shipped_scenarios

    kwargs: dict[str, Any] = {"inference": "memoized"}
    name = str(scenario)
    if name in shipped_scenarios():
        env_id = next(i for i, s in ENV_IDS.items() if s == name)
        return EnvConfig(env_id, kwargs)
    path = Path(scenario).resolve()
    load_scenario(path)  # a bad file fails here, naming itself
    return EnvConfig("mtenv/TaskAllocation-v0", {**kwargs, "scenario": str(path)})


@dataclass
class TrainingRequest:
    """What ``mtenv train`` asks for.

    Attributes:
        scenario: a shipped scenario name or a YAML path.
        agent: a learner kind (:data:`LEARNERS`).
        out: the run folder; new (or empty) unless ``resume``.
        seed: seeds the learner and the training episodes.
        steps: the budget in env steps; ``None`` takes ``n_timesteps`` from the hyperparameter
            file. A resumed run may raise it to train further.
        overrides: hyperparameters replacing the file's (``{"gamma": 0.95}``).
        resume: continue the run in ``out`` from its last checkpoint.
        progress: draw a progress bar on stderr.
    """

    scenario: str
    agent: str
    out: Path
    seed: int = 0
    steps: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    progress: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """Where a finished run is and what it cost."""

    folder: Path
    steps: int
    episodes: int
    cpu_time_s: float
    wall_time_s: float


def train(request: TrainingRequest) -> TrainingResult:
    """Train (or resume) one run; see the module docstring for what the folder holds."""
    out = Path(request.out)
    previous = _previous_manifest(out, request) if request.resume else None
    if previous is None:
        _check_new_folder(out)
    env_config = env_config_for(request.scenario)
    if previous is not None:
        hyper = dict(previous["hyperparameters"])
        budget = int(request.steps or previous["total_steps"])
    else:
        try:
            default_budget, hyper = hyperparameters_for(request.agent, env_config.env_id)
        except HyperparameterError as exc:
            raise TrainingError(str(exc)) from None
        hyper.update(request.overrides)
        budget = int(request.steps or default_budget)
    if budget < 1:
        raise TrainingError(f"--steps: expected a positive integer, got {budget}")

    env = env_config.make()
    try:
        learner = _build(request.agent, env, request.seed, hyper)
        manifest = previous or _new_manifest(request, env_config, env, hyper, budget)
    finally:
        env.close()
    manifest["total_steps"] = budget
    manifest["complete"] = False

    out.mkdir(parents=True, exist_ok=True)
    done = 0
    if previous is None:
        _write_text(out / "scenario.yaml", _scenario_yaml(request.scenario))
        _write_text(
            out / "hyperparameters.yml",
            yaml.safe_dump({"n_timesteps": budget, **hyper}, sort_keys=False),
        )
        _write_curve(out, [])
    else:
        done = learner.resume(out)
        _write_curve(out, [r for r in _read_curve(out) if int(r[0]) <= done])
    _write_manifest(out, manifest)

    callback = _RunCallback(out, manifest, budget, request, start_step=done)
    try:
        learner.learn(env_config, budget, request.seed, out, callback)
    finally:
        callback.close()
    steps = max(callback.last_step, budget)
    learner.save(out)
    callback.checkpointed(steps)
    manifest.update(steps_done=steps, complete=True)
    _write_manifest(out, manifest)
    _plot_curve(out, f"{request.agent} on {manifest['scenario']} (seed {request.seed})")
    return TrainingResult(
        out, steps, callback.episodes, manifest["cpu_time_s"], manifest["wall_time_s"]
    )


def _build(kind: str, env: Any, seed: int, hyper: dict[str, Any]) -> Learner:
    cls = learner_class(kind)
    try:
        return cls(env, seed=seed, **hyper)
    except (TypeError, ValueError, KeyError) as exc:
        raise TrainingError(f"hyperparameters for {kind} ({FILES[kind]} or --hp): {exc}") from None


class _RunCallback:
    """Records the learning curve, keeps the manifest current at each checkpoint, and draws the
    progress bar with the running mean return."""

    def __init__(
        self,
        out: Path,
        manifest: dict[str, Any],
        budget: int,
        request: TrainingRequest,
        start_step: int,
    ):
        from mtenv.progress import ProgressBar

        self.out, self.manifest = out, manifest
        self.last_step = start_step
        self.episodes = 0
        self._recent: deque[float] = deque(maxlen=_CURVE_WINDOW)
        self._curve = open(out / _CURVE, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._curve)
        self._cpu0, self._wall0 = _cpu_seconds(), time.perf_counter()
        self._cpu_before = float(manifest.get("cpu_time_s", 0.0))
        self._wall_before = float(manifest.get("wall_time_s", 0.0))
        label = f"train {request.agent} on {manifest['scenario']}"
        self._bar = ProgressBar(budget, label) if request.progress else None
        if self._bar is not None:
            self._bar.update(start_step)

    def on_episode(self, step: int, episode_return: float) -> None:
        self.last_step = max(self.last_step, int(step))
        self.episodes += 1
        self._recent.append(float(episode_return))
        self._writer.writerow([int(step), repr(float(episode_return))])
        self._curve.flush()
        if self._bar is not None:
            mean = sum(self._recent) / len(self._recent)
            self._bar.update(self.last_step, f"return {mean:,.1f}")

    def on_checkpoint(self, step: int) -> None:
        self.last_step = max(self.last_step, int(step))
        self.checkpointed(int(step))

    def on_phase(self, text: str) -> None:
        if self._bar is not None:
            self._bar.say(text)

    def checkpointed(self, step: int) -> None:
        self.manifest["steps_done"] = step
        self.manifest["cpu_time_s"] = self._cpu_before + _cpu_seconds() - self._cpu0
        self.manifest["wall_time_s"] = self._wall_before + time.perf_counter() - self._wall0
        _write_manifest(self.out, self.manifest)

    def close(self) -> None:
        self._curve.close()
        if self._bar is not None:
            self._bar.close()


# --- the run folder ----------------------------------------------------------------------------


def _check_new_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        hint = " (pass --resume to continue it)" if (out / MANIFEST).exists() else ""
        raise TrainingError(f"--out: expected a new or empty folder, got {str(out)!r}{hint}")


def read_manifest(folder: Path) -> dict[str, Any]:
    """A run folder's manifest, every field checked (:data:`MANIFEST_FIELDS`); a file above
    :data:`~mtenv.agents.limits.MAX_JSON_BYTES` is refused unread. Problems raise one
    :class:`AgentLoadError` line naming the file, the field and what was expected."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise AgentLoadError(f"{path}: not found; expected a folder written by `mtenv train`")
    manifest = read_json(path, MAX_JSON_BYTES)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AgentLoadError(f"{path}: format: expected {FORMAT!r}")
    if manifest.get("version") != FORMAT_VERSION:
        raise AgentLoadError(
            f"{path}: version: expected {FORMAT_VERSION}, got {manifest.get('version')!r}"
        )
    for key, (check, expected) in MANIFEST_FIELDS.items():
        if key not in manifest:
            raise AgentLoadError(f"{path}: {key}: missing; expected {expected}")
        if not check(manifest[key]):
            shown = repr(manifest[key])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise AgentLoadError(f"{path}: {key}: expected {expected}, got {shown}")
    return manifest


def _is_int(value: Any, least: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (least is None or value >= least)


def _is_seconds(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


MANIFEST_FIELDS: dict[str, tuple[Any, str]] = {
    "agent": (lambda v: v in LEARNERS, f"one of {', '.join(LEARNERS)}"),
    "scenario": (lambda v: isinstance(v, str), "a scenario name"),
    "scenario_arg": (lambda v: isinstance(v, str), "a scenario name or path"),
    "env_id": (lambda v: isinstance(v, str), "an env id"),
    "env_kwargs": (lambda v: isinstance(v, dict), "a JSON object"),
    "seed": (_is_int, "an integer"),
    "total_steps": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "steps_done": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "hyperparameters": (lambda v: isinstance(v, dict), "a JSON object"),
    "versions": (
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "an object of version strings",
    ),
    "feature_names": (_is_names, "a list of names"),
    "action_labels": (_is_names, "a list of names"),
    "cpu_time_s": (_is_seconds, "a number of seconds >= 0"),
    "wall_time_s": (_is_seconds, "a number of seconds >= 0"),
    "complete": (lambda v: isinstance(v, bool), "true or false"),
}
"""Every field of a manifest after ``format`` and ``version``: its check and what it expects."""


def _previous_manifest(out: Path, request: TrainingRequest) -> dict[str, Any]:
    try:
        manifest = read_manifest(out)
    except AgentLoadError as exc:
        raise TrainingError(f"--resume: {exc}") from None
    for key, asked in (("agent", request.agent), ("seed", request.seed)):
        if manifest[key] != asked:
            raise TrainingError(
                f"--resume: {out / MANIFEST}: {key}: the run has {manifest[key]!r}, "
                f"the command asks for {asked!r}"
            )
    if manifest["scenario_arg"] != str(request.scenario):
        raise TrainingError(
            f"--resume: {out / MANIFEST}: scenario: the run has {manifest['scenario_arg']!r}, "
            f"the command asks for {request.scenario!r}"
        )
    if request.overrides:
        raise TrainingError("--resume: --hp cannot change a run's hyperparameters")
    return manifest


def _new_manifest(
    request: TrainingRequest,
    env_config: EnvConfig,
    env: Any,
    hyper: dict[str, Any],
    budget: int,
) -> dict[str, Any]:
    unwrapped = env.unwrapped
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "agent": request.agent,
        "scenario": unwrapped.scenario.name,
        "scenario_arg": str(request.scenario),
        "env_id": env_config.env_id,
        "env_kwargs": env_config.kwargs,
        "seed": request.seed,
        "total_steps": budget,
        "steps_done": 0,
        "hyperparameters": hyper,
        "versions": package_versions(),
        "feature_names": list(unwrapped.feature_names),
        "action_labels": list(unwrapped.action_labels),
        "cpu_time_s": 0.0,
        "wall_time_s": 0.0,
        "complete": False,
    }


def package_versions() -> dict[str, str]:
    """The versions a result depends on (absent packages are left out)."""
    versions = {"python": platform.python_version()}
    for dist in ("mtenv-alloc", "numpy", "torch", "gymnasium", "stable-baselines3", "sb3-contrib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _scenario_yaml(scenario: str) -> str:
    from mtenv.io.scenario_files import load_scenario, scenario_yaml

    loaded = load_scenario(scenario)
    return f"# {loaded.name}, resolved from {loaded.source}\n{scenario_yaml(loaded)}"


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    _write_text(out / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False) + "\n")


def _read_curve(out: Path) -> list[list[str]]:
    with open(out / _CURVE, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [r for r in rows[1:] if len(r) == 2]  # a row cut by a kill is dropped


def _write_curve(out: Path, rows: list[list[str]]) -> None:
    text = "step,episode_return\n" + "".join(f"{a},{b}\n" for a, b in rows)
    _write_text(out / _CURVE, text)


def _plot_curve(out: Path, title: str) -> Path | None:
    """``learning_curve.png``: episode returns and their running mean; skipped (``None``)
    without matplotlib."""
    from mtenv.render.plots import plot_learning_curve

    rows = _read_curve(out)
    steps = [int(r[0]) for r in rows]
    returns = [float(r[1]) for r in rows]
    try:
        return plot_learning_curve(steps, returns, title, out / "learning_curve.png")
    except ImportError:
        return None


def _cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (SubprocVecEnv workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
