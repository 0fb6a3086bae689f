"""A vector env that steps K task-allocation envs together in one process, sharing their models."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mtenv.core.inference import InferenceEngine
from mtenv.core.schema import Scenario
from mtenv.core.stages import prefetch
from mtenv.envs.task_allocation import TaskAllocationEnv, positive_int_arg
from mtenv.io.scenario_files import load_scenario


class BatchedTaskAllocationEnv(VectorEnv):
    """K :class:`~mtenv.envs.task_allocation.TaskAllocationEnv` sub-envs stepped together in this
    process, sharing one :class:`~mtenv.core.inference.InferenceEngine`.

    ## Description

    ``gym.make_vec(id, num_envs=K)`` of every mtenv id returns this env (its
    ``vector_entry_point``; ``vectorization_mode="sync"`` or ``"async"`` still give Gymnasium's
    own vector envs). The K sub-envs are built here, in-process, on one engine, so the zoo's
    models and pools load once. In ``live`` inference each vector step first collects the task
    every sub-env is about to dispatch and the plan its action serves it with
    (:meth:`TaskAllocationEnv.planned`) and runs :func:`mtenv.core.stages.prefetch` once: one
    batched forward pass per model and task type across all K envs, whose outputs the sub-envs'
    batches then read instead of running the models themselves (a cascade's second model still
    runs when tasks escalate, and a shared-trunk model on its own batches, whose task types may
    mix). ``memoized`` inference skips it: lookups are already cheap.

    Sub-env ``k`` follows exactly the trajectory of a single ``TaskAllocationEnv`` reset with its
    seed and fed the same actions: observations, rewards, flags, masks, feedback and metrics,
    live (with the prefetch) or memoized.

    ## Action Space

    ``MultiDiscrete([n] * K)`` (``batch_space`` of the sub-envs' ``Discrete(n)``): one action per
    sub-env. :meth:`action_masks` gives the valid ones as booleans ``[K, n]``.

    ## Observation Space

    ``Box(0, clip, (K, obs_dim), float32)``: the sub-envs' observations stacked
    (``single_observation_space`` is one sub-env's).

    ## Rewards

    ``[K]`` float64, each the sub-env's step reward (0 on a step that autoresets it).

    ## Info

    Gymnasium's vector-info dicts (as ``SyncVectorEnv`` builds them): every key ``x`` of the
    sub-envs' infos maps to an array over the K envs with a boolean ``_x`` saying which envs gave
    it. ``action_mask`` is ``[K, n]`` int8; ``feedback`` an object array of one
    :class:`~mtenv.envs.feedback.Feedback` per env; ``invalid_action`` ``[K]`` bool (False, and
    ``_invalid_action`` False, for an env that was reset in the step); ``metrics`` (a dict of
    arrays, with ``_metrics``) where an episode terminated.

    ## Episode End

    Autoreset ``NEXT_STEP`` (``metadata["autoreset_mode"]``, Gymnasium's default): the step after
    a sub-env terminated or was truncated resets it, ignoring its action, and returns its reset
    observation with reward 0 and both flags False. ``autoreset_mode="SameStep"`` resets it in
    the step that ended the episode (``info["final_obs"]`` and ``info["final_info"]`` hold what
    the step returned) and ``"Disabled"`` leaves resets to the caller
    (``reset(options={"reset_mask": mask})``), as in ``SyncVectorEnv``.
    ``max_episode_steps`` truncates each sub-env like Gymnasium's ``TimeLimit`` (truncated, no
    metrics).

    ## Arguments

    * ``num_envs``: K, the number of sub-envs (≥ 1).
    * ``scenario``, ``inference``, ``device``, ``episode_tasks``, ``load_scale``: as for
      :class:`TaskAllocationEnv`, the same for every sub-env (the scenario is read once).
    * ``load_scales``: one load factor per sub-env (``None`` entries take the scenario's);
      exclusive with ``load_scale``. Training spreads its envs over a range of loads this way.
    * ``render_mode``: ``None``, ``"rgb_array"`` or ``"ansi"`` (:meth:`render` returns a tuple of
      the K sub-envs' frames), or ``"human"``: only sub-env 0 is drawn, in one window, at every
      step; :meth:`render` then returns ``None``.
    * ``max_episode_steps``: truncate each sub-env's episode after this many steps (``None``:
      never; the workload's end terminates it).
    * ``engine``: the shared :class:`~mtenv.core.inference.InferenceEngine` (``None``: built from
      the scenario, ``inference`` and ``device``).
    * ``autoreset_mode``: an :class:`gymnasium.vector.AutoresetMode` or its value
      (``"NextStep"``, ``"SameStep"``, ``"Disabled"``).
    * ``copy``: return copies of the observation buffer (default) rather than the buffer itself.

    The env pickles (the sub-envs keep sharing one engine in the copy), and ``call``,
    ``get_attr`` and ``set_attr`` reach the sub-envs as in ``SyncVectorEnv``.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Path | Scenario | None = None,
        render_mode: str | None = None,
        inference: str | None = None,
        device: str | None = None,
        episode_tasks: int | None = None,
        load_scale: float | None = None,
        load_scales: Sequence[float | None] | None = None,
        max_episode_steps: int | None = None,
        engine: InferenceEngine | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        copy: bool = True,
    ):
        num_envs = positive_int_arg("num_envs", num_envs)
        if load_scales is not None:
            if load_scale is not None:
                raise ValueError("load_scale and load_scales: give one of them, not both")
            load_scales = list(load_scales)
            if len(load_scales) != num_envs:
                raise ValueError(
                    f"load_scales: expected {num_envs} values (one per env), got {len(load_scales)}"
                )
        else:
            load_scales = [load_scale] * num_envs
        if max_episode_steps is not None:
            max_episode_steps = positive_int_arg("max_episode_steps", max_episode_steps, True)
        metadata = TaskAllocationEnv.metadata
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.num_envs = num_envs
        self.render_mode = render_mode  # the first sub-env checks it
        self.max_episode_steps = max_episode_steps
        self.copy = copy
        self.metadata = {**metadata, "autoreset_mode": self.autoreset_mode}

        loaded = scenario
        if scenario is not None and not isinstance(scenario, Scenario):
            loaded = load_scenario(scenario)  # once, not once per sub-env
        self.envs: list[TaskAllocationEnv] = []
        for k, scale in enumerate(load_scales):
            env = TaskAllocationEnv(
                loaded,
                # One window at most: "human" draws the first sub-env only.
                render_mode=None if render_mode == "human" and k > 0 else render_mode,
                inference=inference,
                device=device,
                episode_tasks=episode_tasks,
                load_scale=scale,
                engine=engine,
            )
            engine = env.engine
            self.envs.append(env)
        assert engine is not None
        self.engine: InferenceEngine = engine
        """The engine every sub-env runs its models with."""

        first = self.envs[0]  # one scenario gives one layout whatever the load
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self._observations = np.zeros(
            (num_envs, *self.single_observation_space.shape),
            dtype=self.single_observation_space.dtype,
        )
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    # --- Gymnasium's vector API ------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the sub-envs: ``seed`` ``s`` seeds sub-env ``k`` with ``s + k``; a list gives one
        seed per sub-env; ``None`` continues each sub-env's generator. ``options`` go to every
        sub-env, except ``reset_mask`` (a ``[K]`` bool array): reset only those sub-envs."""
        obs, infos = self.reset_each(seed=seed, options=options)
        return obs, self._vector_infos(infos)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env with its action (see the class docstring for autoresets)."""
        obs, rewards, terminations, truncations, infos = self.step_each(actions)
        return obs, rewards, terminations, truncations, self._vector_infos(infos)

    def render(self) -> tuple[Any, ...] | None:
        """The sub-envs' frames (``rgb_array``) or texts (``ansi``) as a tuple; ``None`` in
        ``human`` mode (sub-env 0 draws itself at every step) or without a render mode."""
        if self.render_mode == "human":
            self.envs[0].render()
            return None
        if self.render_mode is None:
            return self.envs[0].render()  # warns, returns None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        """Close the sub-envs (their viewers)."""
        for env in self.envs:
            env.close()

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call the sub-envs' method ``name`` (or read the attribute), one result per env."""
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The sub-envs' attribute ``name``, one per env."""
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set attribute ``name`` of the sub-envs: a list or tuple gives one value per env, any
        other value is set on all of them."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr: expected {self.num_envs} values, got {len(values)}")
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        """The sub-envs' seeds."""
        return self.get_attr("np_random_seed")

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """The sub-envs' generators."""
        return self.get_attr("np_random")

    # --- masks ---------------------------------------------------------------------------------

    def action_masks(self) -> np.ndarray:
        """``[K, n]`` bool: the valid actions of each sub-env's current state (reject always). A
        sub-env whose episode ended (to be reset at the next step) allows only reject."""
        return np.stack([env.action_masks() for env in self.envs])

    # --- per-sub-env steps, for adapters -------------------------------------------------------

    def reset_each(
        self,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        """:meth:`reset` with each sub-env's info as it returned it (``None`` for a sub-env the
        ``reset_mask`` left alone). ``options`` may also be a list, one per sub-env."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, numbers.Integral):
            seeds = [int(seed) + k for k in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(
                    f"seed: a list of seeds must have num_envs={self.num_envs} entries, "
                    f"got {len(seeds)}"
                )
        if isinstance(options, dict) or options is None:
            options = dict(options or {})
            reset_mask = options.pop("reset_mask", None)
            per_env: list[dict[str, Any] | None] = [options or None] * self.num_envs
        else:
            reset_mask, per_env = None, list(options)
            if len(per_env) != self.num_envs:
                raise ValueError(f"options: expected {self.num_envs} dicts, got {len(per_env)}")
        if reset_mask is None:
            reset_mask = np.ones(self.num_envs, dtype=bool)
        elif not (
            isinstance(reset_mask, np.ndarray)
            and reset_mask.shape == (self.num_envs,)
            and reset_mask.dtype == np.bool_
            and reset_mask.any()
        ):
            raise ValueError(
                f"options['reset_mask']: expected a bool array of shape ({self.num_envs},) with "
                f"at least one True, got {reset_mask!r}"
            )
        infos: list[dict[str, Any] | None] = [None] * self.num_envs
        for k in np.flatnonzero(reset_mask).tolist():
            _, infos[k] = self.reset_env(k, seed=seeds[k], options=per_env[k])
        return self._obs_out(), infos

    def reset_env(
        self, k: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset sub-env ``k`` alone; its observation and info."""
        obs, info = self.envs[k].reset(seed=seed, options=options)
        self._observations[k] = obs
        self._elapsed[k] = 0
        self._autoreset[k] = False
        return obs, info

    def step_each(
        self, actions: np.ndarray | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """:meth:`step` with each sub-env's info as a dict of its own (a list of K): where a
        sub-env was reset its reset info (``SameStep``: with ``final_obs`` and ``final_info``)."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions: expected shape ({self.num_envs},), got {actions.shape}")
        n = self.single_action_space.n
        if not np.issubdtype(actions.dtype, np.integer) or ((actions < 0) | (actions >= n)).any():
            raise ValueError(
                f"actions: expected integers in [0, {n - 1}], got {np.array2string(actions)[:60]}"
                f" ({actions.dtype})"
            )
        k_envs = self.num_envs
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        resetting = self._autoreset.copy() if next_step else np.zeros(k_envs, dtype=bool)
        if self.engine.mode == "live":
            self._prefetch(actions, resetting)
        rewards = np.zeros(k_envs, dtype=np.float64)
        terminations = np.zeros(k_envs, dtype=bool)
        truncations = np.zeros(k_envs, dtype=bool)
        infos: list[dict[str, Any]] = []
        limit = self.max_episode_steps
        for k, env in enumerate(self.envs):
            if resetting[k]:
                _, info = self.reset_env(k)
                infos.append(info)
                continue
            obs, reward, terminated, truncated, info = env.step(actions[k])
            self._elapsed[k] += 1
            if limit is not None and self._elapsed[k] >= limit:
                truncated = True  # as TimeLimit: whether or not the episode also terminated
            rewards[k], terminations[k], truncations[k] = reward, terminated, truncated
            self._observations[k] = obs
            if (terminated or truncated) and self.autoreset_mode == AutoresetMode.SAME_STEP:
                _, reset_info = self.reset_env(k)
                info = {"final_obs": np.array(obs), "final_info": info, **reset_info}
            infos.append(info)
        if next_step:
            self._autoreset = terminations | truncations
        return self._obs_out(), rewards, terminations, truncations, infos

    # --- internals -----------------------------------------------------------------------------

    def _prefetch(self, actions: np.ndarray, resetting: np.ndarray) -> None:
        """One forward pass per model (a shared trunk: one pass, every head on its rows) for
        the tasks the sub-envs dispatch now."""
        requests = []
        for k, env in enumerate(self.envs):
            if resetting[k]:
                continue
            planned = env.planned(int(actions[k]))
            if planned is None:
                continue
            task, plan = planned
            requests.append((env.sim.runner, task, plan))
        if requests:
            prefetch(self.engine, requests)

    def _obs_out(self) -> np.ndarray:
        return self._observations.copy() if self.copy else self._observations

    def _vector_infos(self, infos: list[dict[str, Any] | None]) -> dict[str, Any]:
        """Gymnasium's vector infos (what ``_add_info`` builds, env by env), with the keys every
        sub-env reports at every step stacked in one go: merging them env by env would cost
        more than stepping the envs."""
        vector: dict[str, Any] = {}
        stacked: set[str] = set()
        if all(info is not None for info in infos):
            for key in _EVERY_STEP:
                values = [info.get(key, _ABSENT) for info in infos]  # type: ignore[union-attr]
                if any(value is _ABSENT for value in values):
                    continue
                vector[key] = _stack(values)
                vector[f"_{key}"] = np.ones(self.num_envs, dtype=np.bool_)
                stacked.add(key)
        for k, info in enumerate(infos):
            if info is None:
                continue
            rest = {key: value for key, value in info.items() if key not in stacked}
            if rest:
                vector = self._add_info(vector, rest, k)
        return vector

    def __repr__(self) -> str:
        name = self.envs[0].scenario.name if self.spec is None else self.spec.id
        return f"{type(self).__name__}({name}, num_envs={self.num_envs})"


_EVERY_STEP = ("action_mask", "invalid_action", "feedback")
"""Info keys a sub-env reports at every step (``invalid_action`` not after a reset)."""
_ABSENT = object()


def _stack(values: list[Any]) -> np.ndarray:
    """One info key's values across the sub-envs, batched as ``VectorEnv._add_info`` does."""
    first = values[0]
    if isinstance(first, np.ndarray):
        return np.stack(values)
    if type(first) in (int, float, bool):
        return np.array(values, dtype=type(first))
    array = np.empty(len(values), dtype=object)  # a Feedback is a Mapping: place it as is
    for k, value in enumerate(values):
        array[k] = value
    return array
