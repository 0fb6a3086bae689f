"""PPO learners: sb3-contrib's MaskablePPO (the default) and stable-baselines3's PPO.

Both train on vectorised envs built from an :class:`~mtenv.agents.interfaces.EnvConfig` (by
default all of them in this process, stepped together by mtenv's batched vector env on one shared
set of models, :mod:`mtenv.agents.ppo.batched`; or one ``SubprocVecEnv`` worker per env, each
making ``"mtenv:<id>"`` so that it imports mtenv itself),
evaluate on a separate env, write TensorBoard logs and checkpoints into a run folder and can be
resumed from the last checkpoint after a kill. Their hyperparameters:
:mod:`mtenv.agents.ppo.settings`; the envs and callbacks of training, credit for delayed rewards
included: :mod:`mtenv.agents.ppo.rollouts`.

A run folder holds::

    agent.json, agent.safetensors  the trained agent: what the network is, and its weights
    checkpoints/step_<n>.zip   the model after n env steps (written atomically; the last few kept)
    eval/evaluations.npz       greedy returns on the validation episodes, every ``eval_freq``
    eval/best_step_<n>.safetensors   the weights of each evaluation that set a new best; the
                               saved agent is the best of them (:mod:`mtenv.agents.ppo.selection`)
    tensorboard/run_0/         TensorBoard event files (when ``tensorboard`` is installed)

The saved agent holds no pickle and runs no code when loaded: :meth:`SB3Learner.load` rebuilds
the policy from the JSON and reads the weights with safetensors, checking every field
(:mod:`mtenv.agents.ppo.policy_files`). Checkpoints are stable-baselines3 zips, which hold
cloudpickled Python objects: **loading one runs code from the file.** Only :meth:`resume` reads
them; an ``agent.zip`` (run folders of older mtenv versions) loads only with
``trust_pickle=True``. Before unpickling anything the plain-JSON ``mtenv-agent.json`` member of
the zip is read, and a file of another kind or one trained for an env with different spaces is
refused (:mod:`mtenv.agents.ppo.storage`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from mtenv.agents.interfaces import AgentLoadError, EnvConfig, TrainingCallback
from mtenv.agents.policies import make_policy
from mtenv.agents.ppo.candidates import CandidatePolicy, MaskableCandidatePolicy, layout_indices
from mtenv.agents.ppo.imitation import (
    Demonstrations,
    TeacherPull,
    Teachers,
    clone,
    collect,
    own_load,
    pick_teachers,
    teacher_loads,
)
from mtenv.agents.ppo.policy_files import ALGORITHMS, JSON_FILE, read_policy, write_policy
from mtenv.agents.ppo.rollouts import (
    Checkpointer,
    CreditToDecisions,
    EpisodeReporter,
    make_vec_env,
    training_loads,
)
from mtenv.agents.ppo.selection import Validation, best_weights
from mtenv.agents.ppo.settings import TrainingSettings, teacher_names
from mtenv.agents.ppo.storage import (
    CHECKPOINT_PREFIX,
    KEEP_CHECKPOINTS,
    META_MEMBER,
    ZIP_FILE,
    AgentMeta,
    check_compatible,
    checkpoints,
    env_descriptions,
    write_zip,
    zip_refusal,
)
from mtenv.agents.training import package_versions
from mtenv.envs.observation import ObservationLayout
from mtenv.envs.task_allocation import is_load_scale
from mtenv.zoo.store import atomic_path

_EVAL_SEED_OFFSET = 1_000_003  # keeps validation episodes apart from the training seeds
_LOAD_SEED_STRIDE = 104_729  # keeps each load's demonstration episodes apart


def _recorded_teachers(
    path: Path, loads: tuple[float | None, ...], env_config: EnvConfig
) -> Teachers | None:
    """The teachers a run's cloning chose, read from its ``imitation.json``; ``None`` when the
    file is missing or unreadable, names an unknown heuristic or other loads. A record of one
    teacher (runs of older mtenv versions) teaches at every load."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        own, pairs, at = record["teacher"], record.get("teachers"), record.get("own_load")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    known = teacher_names()
    if own not in known:
        return None
    if pairs is None:
        return Teachers.one(own, loads, own_load(env_config))
    try:
        recorded = tuple(load for load, _ in pairs), tuple(name for _, name in pairs)
    except (TypeError, ValueError):
        return None
    if recorded[0] != loads or recorded[1][0] != own or not set(recorded[1]) <= set(known):
        return None
    return Teachers(loads, recorded[1], float(at)) if is_load_scale(at) else None


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
    candidate_policy: ClassVar[type]
    """The candidate-scoring policy class for this algorithm (``policy: CandidatePolicy``)."""
    value_label: ClassVar[str] = "probability"

    def __init__(self, env: gym.Env, seed: int | None = None, **hyperparameters: Any):
        self.hyperparameters = dict(hyperparameters)
        self.settings = TrainingSettings.parse(self.algorithm, self.hyperparameters)
        self.settings.algo_arguments()  # bad schedules or activations fail here, not mid-run
        self.seed = seed
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.feature_names, self.action_labels = env_descriptions(env)
        self._candidate_indices = (
            layout_indices(ObservationLayout.of(env))
            if self.settings.policy == "CandidatePolicy"
            else None
        )
        self.model: BaseAlgorithm | None = None
        self._saved_policy: Any = None  # the policy of an agent loaded from agent.safetensors
        self._saved_steps = 0
        self._selected_policy: Any = None  # the best validated weights, when not the last ones
        self.selected_step: int | None = None
        """The env step whose weights the agent acts with (the best validation), once trained."""

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
        policy = self._policy()
        obs, _ = policy.obs_to_tensor(np.asarray(observation, dtype=np.float32))
        with torch.no_grad():
            if mask is None:
                distribution = policy.get_distribution(obs)
            else:
                distribution = policy.get_distribution(obs, action_masks=mask)
            return distribution.distribution.probs[0].double().numpy()

    def _trained(self) -> BaseAlgorithm:
        if self.model is None:
            if self._saved_policy is not None:
                raise RuntimeError(
                    f"{self.kind}: loaded from {JSON_FILE}, which holds no training state: "
                    "continue a run from its checkpoints with `mtenv train ... --resume`"
                )
            raise RuntimeError(f"{self.kind}: no model yet: call learn, resume or load first")
        return self.model

    def _policy(self) -> Any:
        """The policy that acts: the best validated weights of a finished run, the trained
        model's, or the one loaded from a saved agent."""
        if self._selected_policy is not None:
            return self._selected_policy
        if self.model is None and self._saved_policy is not None:
            return self._saved_policy
        return self._trained().policy

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
        end. With ``eval_freq`` the agent then acts with the best validated weights of the run
        (:mod:`mtenv.agents.ppo.selection`)."""
        torch.set_num_threads(1)
        run_dir = Path(run_dir)
        settings = self.settings
        if self.model is None and self._saved_policy is not None:
            self._trained()  # says why a saved agent cannot train on
        self._selected_policy, self.selected_step = None, None
        start = 0 if self.model is None else self.model.num_timesteps
        if start >= total_steps:
            self._select(run_dir)
            return
        # A resumed run draws new, reproducible randomness: seeded by where it starts.
        run_seed = seed + start
        load_range = None if settings.load_range is None else tuple(settings.load_range)
        loads = training_loads(settings.n_envs, load_range)
        assert settings.vec_env is not None  # parse() resolved the default
        envs = make_vec_env(env_config, settings.n_envs, settings.vec_env, run_seed, load_range)
        try:
            tensorboard = self._tensorboard_dir(run_dir)
            teachers = None
            if settings.teacher is not None:
                teachers = self._teachers(env_config, loads, seed, run_dir, callback)
            if self.model is None:
                self.model = self._build(envs, run_seed, tensorboard)
                if teachers is not None:
                    self._imitate(env_config, teachers, seed, run_dir, callback)
            else:
                self.model.tensorboard_log = tensorboard
                self.model.set_env(envs)
                self.model.set_random_seed(run_seed)
            checkpointer = Checkpointer(
                self, run_dir / "checkpoints", settings.checkpoint_freq, callback
            )
            callbacks: list[BaseCallback] = [EpisodeReporter(callback), checkpointer]
            if settings.credit == "decision":
                callbacks.insert(0, CreditToDecisions())
            if teachers is not None and settings.teacher_coef > 0:
                pull = self._teacher_pull(env_config, teachers.for_envs(loads), seed, total_steps)
                callbacks.append(pull)
            if settings.eval_freq > 0:
                callbacks.append(
                    Validation(
                        self.act,
                        env_config,
                        run_dir / "eval",
                        settings.eval_freq,
                        settings.eval_episodes,
                        seed + _EVAL_SEED_OFFSET,
                        settings.eval_loads or (None,),
                    )
                )
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
        self._select(run_dir)

    def _select(self, run_dir: Path) -> None:
        """Act with the best validated weights of the run in ``run_dir`` (the last ones when
        they are the best, or when the run kept no evaluations)."""
        model = self._trained()
        found = best_weights(Path(run_dir) / "eval")
        self.selected_step = int(model.num_timesteps) if found is None else found[0]
        if found is None or found[0] == model.num_timesteps:
            return
        policy = copy.deepcopy(model.policy)
        policy.load_state_dict(found[1], strict=True)
        policy.set_training_mode(False)
        self._selected_policy = policy

    def _build(self, envs: VecEnv, seed: int, tensorboard: str | None) -> BaseAlgorithm:
        arguments = self.settings.algo_arguments()
        policy: Any = self.settings.policy
        if self._candidate_indices is not None:
            policy = self.candidate_policy
            extra = {"indices": self._candidate_indices}
            arguments["policy_kwargs"] = {**arguments.get("policy_kwargs", {}), **extra}
        return self.algorithm(
            policy,
            envs,
            seed=seed,
            device="cpu",
            tensorboard_log=tensorboard,
            verbose=0,
            **arguments,
        )

    # --- starting from a heuristic ----------------------------------------------------------

    def _teachers(
        self,
        env_config: EnvConfig,
        env_loads: list[float | None],
        seed: int,
        run_dir: Path,
        callback: TrainingCallback,
    ) -> Teachers:
        """The settings' teacher at every load, or with ``auto`` the best heuristic at each
        (:func:`~mtenv.agents.ppo.imitation.pick_teachers`). A resumed run reads the ones its
        cloning chose from ``imitation.json`` (picking again, deterministic in ``seed``, finds
        the same ones, at the cost of a few episodes per heuristic and load)."""
        name = self.settings.teacher
        assert name is not None
        loads = teacher_loads(env_loads)
        if name != "auto":
            return Teachers.one(name, loads, own_load(env_config))
        recorded = _recorded_teachers(run_dir / "imitation.json", loads, env_config)
        if recorded is not None:
            return recorded
        where = "the scenario's load" if len(loads) == 1 else f"each of {len(loads)} loads"
        callback.on_phase(f"choosing the teacher: the best heuristic at {where}")
        return pick_teachers(env_config, env_loads, 2, seed)

    def _imitate(
        self,
        env_config: EnvConfig,
        teachers: Teachers,
        seed: int,
        run_dir: Path,
        callback: TrainingCallback,
    ) -> None:
        """Behaviour cloning with DAgger rounds before PPO, the demonstrations collected at
        each load of ``teachers.demonstrating()``; writes ``run_dir/imitation.json``."""
        settings, policy = self.settings, self._trained().policy
        gamma = float(self._trained().gamma)
        sites = teachers.demonstrating()

        def demonstrations(round_seed: int, driver: Any = None) -> list[Demonstrations]:
            return [
                collect(
                    env_config.at_load(load),
                    name,
                    settings.demo_steps,
                    round_seed + _LOAD_SEED_STRIDE * i,
                    gamma,
                    driver,
                )
                for i, (load, name) in enumerate(sites)
            ]

        n_rounds = settings.dagger_rounds + 1
        teacher = " and ".join(dict.fromkeys(name for _, name in sites))

        def phase(k: int) -> None:
            callback.on_phase(f"behaviour cloning {teacher}: round {k + 1}/{n_rounds}")

        phase(0)
        demos = Demonstrations.concatenate(demonstrations(seed))
        rounds = [clone(policy, demos, settings.clone_epochs, seed)]
        for k in range(1, n_rounds):
            phase(k)

            def drive(obs: np.ndarray, mask: np.ndarray) -> int:
                action, _ = policy.predict(obs, deterministic=True, **self._mask_kwargs(mask))
                return int(action)

            demos = Demonstrations.concatenate([demos, *demonstrations(seed + 7919 * k, drive)])
            rounds.append(clone(policy, demos, settings.clone_epochs, seed + k))
        record = {
            "teacher": teachers.own,
            "teachers": [list(pair) for pair in zip(teachers.loads, teachers.names, strict=True)],
            "own_load": teachers.own_load,
            "states": len(demos),
            "agreement_by_round": rounds,
        }
        with atomic_path(run_dir / "imitation.json") as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def _teacher_pull(
        self, env_config: EnvConfig, names: list[str], seed: int, total_steps: int
    ) -> BaseCallback:
        env = env_config.make()
        try:  # a catalog heuristic keeps the env's catalog and layout, not the env
            policies = {name: make_policy(name, env, seed) for name in dict.fromkeys(names)}
        finally:
            env.close()
        settings = self.settings
        return TeacherPull(
            [policies[name] for name in names],
            settings.teacher_coef,
            settings.teacher_decay,
            total_steps,
        )

    @staticmethod
    def _mask_kwargs(mask: np.ndarray) -> dict[str, Any]:
        """How this algorithm's ``predict`` takes the mask (none for plain PPO)."""
        return {"action_masks": np.asarray(mask, dtype=bool)}

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
        write_zip(model, self._meta(), path)
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
        """Write the trained agent to ``folder/agent.json`` and ``folder/agent.safetensors``
        (no pickle) and return the JSON's path."""
        policy = self._policy()
        steps = self.model.num_timesteps if self.model is not None else self._saved_steps
        description = {
            "kind": self.kind,
            "algorithm": ALGORITHMS[self.kind],
            "observation_shape": list(self.observation_space.shape or ()),
            "n_actions": int(self.action_space.n),
            "feature_names": self.feature_names,
            "action_labels": self.action_labels,
            "hyperparameters": self.hyperparameters,
            "num_timesteps": int(steps),
            "selected_step": int(steps if self.selected_step is None else self.selected_step),
            "versions": package_versions(),
        }
        return write_policy(Path(folder), policy, description)

    @classmethod
    def load(cls, folder: Path, env: gym.Env, trust_pickle: bool = False) -> SB3Learner:
        """The agent saved in ``folder``, for ``env``.

        ``agent.json`` and ``agent.safetensors`` are read without pickle, every field checked
        against ``env`` (:mod:`mtenv.agents.ppo.policy_files`). A folder holding only an
        ``agent.zip`` (older mtenv versions) is refused unless ``trust_pickle``: SB3 zips hold
        cloudpickled objects, and loading one runs code from the file. Any failure raises
        :class:`AgentLoadError` naming the file.
        """
        folder = Path(folder)
        refusal = zip_refusal(folder)
        if refusal is not None:
            if not trust_pickle:
                raise AgentLoadError(refusal)
            return cls._load_zip(folder / ZIP_FILE, env)
        policy, description = read_policy(folder, cls.kind, env)
        try:
            agent = cls(env, **description["hyperparameters"])
        except (TypeError, ValueError) as error:
            raise AgentLoadError(
                f"{folder / JSON_FILE}: field hyperparameters: not valid ({error})"
            ) from None
        agent._saved_policy = policy
        agent._saved_steps = description["num_timesteps"]
        agent.selected_step = description["selected_step"]
        return agent

    @classmethod
    def _load_zip(cls, path: Path, env: gym.Env) -> SB3Learner:
        """An ``agent.zip``: its ``mtenv-agent.json`` checked first (kind, observation shape,
        action count, feature names and action labels against ``env``), then unpickled by SB3."""
        meta = AgentMeta.read(path)
        if meta.kind != cls.kind:
            raise AgentLoadError(
                f"{path}: a {meta.kind!r} agent, expected {cls.kind!r}: load it as {meta.kind}"
            )
        check_compatible(meta, env, path)
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
    candidate_policy = MaskableCandidatePolicy

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        action, _ = self._policy().predict(
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
    candidate_policy = CandidatePolicy

    @staticmethod
    def _mask_kwargs(mask: np.ndarray) -> dict[str, Any]:
        return {}

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        return int(np.nanargmax(self.action_values(observation, mask)))

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        valid = np.asarray(mask).astype(bool)
        probs = self._probabilities(observation, None)
        probs[~valid] = np.nan
        total = np.nansum(probs)
        return probs / total if total > 0 else np.where(valid, 1.0 / valid.sum(), np.nan)
