"""PPO learners: sb3-contrib's MaskablePPO (the default) and stable-baselines3's PPO.

Both train on vectorised envs built from an :class:`~mtenv.agents.interfaces.EnvConfig` (one
``SubprocVecEnv`` worker per env, each making ``"mtenv:<id>"`` so that it imports mtenv itself),
evaluate on a separate env, write TensorBoard logs and checkpoints into a run folder and can be
resumed from the last checkpoint after a kill.

Hyperparameters come per scenario from rl-zoo-shaped YAML files, ``hyperparams/ppo.yml`` and
``hyperparams/maskable-ppo.yml``: one key per registered env id, each with ``n_timesteps``,
``policy`` and the algorithm's keyword arguments (read by :mod:`mtenv.agents.hyperparams`;
what the keys mean: :class:`TrainingSettings`).

A run folder holds::

    checkpoints/step_<n>.zip   the model after n env steps (written atomically; the last few kept)
    eval/evaluations.npz       greedy evaluation returns (and best_model.zip, the best of them)
    tensorboard/run_0/         TensorBoard event files (when ``tensorboard`` is installed)

Credit for delayed rewards: the env pays a task's reward when the task settles, some steps after
the step that decided it, and later for slower plans, so discounting and GAE make a slow,
accurate plan look worse than it is. By default (``credit: decision``) training moves each task's
reward back, in the rollout buffer, to the step that decided the task, which the env reports
with every settled task (``info["feedback"]["decision_step"]``); the env, its reported returns and
the trained policy's inputs are unchanged.

Saved agents and checkpoints are stable-baselines3 zips, which hold cloudpickled Python objects:
**loading one runs code from the file; load only files you trust.** Before unpickling anything
:meth:`SB3Learner.load` reads the plain-JSON ``mtenv-agent.json`` member this module adds to every
zip and refuses a file of another kind or one trained for an env with different spaces.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from mtenv.agents.interfaces import AgentLoadError, EnvConfig, TrainingCallback

AGENT_FILE = "agent.zip"
META_MEMBER = "mtenv-agent.json"
"""The zip member with the agent's kind and the spaces it was trained for (plain JSON)."""
FORMAT = "mtenv-sb3-agent"
FORMAT_VERSION = 1
CHECKPOINT_PREFIX = "step_"
KEEP_CHECKPOINTS = 3

VEC_ENVS = ("subproc", "dummy")
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}
_EVAL_SEED_OFFSET = 1_000_003  # keeps evaluation episodes apart from the training seeds
_MIXED_ENV_TYPES = "Training and eval env are not of the same type"  # SB3's expected warning


# --- hyperparameters ---------------------------------------------------------------------------


def linear_schedule(start: float) -> _LinearSchedule:
    """rl-zoo's ``lin_<value>``: decays linearly from ``start`` to 0 over the run."""
    return _LinearSchedule(start)


@dataclass(frozen=True)
class _LinearSchedule:
    start: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start


def _schedule(name: str, value: Any) -> Any:
    """A number, or rl-zoo's ``"lin_<number>"`` string as a linear schedule."""
    if isinstance(value, str):
        if value.startswith("lin_"):
            try:
                return linear_schedule(float(value[4:]))
            except ValueError:
                pass
        raise ValueError(f"{name}: expected a number or 'lin_<number>', got {value!r}")
    return value


@dataclass(frozen=True)
class TrainingSettings:
    """The hyperparameters of one learner, checked and split into what mtenv uses and what the
    SB3 algorithm takes. Frequencies count env steps over all envs."""

    policy: str = "MlpPolicy"
    n_envs: int = 4
    """Envs stepped in parallel; one rollout is ``n_envs × n_steps`` env steps."""
    vec_env: str = "subproc"
    """``subproc``: one worker process per env; ``dummy``: all in this process."""
    eval_freq: int = 0
    """Env steps between greedy evaluations on a separate env (0: none)."""
    eval_episodes: int = 3
    checkpoint_freq: int = 20_000
    """Env steps between checkpoints (taken between rollouts, so rounded up to whole ones)."""
    credit: str = "decision"
    """Which step a task's reward trains: ``decision`` (the step that decided the task, see
    :class:`_CreditToDecisions`) or ``settle`` (the step the env pays it, as Gymnasium reports)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm (``n_steps``, ``gamma``, ``policy_kwargs``, ...)."""

    @classmethod
    def parse(cls, algo: type[BaseAlgorithm], hyperparameters: dict[str, Any]) -> TrainingSettings:
        """Split and check ``hyperparameters``: an unknown key or a bad value raises
        ``ValueError`` naming it."""
        hp = dict(hyperparameters)
        own = {name: hp.pop(name) for name in _OWN_KEYS if name in hp}
        settings = cls(**own, algo_kwargs=hp)
        least_values = {"n_envs": 1, "eval_episodes": 1, "eval_freq": 0, "checkpoint_freq": 0}
        for name, least in least_values.items():
            value = getattr(settings, name)
            if not _is_int(value) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
        if settings.policy != "MlpPolicy":
            raise ValueError(f"policy: expected MlpPolicy, got {settings.policy!r}")
        if settings.credit not in CREDITS:
            raise ValueError(f"credit: expected one of {CREDITS}, got {settings.credit!r}")
        if settings.vec_env not in VEC_ENVS:
            raise ValueError(f"vec_env: expected one of {VEC_ENVS}, got {settings.vec_env!r}")
        accepted = set(inspect.signature(algo.__init__).parameters) - _NOT_HYPERPARAMETERS
        unknown = sorted(set(hp) - accepted)
        if unknown:
            raise ValueError(
                f"unknown {algo.__name__} hyperparameter(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(accepted | set(_OWN_KEYS)))})"
            )
        return settings

    def algo_arguments(self) -> dict[str, Any]:
        """``algo_kwargs`` with YAML spellings turned into objects: ``lin_<x>`` schedules and
        ``policy_kwargs.activation_fn`` names."""
        kwargs = copy.deepcopy(self.algo_kwargs)
        for name in ("learning_rate", "clip_range", "clip_range_vf"):
            if name in kwargs:
                kwargs[name] = _schedule(name, kwargs[name])
        policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
        activation = policy_kwargs.get("activation_fn")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"policy_kwargs.activation_fn: expected one of {sorted(ACTIVATIONS)}, "
                    f"got {activation!r}"
                )
            policy_kwargs["activation_fn"] = ACTIVATIONS[activation]
        if policy_kwargs:
            kwargs["policy_kwargs"] = policy_kwargs
        return kwargs


_OWN_KEYS = (
    "policy",
    "n_envs",
    "vec_env",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "credit",
)
CREDITS = ("decision", "settle")
_NOT_HYPERPARAMETERS = {"self", "policy", "env", "tensorboard_log", "verbose", "seed", "device"}
_NOT_HYPERPARAMETERS |= {"_init_setup_model"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- envs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvFactory:
    """Builds one Monitor-wrapped training env; picklable, so that ``SubprocVecEnv`` workers
    can run it. Small MLPs and memoised models gain nothing from torch threads that compete
    with the other workers, hence one thread per process."""

    config: EnvConfig

    def __call__(self) -> gym.Env:
        torch.set_num_threads(1)
        return Monitor(self.config.make())


def make_vec_env(config: EnvConfig, n_envs: int, kind: str, seed: int) -> VecEnv:
    """``n_envs`` envs of ``config`` (``kind`` ``"subproc"`` or ``"dummy"``); env ``i`` is seeded
    with ``seed + i`` at its first reset."""
    factories = [EnvFactory(config) for _ in range(n_envs)]
    vec: VecEnv = SubprocVecEnv(factories) if kind == "subproc" else DummyVecEnv(factories)
    vec.seed(seed)
    return vec


# --- callbacks ---------------------------------------------------------------------------------


class _EpisodeReporter(BaseCallback):
    """Passes every finished training episode (from the Monitor wrappers) to the learner's
    :class:`TrainingCallback`."""

    def __init__(self, report: TrainingCallback):
        super().__init__()
        self.report = report

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None:
                self.report.on_episode(self.num_timesteps, float(episode["r"]))
        return True


class _CreditToDecisions(BaseCallback):
    """Moves each task's reward, in the rollout buffer, from the step that paid it to the step
    that decided it (``info["feedback"]``: each settled task's ``decision_step`` and ``reward``),
    then recomputes returns and advantages.

    A task decided in an earlier rollout keeps its reward where it was paid: that rollout has
    already been trained on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.moves: list[tuple[int, int, int, float]] = []
        self.where: list[dict[int, int]] = []
        self.episode_step: np.ndarray | None = None

    def _on_rollout_start(self) -> None:
        n_envs = self.training_env.num_envs
        if self.episode_step is None:
            self.episode_step = np.zeros(n_envs, dtype=np.int64)
        self.moves = []
        self.where = [{} for _ in range(n_envs)]

    def _on_step(self) -> bool:
        # Called before the step is added to the buffer: its row will be ``pos``.
        pos = self.model.rollout_buffer.pos
        steps, infos, dones = self.episode_step, self.locals["infos"], self.locals["dones"]
        for env, (info, done) in enumerate(zip(infos, dones, strict=True)):
            self.where[env][int(steps[env])] = pos
            feedback = info.get("feedback")
            settled = (
                ()
                if feedback is None
                else zip(
                    feedback["decision_step"].tolist(), feedback["reward"].tolist(), strict=True
                )
            )
            for decided, reward in settled:
                row = self.where[env].get(decided)
                if row is not None and row != pos:
                    self.moves.append((row, pos, env, reward))
            if done:
                steps[env] = 0
                self.where[env] = {}
            else:
                steps[env] += 1
        return True

    def _on_rollout_end(self) -> None:
        if not self.moves:
            return
        buffer = self.model.rollout_buffer
        for row, paid, env, reward in self.moves:
            buffer.rewards[row, env] += reward
            buffer.rewards[paid, env] -= reward
        buffer.compute_returns_and_advantage(
            last_values=self.locals["values"], dones=self.locals["dones"]
        )


class _Checkpointer(BaseCallback):
    """Saves the model every ``every`` env steps, between rollouts: there the weights have
    been trained on every step counted so far, so resuming loses no finished work."""

    def __init__(self, learner: SB3Learner, folder: Path, every: int, report: TrainingCallback):
        super().__init__()
        self.learner, self.folder, self.every, self.report = learner, folder, every, report
        self.last = 0

    def _on_training_start(self) -> None:
        self.last = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.every > 0 and self.model.num_timesteps - self.last >= self.every:
            self.save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> None:
        self.learner.write_checkpoint(self.folder)
        self.last = self.model.num_timesteps
        self.report.on_checkpoint(self.last)


def _restore_evaluations(callback: EvalCallback, up_to: int) -> None:
    """Carry a resumed run's earlier evaluations (up to its checkpoint) into ``callback``,
    which would otherwise overwrite ``evaluations.npz`` with only the new ones."""
    path = Path(f"{callback.log_path}.npz") if callback.log_path else None
    if path is None or not path.is_file():
        return
    with np.load(path) as saved:
        keep = saved["timesteps"] <= up_to
        callback.evaluations_timesteps = saved["timesteps"][keep].tolist()
        callback.evaluations_results = saved["results"][keep].tolist()
        callback.evaluations_length = saved["ep_lengths"][keep].tolist()
    if callback.evaluations_results:
        callback.best_mean_reward = max(float(np.mean(r)) for r in callback.evaluations_results)


# --- saved files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentMeta:
    """What ``mtenv-agent.json`` records: enough to refuse a file before unpickling it."""

    kind: str
    observation_shape: tuple[int, ...]
    n_actions: int
    feature_names: list[str] | None
    action_labels: list[str] | None
    hyperparameters: dict[str, Any]
    num_timesteps: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "observation_shape": list(self.observation_shape),
                "n_actions": self.n_actions,
                "feature_names": self.feature_names,
                "action_labels": self.action_labels,
                "hyperparameters": self.hyperparameters,
                "num_timesteps": self.num_timesteps,
            },
            indent=1,
            default=repr,
        )

    @classmethod
    def read(cls, path: Path) -> AgentMeta:
        """The metadata of the zip at ``path``; :class:`AgentLoadError` naming the file when it
        is missing, not a zip, or not an mtenv agent."""
        if not path.is_file():
            raise AgentLoadError(f"{path}: no such file (expected a saved agent, {AGENT_FILE})")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                broken = archive.testzip()
                raw = archive.read(META_MEMBER) if META_MEMBER in names else None
        except (zipfile.BadZipFile, EOFError) as error:
            raise AgentLoadError(f"{path}: not a zip file, or a corrupted one ({error})") from None
        except (OSError, zipfile.LargeZipFile, RuntimeError) as error:
            raise AgentLoadError(f"{path}: cannot read it ({error})") from None
        if broken is not None:
            raise AgentLoadError(f"{path}: corrupted ({broken} fails its checksum)")
        if raw is None:
            if "data" in names:
                raise AgentLoadError(
                    f"{path}: a stable-baselines3 zip without {META_MEMBER}: not saved by mtenv"
                )
            # A truncated SB3 zip can read as the torch archive stored inside it.
            raise AgentLoadError(
                f"{path}: not a saved agent, or a corrupted one (no {META_MEMBER}, no SB3 data)"
            )
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}"
                )
            return cls(
                kind=str(data["kind"]),
                observation_shape=tuple(int(n) for n in data["observation_shape"]),
                n_actions=int(data["n_actions"]),
                feature_names=data.get("feature_names"),
                action_labels=data.get("action_labels"),
                hyperparameters=dict(data["hyperparameters"]),
                num_timesteps=int(data["num_timesteps"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise AgentLoadError(f"{path}: {META_MEMBER} is not valid ({error})") from None


def _env_descriptions(env: gym.Env) -> tuple[list[str] | None, list[str] | None]:
    """The env's feature names and action labels, where it has them."""
    base = env.unwrapped
    names = getattr(base, "feature_names", None)
    labels = getattr(base, "action_labels", None)
    return (None if names is None else list(names), None if labels is None else list(labels))


def _check_compatible(meta: AgentMeta, env: gym.Env, path: Path) -> None:
    """:class:`AgentLoadError` naming the field and both values if ``env`` is not the kind of
    env the agent was trained on."""
    shape = tuple(env.observation_space.shape or ())
    if meta.observation_shape != shape:
        raise AgentLoadError(
            f"{path}: observation shape {meta.observation_shape} in the file, {shape} in the env: "
            "trained for another scenario"
        )
    n_actions = int(env.action_space.n)
    if meta.n_actions != n_actions:
        raise AgentLoadError(
            f"{path}: action count {meta.n_actions} in the file, {n_actions} in the env: "
            "trained for another scenario"
        )
    names, labels = _env_descriptions(env)
    for field_name, saved, current in (
        ("feature_names", meta.feature_names, names),
        ("action_labels", meta.action_labels, labels),
    ):
        if saved is None or current is None or saved == current:
            continue
        at = next(i for i, (a, b) in enumerate(zip(saved, current, strict=False)) if a != b)
        raise AgentLoadError(
            f"{path}: {field_name}[{at}] is {saved[at]!r} in the file, {current[at]!r} in the "
            "env: trained for another scenario"
        )


def _write_zip(model: BaseAlgorithm, meta: AgentMeta, path: Path) -> None:
    """The SB3 zip plus ``mtenv-agent.json``, written to a temporary name and renamed into
    place, so that a kill never leaves a half-written file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        model.save(out)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(META_MEMBER, meta.to_json())
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the finished checkpoints in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob(f"{CHECKPOINT_PREFIX}*.zip"):
        step = path.stem[len(CHECKPOINT_PREFIX) :]
        if step.isdigit():
            found.append((int(step), path))
    return sorted(found)


# --- learners ----------------------------------------------------------------------------------


class SB3Learner:
    """What the PPO learners share: training, checkpoints, resume, save and load.

    Built as ``Cls(env, seed=None, **hyperparameters)``; ``env`` gives the spaces (training
    builds its own vector envs from the :class:`EnvConfig`). ``hyperparameters`` are an entry of
    the hyperparameter YAML less ``n_timesteps`` (see :class:`TrainingSettings`).
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    algorithm: ClassVar[type[BaseAlgorithm]]
    eval_callback: ClassVar[type[EvalCallback]]
    value_label: ClassVar[str] = "probability"

    def __init__(self, env: gym.Env, seed: int | None = None, **hyperparameters: Any):
        self.hyperparameters = dict(hyperparameters)
        self.settings = TrainingSettings.parse(self.algorithm, self.hyperparameters)
        self.settings.algo_arguments()  # bad schedules or activations fail here, not mid-run
        self.seed = seed
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.feature_names, self.action_labels = _env_descriptions(env)
        self.model: BaseAlgorithm | None = None

    # --- Policy ---------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Nothing to do: the greedy policy holds no per-episode state."""

    def observe(self, reward: float, info: dict[str, Any]) -> None:
        """Nothing to do: the trained policy does not learn while it is evaluated."""

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        raise NotImplementedError

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The policy's probability of each action given ``mask``; NaN where it is masked."""
        raise NotImplementedError

    def _probabilities(self, observation: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        policy = self._trained().policy
        obs, _ = policy.obs_to_tensor(np.asarray(observation, dtype=np.float32))
        with torch.no_grad():
            if mask is None:
                distribution = policy.get_distribution(obs)
            else:
                distribution = policy.get_distribution(obs, action_masks=mask)
            return distribution.distribution.probs[0].double().numpy()

    def _trained(self) -> BaseAlgorithm:
        if self.model is None:
            raise RuntimeError(f"{self.kind}: no model yet: call learn, resume or load first")
        return self.model

    # --- training -------------------------------------------------------------------------

    def learn(
        self,
        env_config: EnvConfig,
        total_steps: int,
        seed: int,
        run_dir: Path,
        callback: TrainingCallback,
    ) -> None:
        """Train until ``total_steps`` env steps in all (steps already done by a resumed run
        count). Training runs whole rollouts of ``n_envs × n_steps`` steps, so it stops at the
        first multiple of that at or past ``total_steps``. A final checkpoint is written at the
        end."""
        torch.set_num_threads(1)
        run_dir = Path(run_dir)
        settings = self.settings
        start = 0 if self.model is None else self.model.num_timesteps
        if start >= total_steps:
            return
        # A resumed run draws new, reproducible randomness: seeded by where it starts.
        run_seed = seed + start
        envs = make_vec_env(env_config, settings.n_envs, settings.vec_env, run_seed)
        eval_env = None
        try:
            tensorboard = self._tensorboard_dir(run_dir)
            if self.model is None:
                self.model = self._build(envs, run_seed, tensorboard)
            else:
                self.model.tensorboard_log = tensorboard
                self.model.set_env(envs)
                self.model.set_random_seed(run_seed)
            checkpointer = _Checkpointer(
                self, run_dir / "checkpoints", settings.checkpoint_freq, callback
            )
            callbacks: list[BaseCallback] = [_EpisodeReporter(callback), checkpointer]
            if settings.credit == "decision":
                callbacks.insert(0, _CreditToDecisions())
            if settings.eval_freq > 0:
                eval_env = make_vec_env(env_config, 1, "dummy", run_seed + _EVAL_SEED_OFFSET)
                evaluator = self.eval_callback(
                    eval_env,
                    n_eval_episodes=settings.eval_episodes,
                    eval_freq=max(settings.eval_freq // settings.n_envs, 1),
                    log_path=str(run_dir / "eval"),
                    best_model_save_path=str(run_dir / "eval"),
                    deterministic=True,
                    verbose=0,
                )
                _restore_evaluations(evaluator, start)
                callbacks.append(evaluator)
            with warnings.catch_warnings():
                # Evaluation runs one in-process env beside the training workers on purpose.
                warnings.filterwarnings("ignore", message=_MIXED_ENV_TYPES, category=UserWarning)
                self.model.learn(
                    total_timesteps=total_steps - start,
                    callback=CallbackList(callbacks),
                    reset_num_timesteps=False,
                    tb_log_name="run",
                )
            if checkpointer.last != self.model.num_timesteps:
                checkpointer.save()
        finally:
            envs.close()
            if eval_env is not None:
                eval_env.close()

    def _build(self, envs: VecEnv, seed: int, tensorboard: str | None) -> BaseAlgorithm:
        return self.algorithm(
            self.settings.policy,
            envs,
            seed=seed,
            device="cpu",
            tensorboard_log=tensorboard,
            verbose=0,
            **self.settings.algo_arguments(),
        )

    @staticmethod
    def _tensorboard_dir(run_dir: Path) -> str | None:
        """``run_dir/tensorboard`` if the ``tensorboard`` package is installed, else no logs."""
        if importlib.util.find_spec("tensorboard") is None:
            return None
        return str(run_dir / "tensorboard")

    def write_checkpoint(self, folder: Path) -> Path:
        """Save the model as ``folder/step_<n>.zip`` and keep only the newest few."""
        model = self._trained()
        path = Path(folder) / f"{CHECKPOINT_PREFIX}{model.num_timesteps}.zip"
        _write_zip(model, self._meta(), path)
        for _, old in checkpoints(folder)[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, run_dir: Path) -> int:
        """Load the newest checkpoint in ``run_dir/checkpoints`` into this learner and return
        the env steps it had done (0, and nothing loaded, when there is none). The checkpoint
        must come from a learner of this kind with the same hyperparameters: ``ValueError``
        otherwise. Checkpoints are SB3 zips: loading one unpickles code from the run folder."""
        folder = Path(run_dir) / "checkpoints"
        for partial in folder.glob("*.partial"):
            partial.unlink()  # a save the kill interrupted; the previous checkpoint stands
        found = checkpoints(folder)
        if not found:
            return 0
        _, path = found[-1]
        meta = self._read_meta(path)
        if meta.hyperparameters != json.loads(json.dumps(self.hyperparameters, default=repr)):
            changed = sorted(
                key
                for key in set(meta.hyperparameters) | set(self.hyperparameters)
                if meta.hyperparameters.get(key) != self.hyperparameters.get(key)
            )
            raise ValueError(
                f"{path}: trained with other hyperparameters ({', '.join(changed)} differ); "
                "resume with the ones the run started with"
            )
        self.model = self._load_model(path)
        return int(self.model.num_timesteps)

    # --- saved agents ---------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Write the trained agent to ``folder/agent.zip`` (an SB3 zip: loading it unpickles
        code) and return its path."""
        path = Path(folder) / AGENT_FILE
        _write_zip(self._trained(), self._meta(), path)
        return path

    @classmethod
    def load(cls, folder: Path, env: gym.Env) -> SB3Learner:
        """The agent saved in ``folder/agent.zip``, for ``env``.

        The file's ``mtenv-agent.json`` is checked first (kind, observation shape, action count,
        feature names and action labels against ``env``), then SB3 loads the zip. Any failure
        raises :class:`AgentLoadError` naming the file. SB3 zips hold cloudpickled objects:
        loading one runs code from the file, so load only files you trust.
        """
        path = Path(folder) / AGENT_FILE
        meta = AgentMeta.read(path)
        if meta.kind != cls.kind:
            raise AgentLoadError(
                f"{path}: a {meta.kind!r} agent, expected {cls.kind!r}: load it as {meta.kind}"
            )
        _check_compatible(meta, env, path)
        try:
            agent = cls(env, **meta.hyperparameters)
        except (TypeError, ValueError) as error:
            raise AgentLoadError(f"{path}: hyperparameters are not valid ({error})") from None
        agent.model = agent._load_model(path)
        return agent

    def _read_meta(self, path: Path) -> AgentMeta:
        meta = AgentMeta.read(path)
        if meta.kind != self.kind:
            raise AgentLoadError(f"{path}: a {meta.kind!r} agent, expected {self.kind!r}")
        if meta.observation_shape != tuple(self.observation_space.shape or ()):
            raise AgentLoadError(
                f"{path}: observation shape {meta.observation_shape} in the file, "
                f"{tuple(self.observation_space.shape or ())} in the env"
            )
        if meta.n_actions != int(self.action_space.n):
            raise AgentLoadError(
                f"{path}: action count {meta.n_actions} in the file, "
                f"{int(self.action_space.n)} in the env"
            )
        return meta

    def _load_model(self, path: Path) -> BaseAlgorithm:
        try:
            model = self.algorithm.load(path, device="cpu")
        except Exception as error:  # SB3 raises whatever unpickling or torch raises
            raise AgentLoadError(
                f"{path}: stable-baselines3 cannot load it ({type(error).__name__}: {error})"
            ) from None
        if model.observation_space.shape != self.observation_space.shape:
            raise AgentLoadError(
                f"{path}: the model's observation shape {model.observation_space.shape} differs "
                f"from its {META_MEMBER} ({self.observation_space.shape})"
            )
        return model

    def _meta(self) -> AgentMeta:
        return AgentMeta(
            kind=self.kind,
            observation_shape=tuple(self.observation_space.shape or ()),
            n_actions=int(self.action_space.n),
            feature_names=self.feature_names,
            action_labels=self.action_labels,
            hyperparameters=self.hyperparameters,
            num_timesteps=int(self._trained().num_timesteps),
        )


class MaskablePPOAgent(SB3Learner):
    """sb3-contrib's MaskablePPO: trains and acts with the env's action mask, so it never
    picks an invalid action; acts greedily (the most probable valid action)."""

    kind = "maskable-ppo"
    name = "maskable-ppo"
    algorithm = MaskablePPO
    eval_callback = MaskableEvalCallback

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        action, _ = self._trained().predict(
            observation, action_masks=np.asarray(mask).astype(bool), deterministic=True
        )
        return int(action)

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        valid = np.asarray(mask).astype(bool)
        probs = self._probabilities(observation, valid)
        probs[~valid] = np.nan
        return probs


class PPOAgent(SB3Learner):
    """stable-baselines3's PPO without masks: it trains on every action, learning from the
    env's ``invalid_action`` penalty to avoid the invalid ones. Deployed it never breaks the
    mask: it acts with the most probable *valid* action, and :meth:`action_values` is its
    distribution renormalised over the valid actions."""

    kind = "ppo"
    name = "ppo"
    algorithm = PPO
    eval_callback = EvalCallback

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        return int(np.nanargmax(self.action_values(observation, mask)))

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        valid = np.asarray(mask).astype(bool)
        probs = self._probabilities(observation, None)
        probs[~valid] = np.nan
        total = np.nansum(probs)
        return probs / total if total > 0 else np.where(valid, 1.0 / valid.sum(), np.nan)
