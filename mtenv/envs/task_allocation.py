"""The Gymnasium environment: allocate each arriving inference task to a (plan, device) pair."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mtenv.core.inference import InferenceEngine
from mtenv.core.reward import TaskReward
from mtenv.core.schema import Scenario
from mtenv.core.simulator import Simulator
from mtenv.core.snapshot import outcome_of, take_snapshot
from mtenv.core.tasks import Task, TaskStatus
from mtenv.core.workload import task_generator
from mtenv.envs.catalog import ActionCatalog, build_catalog
from mtenv.envs.feedback import NO_FEEDBACK, Feedback
from mtenv.envs.observation import ObservationLayout, ObservationWriter
from mtenv.io.scenario_files import load_scenario, shipped_scenarios

if TYPE_CHECKING:
    from mtenv.render.viewer import Viewer

_RECENT_OUTCOMES = 40  # settled tasks kept for the rendered outcome strip


def positive_int_arg(name: str, value: Any, optional: bool = False) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool); ``ValueError`` naming
    ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        none = " or None" if optional else ""
        raise ValueError(f"{name}: expected an integer >= 1{none}, got {value!r}")
    return int(value)


def is_load_scale(value: Any) -> bool:
    """Whether ``value`` is a valid ``load_scale``: a finite number > 0 (not a bool)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value > 0
    )


class TaskAllocationEnv(gym.Env[np.ndarray, np.int64]):
    """Route a stream of inference tasks to real PyTorch models on a simulated GPU cluster.

    ## Description

    Tasks (real 8×8 digit images, some corrupted to make them hard) arrive by the scenario's
    arrival process. At each arrival the agent picks a plan (which of the zoo's models serve the
    task) and a device, or rejects the task. Devices batch their queues dynamically, load models
    on demand (evicting the least recently used when memory is short), and run each batch as one
    real batched forward pass: whether a task is answered correctly is decided by the real model
    on the real input. Simulated time comes from per-(model, device) latency profiles, so episodes
    are deterministic for a seed.

    ## Action Space

    ``Discrete(n_plans · n_devices + 1)``: action ``p · n_devices + d`` serves the task with plan
    ``p`` on device ``d``; the last action rejects it. A plan is one model, an ensemble, a
    cascade or a shared-trunk multi-task model (see :mod:`mtenv.core.plans`).
    ``env.unwrapped.action_labels`` names every action. The valid actions are given as an
    ``np.int8`` mask in ``info["action_mask"]`` and as booleans by :meth:`action_masks` (for
    sb3-contrib's MaskablePPO). A plan is invalid on a device whose memory cannot hold its
    models, for a task type it does not serve, or while the device's queue is full. Reject is
    always valid. An action the mask forbids does not raise: the task is rejected and the step
    costs the scenario's ``invalid_action`` penalty on top. Anything that is not an integer of
    the action space (a float, a bool, a string, an integer out of range) raises ``TypeError``
    or ``ValueError`` and leaves the env as it was.

    ## Observation Space

    A flat ``Box(0, clip, float32)`` whose entries are named by ``env.unwrapped.feature_names``:

    * ``task.type=<name>`` one-hot; ``task.priority`` (weight ÷ largest weight);
      ``task.difficulty`` (corruption level ÷ hardest level);
    * per device ``<dev>.queue`` (queued tasks ÷ max batch), ``<dev>.wait`` (expected wait ÷ the
      task's SLO), ``<dev>.free_memory`` (fraction), ``<dev>.resident=<model>`` (0/1),
      ``<dev>.utilization`` (busy fraction, exponentially averaged over ``ewma_tau_s`` and
      bias-corrected, so a short episode reads its busy fraction so far);
    * per action ``est:<plan>@<dev>``: expected completion time of the task under that action
      (wait + missing weight loads + batch latency) ÷ the task's SLO, so ≤ 1 means on time;
      ``load:<plan>@<dev>``: the part of it spent loading weights that are not resident;
      ``cost:<plan>@<dev>``: the cost and energy penalty the action takes off the reward
      (``catalog.penalty``) ÷ the largest priority weight;
    * per plan ``accuracy:<plan>``: the card's accuracy of the plan for the task's type and
      difficulty level (``catalog.accuracy``; 0 where it does not serve the type);
    * ``load.arrival_rate`` (recent arrivals per second, averaged and corrected alike, ÷ the
      scenario's mean rate at 1× load: about 2 at ``load_scale=2``),
      ``load.slo_miss`` (recent fraction of late completions), ``episode.progress``.

    ## Rewards

    Given when a task's fate is settled, at the step after it happens (a rejection at once):
    ``priority × correct`` for an on-time right answer (``late_credit`` of that if late), minus
    the scenario's latency, SLO-miss, cost and energy penalties; ``-reject × priority`` for a
    rejection. See :class:`mtenv.core.reward.TaskReward`.

    ## Info

    Every ``reset`` and ``step`` info holds ``action_mask`` (above) and ``feedback``, a
    :class:`~mtenv.envs.feedback.Feedback`: per task settled during the step, the action that
    served it, its reward, whether it was right and on time, its type and difficulty, and the
    step that decided it (empty after ``reset``). Its rewards sum to the step's reward; online
    learners (bandits) and PPO's decision credit learn from it. ``step`` also says whether the
    action was ``invalid_action``.

    ## Static descriptions

    Policies are built on the env and may read, besides the spaces: ``feature_names``,
    ``action_labels`` and ``catalog``, an :class:`~mtenv.envs.catalog.ActionCatalog` of public facts
    about the actions (each plan's accuracy by task type and difficulty level on the zoo's
    validation split; each (plan, device) pair's expected cost, energy and reward penalty per
    task): what a deployed system knows from its model card and price list.
    :meth:`clairvoyant_correct` is different: it reads hidden state (whether each plan would
    answer the current task right) and exists only for the clairvoyant oracle, an upper bound.

    ## Starting State

    Empty queues; devices hold the models the scenario lists as ``resident``. The first task has
    arrived.

    ## Episode End

    The episode terminates once the scenario's ``episode_tasks`` tasks have arrived and been
    decided: the workload is exhausted, so there is nothing to bootstrap from. The tasks still
    queued or running are then served to completion and their rewards credited in that last
    step, so every task ends completed (on time or late), dropped or rejected.
    ``info["metrics"]`` then holds the episode's metrics (accuracy, effective accuracy, SLO
    attainment, latency percentiles, throughput, goodput, reject rate, cost, energy,
    utilisation, plan mix, ...) and ``episode_return``. The env never truncates; a
    ``max_episode_steps`` given to ``gym.make`` does (Gymnasium's ``TimeLimit``), without metrics.

    ## Arguments

    * ``scenario`` (required): a shipped scenario name (``"quickstart"``), a YAML path, or a
      :class:`~mtenv.core.schema.Scenario`. The per-scenario ids pass it for you;
      ``mtenv/TaskAllocation-v0`` needs it (``ValueError`` listing the shipped names otherwise).
    * ``render_mode``: ``None``, ``"rgb_array"`` (:meth:`render` returns a 720×1280×3 uint8
      frame), ``"human"`` (a window, drawn at every ``reset``/``step``) or ``"ansi"`` (a text
      snapshot of the cluster). The two pygame modes need ``pip install "mtenv-alloc[render]"``.
    * ``inference``: ``"live"`` (real forward passes at every batch) or ``"memoized"`` (each pool
      input's outputs cached per model; identical trajectories); ``None`` takes the scenario's.
    * ``device``: where the models really run, ``"cpu"`` or ``"cuda"``; ``None`` takes the
      scenario's.
    * ``episode_tasks``: tasks per episode (an integer ≥ 1), overriding the scenario's
      ``episode_tasks``; ``None`` takes the scenario's. Short episodes of any registered id:
      ``gym.make("mtenv/EdgeBurst-v0", episode_tasks=50)``.
    * ``load_scale``: multiplies the scenario's arrival rate (``workload.load_scale``), e.g.
      ``2.0`` for twice the load; ``None`` takes the scenario's.
    * ``engine``: an :class:`~mtenv.core.inference.InferenceEngine` to run the models with,
      shared with other envs (a vector env's sub-envs share one); it must hold the scenario's
      models and task types, and then decides ``inference`` and ``device``. ``None`` builds one.
    * ``viewer``: an object with ``render(snapshot)`` and ``close()`` (see
      :class:`mtenv.render.viewer.Viewer`) to draw frames with; ``None`` builds a pygame
      :class:`~mtenv.render.viewer.Viewer` on the first render.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array", "ansi"], "render_fps": 30}  # noqa: RUF012 (Gymnasium's API)

    def __init__(
        self,
        scenario: str | Path | Scenario | None = None,
        render_mode: str | None = None,
        inference: str | None = None,
        device: str | None = None,
        episode_tasks: int | None = None,
        load_scale: float | None = None,
        viewer: Viewer | None = None,
        engine: InferenceEngine | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: expected one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        if scenario is None:
            raise ValueError(
                "scenario: required, a shipped name ("
                + ", ".join(shipped_scenarios())
                + "), a YAML path or a Scenario; or make a per-scenario id such as "
                "mtenv/Quickstart-v0"
            )
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        if episode_tasks is not None:
            episode_tasks = positive_int_arg("episode_tasks", episode_tasks, optional=True)
            loaded = loaded.model_copy(update={"episode_tasks": episode_tasks})
        if load_scale is not None:
            if not is_load_scale(load_scale):
                raise ValueError(f"load_scale: expected a number > 0 or None, got {load_scale!r}")
            workload = loaded.workload.model_copy(update={"load_scale": float(load_scale)})
            loaded = loaded.model_copy(update={"workload": workload})
        self.scenario = loaded
        self.render_mode = render_mode
        self.viewer = viewer
        self._own_viewer = viewer is None  # built here on the first render, dropped at close
        self._recent: deque[Task] = deque(maxlen=_RECENT_OUTCOMES)
        self.settled: list[Task] = []
        """The tasks whose fate was settled during the last step (for recorders and tests;
        policies see only observations and masks)."""
        self._return = 0.0
        self._last_action = -1
        task_types = list(self.scenario.workload.task_types)
        zoo = self.scenario.zoo_models()
        self.engine = engine or InferenceEngine(
            list(self.scenario.models),
            task_types,
            mode=inference or self.scenario.inference.mode,
            device=device or self.scenario.inference.device,
            zoo=zoo,
        )
        if self.engine.zoo is not zoo:
            raise ValueError(
                f"engine: runs zoo {self.engine.zoo.name!r}, the scenario names {zoo.name!r}"
            )
        generator = task_generator(self.scenario, self.engine.pools, zoo.n_levels)
        self.sim = Simulator(self.scenario, generator, self.engine)
        self.reward_fn = TaskReward(self.scenario.reward, self.sim.task_types)

        sim = self.sim
        self.n_plans, self.n_devices = len(sim.plans), len(sim.specs)
        self.reject_action = self.n_plans * self.n_devices
        self.action_space = spaces.Discrete(self.reject_action + 1)
        self.action_labels = [
            f"{plan.name}@{dev}" for plan in sim.plans for dev in sim.device_names
        ] + ["reject"]
        layout = ObservationLayout.build(
            sim.task_types, sim.device_names, sim.models, [p.name for p in sim.plans], zoo.n_levels
        )
        self.feature_names = list(layout.names)
        self.catalog: ActionCatalog = build_catalog(sim, self.engine, self.scenario.reward)
        """Static public facts about the actions (:class:`~mtenv.envs.catalog.ActionCatalog`):
        each plan's accuracy per task type and difficulty level on the zoo's validation split,
        and each (plan, device) pair's expected cost and energy per task. What a deployed
        system knows from its model card and price list; the observation carries the part
        that concerns the task being decided."""
        self.observation = ObservationWriter(sim, layout, self.catalog)
        self.observation_space = spaces.Box(
            0.0, self.observation.clip, shape=(layout.size,), dtype=np.float32
        )
        self._max_queue = np.array([e.max_queue for e in self.scenario.device_entries()])
        static_ok = sim.plan_serves.T[:, :, None] & sim.plan_fits[None, :, :]  # [T, P, D]
        self._type_masks = [np.append(ok.ravel(), True) for ok in static_ok]
        self._mask = self._reject_only()
        self._task: Task | None = None
        self._clairvoyant: tuple[Task | None, np.ndarray] = (None, np.zeros(0, dtype=bool))
        self._done = True

    # --- Gymnasium API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._task = self.sim.reset(self.np_random)
        self._done = False
        self._return = 0.0
        self._last_action = -1
        self._recent.clear()
        self.settled = []
        self.observation.reset(self._task)
        obs = self.observation.write(self._task)
        self._update_mask()
        if self.render_mode == "human":
            self.render()
        return obs, {"action_mask": self._mask_int8(), "feedback": NO_FEEDBACK}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        action = self._checked(action)
        task, sim = self._task, self.sim
        self._last_action = action
        if self._is_dispatch(action):
            invalid = False
            sim.dispatch(task, action // self.n_devices, action % self.n_devices)
        else:
            invalid = action != self.reject_action
            sim.reject(task, invalid=invalid)

        next_task = sim.advance()
        terminated = next_task is None  # the workload is exhausted: no task is left to decide
        if terminated:
            sim.drain()
            self._done = True
        else:
            self.observation.arrived(next_task)
            self._task = next_task

        self.settled = settled = sim.take_finished()
        rewards = [self.reward_fn(done) for done in settled]
        self._recent.extend(settled)
        for done in settled:
            if done.status is not TaskStatus.REJECTED:
                self.observation.settled(done, late=done.finished > done.deadline)
        reward = sum(rewards, 0.0)
        self._return += reward

        obs = self.observation.write(self._task)
        self._update_mask()
        info: dict[str, Any] = {
            "action_mask": self._mask_int8(),
            "invalid_action": invalid,
            "feedback": Feedback(self.settled, rewards, self.n_devices, self.reject_action)
            if self.settled
            else NO_FEEDBACK,
        }
        if terminated:
            info["metrics"] = {**sim.episode_metrics(), "episode_return": self._return}
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, False, info

    def _checked(self, action: Any) -> int:
        """``action`` as an int, if it is an integer of the action space (a Python or numpy
        integer, or a 0-d integer array); ``TypeError`` or ``ValueError`` saying so otherwise.
        Booleans and floats are refused rather than truncated."""
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action[()]
        if isinstance(action, bool | np.bool_) or not isinstance(action, numbers.Integral):
            shown = repr(action)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise TypeError(
                f"action: expected an integer in [0, {self.reject_action}] (numpy integers "
                f"included), got {shown} of type {type(action).__name__}"
            )
        if not 0 <= action <= self.reject_action:
            raise ValueError(
                f"action: expected an integer in [0, {self.reject_action}] (the last rejects), "
                f"got {int(action)}"
            )
        return int(action)

    def planned(self, action: int) -> tuple[Task, int] | None:
        """The task being decided and the plan ``action`` would serve it with; ``None`` when
        the action rejects it (reject, or an action the mask forbids). A vector env reads it to
        run the models of every sub-env's next dispatch in one forward pass."""
        task = self._task
        if self._done or task is None or not self._is_dispatch(action):
            return None
        return task, int(action) // self.n_devices

    def _is_dispatch(self, action: int) -> bool:
        return 0 <= action < self.reject_action and bool(self._mask[action])

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the valid actions for the task being decided (reject always valid)."""
        return self._mask.copy()

    def clairvoyant_correct(self) -> np.ndarray:
        """HIDDEN STATE, for upper bounds only: would each plan answer the task being decided
        correctly? ``[n_plans]`` bool, False for plans that do not serve its type.

        Computed by running every plan on the task's real input and reading its true label,
        which no deployable policy can know: the engine (memoised when the env is), the online
        ensembles' weights as they are now (they may still change before the task's batch
        runs), the cascades' confidence rule. Only the clairvoyant oracle
        (:class:`mtenv.agents.oracle.OraclePolicy`) calls it, in-process; it is not part of the
        Gymnasium API and never reaches an observation. All False once the episode is over.
        """
        task = self._task
        if self._done or task is None:
            return np.zeros(self.n_plans, dtype=bool)
        cached_task, cached = self._clairvoyant
        if cached_task is not task:
            serves = self.sim.plan_serves[:, task.type]
            cached = np.array(
                [bool(serves[p]) and self._answers_correctly(task, p) for p in range(self.n_plans)]
            )
            self._clairvoyant = (task, cached)
        return cached.copy()

    def _answers_correctly(self, task: Task, plan: int) -> bool:
        """Serve a copy of ``task`` with ``plan`` as the simulator would, right now."""
        runner, layout = self.sim.runner, self.sim.layout
        probe = dataclasses.replace(
            task, plan=plan, stage=layout.first[plan], escalate=False, member_answers=None
        )
        runner.run(probe.stage, [probe])
        if probe.escalate:
            probe.stage = layout.escalation[plan]
            runner.run(probe.stage, [probe])
        return probe.answer == probe.label

    def _reject_only(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[self.reject_action] = True
        return mask

    def _update_mask(self) -> None:
        """The mask of the current state: the task type's static mask, less full queues."""
        if self._done or self._task is None:
            self._mask = self._reject_only()
            return
        mask = self._type_masks[self._task.type]
        if self.sim.full_queues:
            room = self.sim.queue_len < self._max_queue
            mask = mask & np.append(np.tile(room, self.n_plans), True)
        self._mask = mask

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array', "
                "'human' or 'ansi'."
            )
            return None
        if self.render_mode == "ansi":
            return self._ansi()
        if self._done and self._task is None:
            raise RuntimeError("render() before reset(): call reset() first")
        if self.viewer is None:
            from mtenv.render.viewer import Viewer

            self.viewer = Viewer(self.render_mode, self.metadata["render_fps"])
            self._own_viewer = True
        return self.viewer.render(self.snapshot())

    def snapshot(self):
        """A frozen copy of what a rendered frame shows (:class:`mtenv.core.snapshot.Snapshot`)."""
        label = self.action_labels[self._last_action] if self._last_action >= 0 else ""
        task = None if self._done else self._task
        return take_snapshot(
            self.sim,
            task,
            label,
            [outcome_of(done) for done in self._recent],
            self.scenario.name,
            episode_return=self._return,
        )

    def close(self) -> None:
        """Close the viewer, if one was built; a later render builds a new one. Safe to repeat."""
        if self.viewer is not None:
            self.viewer.close()
            if self._own_viewer:
                self.viewer = None

    # --- internals ---------------------------------------------------------------------------

    def _mask_int8(self) -> np.ndarray:
        return self._mask.astype(np.int8)

    def __getstate__(self) -> dict[str, Any]:
        # A pygame viewer holds surfaces that do not pickle; the copy builds its own.
        state = self.__dict__.copy()
        if self._own_viewer:
            state["viewer"] = None
        return state

    def _ansi(self) -> str:
        sim, task = self.sim, self._task
        lines = [
            f"{self.scenario.name}  t={sim.now * 1e3:9.2f} ms  "
            f"tasks={sim.arrived}/{sim.episode_tasks}"
        ]
        if task is not None and not self._done:
            lines.append(
                f"deciding task {task.id}: type={sim.task_types[task.type]} "
                f"difficulty=L{task.difficulty} priority={task.priority:g} "
                f"slo={1e3 * (task.deadline - task.arrival):.1f} ms"
            )
        if self._last_action >= 0:
            lines.append(f"last action: {self.action_labels[self._last_action]}")
        for dev in sim.devices:
            resident = ",".join(sim.models[m] for m in dev.resident) or "-"
            state = "busy" if dev.busy else "idle"
            lines.append(
                f"  {dev.name:>12} [{state}] queue={dev.n_queued:3d} "
                f"mem={dev.used_bytes / dev.spec.memory_bytes:5.1%} resident={resident}"
            )
        return "\n".join(lines)
