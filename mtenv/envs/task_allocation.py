"""The Gymnasium environment: allocate each arriving inference task to a (plan, device) pair."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections import deque
from collections.abc import Iterator, Mapping
from functools import cached_property
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
from mtenv.io.scenario_files import load_scenario, shipped_scenarios
from mtenv.zoo import N_LEVELS

if TYPE_CHECKING:
    from mtenv.render.viewer import Viewer

_MISS_EWMA = 0.05  # weight of the newest settled task in the recent SLO-miss rate (~20 tasks)
_RECENT_OUTCOMES = 40  # settled tasks kept for the rendered outcome strip


class Feedback(Mapping[str, np.ndarray]):
    """The tasks settled during one step, one entry per task in each equal-length array.

    A read-only mapping (``feedback["reward"]``) of numpy arrays:

    * ``action`` (int64): the action that served the task; ``reject_action`` if it was rejected;
    * ``reward`` (float64): what the task earned (:class:`~mtenv.core.reward.TaskReward`); they sum
      to the step's reward;
    * ``correct`` (bool): completed with the right answer, on time or not;
    * ``on_time`` (bool): completed by its deadline;
    * ``task_type`` (int64) and ``difficulty`` (int64): the task's type index and level;
    * ``decision_step`` (int64): the step of the episode (0 for the first ``step`` after
      ``reset``) that decided the task. Tasks arrive in order and each step decides one, so a
      learner can move a task's reward back to the decision that earned it.

    The arrays are built on first access, so a caller that never reads them costs the step
    nothing. A mapping rather than a ``dict`` so that vector envs, which stack equal-shape info
    arrays across envs, keep one :class:`Feedback` per env instead.
    """

    KEYS = ("action", "reward", "correct", "on_time", "task_type", "difficulty", "decision_step")

    __slots__ = ("_arrays", "_source")

    def __init__(self, tasks: list[Task], rewards: list[float], n_devices: int, reject: int):
        """Feedback on ``tasks`` (settled this step), which earned ``rewards``."""
        self._source: tuple[list[Task], list[float], int, int] | None = (
            tasks,
            rewards,
            n_devices,
            reject,
        )
        self._arrays: dict[str, np.ndarray] | None = None

    def _built(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            assert self._source is not None
            tasks, rewards, n_devices, reject = self._source
            rejected = TaskStatus.REJECTED
            ints = np.array(
                [
                    (
                        reject if t.status is rejected else t.plan * n_devices + t.device,
                        t.type,
                        t.difficulty,
                        t.id,
                    )
                    for t in tasks
                ],
                dtype=np.int64,
            ).reshape(-1, 4)
            flags = np.array([(t.correct, t.on_time) for t in tasks], dtype=bool).reshape(-1, 2)
            arrays = {
                "action": ints[:, 0],
                "reward": np.array(rewards, dtype=np.float64),
                "correct": flags[:, 0],
                "on_time": flags[:, 1],
                "task_type": ints[:, 1],
                "difficulty": ints[:, 2],
                "decision_step": ints[:, 3],
            }
            for array in arrays.values():
                array.flags.writeable = False
            self._arrays, self._source = arrays, None
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    @property
    def n_tasks(self) -> int:
        """How many tasks were settled."""
        return len(self._source[0]) if self._source is not None else len(self["action"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Feedback):
            return NotImplemented
        return all(np.array_equal(self[k], other[k]) for k in self.KEYS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Feedback({', '.join(f'{k}={self[k]!r}' for k in self.KEYS)})"

    def __getstate__(self) -> dict[str, np.ndarray]:
        return self._built()

    def __setstate__(self, arrays: dict[str, np.ndarray]) -> None:
        self._source, self._arrays = None, arrays


_NO_FEEDBACK = Feedback([], [], 1, 0)
_NO_FEEDBACK._built()


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
    always valid. An invalid action does not raise: the task is rejected and the step costs the
    scenario's ``invalid_action`` penalty on top.

    ## Observation Space

    A flat ``Box(0, clip, float32)`` whose entries are named by ``env.unwrapped.feature_names``:

    * ``task.type=<name>`` one-hot; ``task.priority`` (weight ÷ largest weight);
      ``task.difficulty`` (corruption level ÷ hardest level);
    * per device ``<dev>.queue`` (queued tasks ÷ max batch), ``<dev>.wait`` (expected wait ÷ the
      task's SLO), ``<dev>.free_memory`` (fraction), ``<dev>.resident=<model>`` (0/1),
      ``<dev>.utilization`` (busy fraction, exponentially averaged over ``ewma_tau_s``);
    * per action ``est:<plan>@<dev>``: expected completion time of the task under that action
      (wait + missing weight loads + batch latency) ÷ the task's SLO, so ≤ 1 means on time;
    * ``load.arrival_rate`` (recent arrivals per second ÷ the process's mean rate),
      ``load.slo_miss`` (recent fraction of late completions), ``episode.progress``.

    ## Rewards

    Given when a task's fate is settled, at the step after it happens (a rejection at once):
    ``priority × correct`` for an on-time right answer (``late_credit`` of that if late), minus
    the scenario's latency, SLO-miss, cost and energy penalties; ``-reject × priority`` for a
    rejection. See :class:`mtenv.core.reward.TaskReward`.

    ## Info

    Every ``reset`` and ``step`` info holds ``action_mask`` (above) and ``feedback``, a
    :class:`Feedback`: per task settled during the step, the action that served it, its reward,
    whether it was right and on time, its type and difficulty (empty after ``reset``). Its
    rewards sum to the step's reward; online learners (bandits) learn from it. ``step`` also
    says whether the action was ``invalid_action``.

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

    The episode is truncated once the scenario's ``episode_tasks`` tasks have arrived and been
    decided. The tasks still queued or running are then served to completion and their rewards
    credited in that last step, so every task ends completed (on time or late), dropped or
    rejected. It never terminates. ``info["metrics"]`` then holds the episode's metrics
    (accuracy, effective accuracy, SLO attainment, latency percentiles, throughput, goodput,
    reject rate, cost, energy, utilisation, plan mix, ...) and ``episode_return``.

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
        viewer: Viewer | None = None,
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
            if (
                isinstance(episode_tasks, bool)
                or not isinstance(episode_tasks, numbers.Integral)
                or episode_tasks < 1
            ):
                raise ValueError(
                    f"episode_tasks: expected an integer >= 1 or None, got {episode_tasks!r}"
                )
            loaded = loaded.model_copy(update={"episode_tasks": int(episode_tasks)})
        self.scenario = loaded
        self.render_mode = render_mode
        self.viewer = viewer
        self._own_viewer = viewer is None  # built here on the first render, dropped at close
        self._recent: deque[str] = deque(maxlen=_RECENT_OUTCOMES)
        self.settled: list[Task] = []
        """The tasks whose fate was settled during the last step (for recorders and tests;
        policies see only observations and masks)."""
        self._return = 0.0
        self._last_action = -1
        task_types = list(self.scenario.workload.task_types)
        self.engine = InferenceEngine(
            list(self.scenario.models),
            task_types,
            mode=inference or self.scenario.inference.mode,
            device=device or self.scenario.inference.device,
        )
        pools = self.engine.pools
        self.sim = Simulator(self.scenario, task_generator(self.scenario, pools), self.engine)
        self.reward_fn = TaskReward(self.scenario.reward)

        sim = self.sim
        self.n_plans, self.n_devices = len(sim.plans), len(sim.specs)
        self.reject_action = self.n_plans * self.n_devices
        self.action_space = spaces.Discrete(self.reject_action + 1)
        self.action_labels = [
            f"{plan.name}@{dev}" for plan in sim.plans for dev in sim.device_names
        ] + ["reject"]
        self.feature_names = self._feature_names()
        self.clip = float(self.scenario.observation.clip)
        self.observation_space = spaces.Box(
            0.0, self.clip, shape=(len(self.feature_names),), dtype=np.float32
        )
        self._tau = self.scenario.observation.ewma_tau_s
        self._max_batch = np.array(
            [e.max_batch for e in self.scenario.device_entries()], dtype=float
        )
        self._max_queue = np.array([e.max_queue for e in self.scenario.device_entries()])
        self._max_priority = float(sim.generator.priority_weights.max())
        self._mean_rate = sim.generator.arrivals.mean_rate
        static_ok = sim.plan_serves.T[:, :, None] & sim.plan_fits[None, :, :]  # [T, P, D]
        self._type_masks = [np.append(ok.ravel(), True) for ok in static_ok]
        self._mask = self._reject_only()
        self._task: Task | None = None
        self._clairvoyant: tuple[Task | None, np.ndarray] = (None, np.zeros(0, dtype=bool))
        self._done = True
        self._layout()

    # --- Gymnasium API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._task = self.sim.reset(self.np_random)
        self._done = False
        self._return = 0.0
        self._last_time = 0.0
        self._last_busy = np.zeros(self.n_devices)
        self._util = np.zeros(self.n_devices)
        self._seen_residency = -1
        self._rate = self._mean_rate
        self._last_arrival = self._task.arrival
        self._miss = 0.0
        self._last_action = -1
        self._recent.clear()
        self.settled = []
        obs = self._observation()
        self._update_mask()
        if self.render_mode == "human":
            self.render()
        return obs, {"action_mask": self._mask_int8(), "feedback": _NO_FEEDBACK}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done or self._task is None:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        task, sim = self._task, self.sim
        action = int(action)
        self._last_action = action
        invalid = not (0 <= action <= self.reject_action and self._mask[action])
        if invalid or action == self.reject_action:
            sim.reject(task, invalid=invalid)
        else:
            sim.dispatch(task, action // self.n_devices, action % self.n_devices)

        next_task = sim.advance()
        truncated = next_task is None
        if truncated:
            sim.drain()
            self._done = True
        else:
            self._track_load(next_task)
            self._task = next_task

        self.settled = sim.take_finished()
        rewards = []
        for done in self.settled:
            rewards.append(self.reward_fn(done))
            self._recent.append(outcome_of(done))
            if done.status is not TaskStatus.REJECTED:
                self._miss += _MISS_EWMA * (done.finished > done.deadline) - _MISS_EWMA * self._miss
        reward = sum(rewards, 0.0)
        self._return += reward

        obs = self._observation()
        self._update_mask()
        info: dict[str, Any] = {
            "action_mask": self._mask_int8(),
            "invalid_action": invalid,
            "feedback": Feedback(self.settled, rewards, self.n_devices, self.reject_action)
            if self.settled
            else _NO_FEEDBACK,
        }
        if truncated:
            info["metrics"] = {**sim.episode_metrics(), "episode_return": self._return}
        if self.render_mode == "human":
            self.render()
        return obs, reward, False, truncated, info

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the valid actions for the task being decided (reject always valid)."""
        return self._mask.copy()

    @cached_property
    def catalog(self) -> ActionCatalog:
        """Static public facts about the actions (:class:`~mtenv.envs.catalog.ActionCatalog`): each
        plan's accuracy per task type and difficulty level on the zoo's validation split, and
        each (plan, device) pair's expected cost and energy per task. What a deployed system
        knows from its model card and price list; built on first use, then kept."""
        return build_catalog(self.sim, self.engine, self.scenario.reward)

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
            self.sim, task, label, self._recent, self.scenario.name, episode_return=self._return
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

    def _track_load(self, task: Task) -> None:
        """Exponentially decayed arrival rate: each arrival adds 1/τ, decaying with time."""
        dt = task.arrival - self._last_arrival
        self._rate = self._rate * math.exp(-dt / self._tau) + 1.0 / self._tau
        self._last_arrival = task.arrival

    def _feature_names(self) -> list[str]:
        sim = self.sim
        names = [f"task.type={t}" for t in sim.task_types]
        names += ["task.priority", "task.difficulty"]
        for dev in sim.device_names:
            names += [f"{dev}.queue", f"{dev}.wait", f"{dev}.free_memory"]
            names += [f"{dev}.resident={m}" for m in sim.models]
            names.append(f"{dev}.utilization")
        names += [f"est:{label}" for label in self.action_labels[:-1]]
        names += ["load.arrival_rate", "load.slo_miss", "episode.progress"]
        return names

    def __getstate__(self) -> dict[str, Any]:
        # A pygame viewer holds surfaces that do not pickle; the copy builds its own.
        state = self.__dict__.copy()
        if self._own_viewer:
            state["viewer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickling copies numpy views apart; rebuild them over a fresh buffer.
        self.__dict__.update(state)
        self._layout()

    def _layout(self) -> None:
        """Views into one reusable buffer for each block of the observation."""
        sim = self.sim
        n_types, n_models = len(sim.task_types), len(sim.models)
        self._obs = np.zeros(len(self.feature_names))
        self._type_onehot = np.eye(n_types)
        start = n_types + 2
        width = 4 + n_models
        self._per_dev = self._obs[start : start + self.n_devices * width].reshape(-1, width)
        start += self._per_dev.size
        self._est = self._obs[start : start + self.n_plans * self.n_devices].reshape(
            self.n_plans, self.n_devices
        )
        self._global_at = start + self._est.size
        self._inv_max_batch = 1.0 / self._max_batch
        self._seen_residency = -1

    def _observation(self) -> np.ndarray:
        sim, task, obs = self.sim, self._task, self._obs
        n_types = len(self._type_onehot)
        inv_slo = 1.0 / max(task.deadline - task.arrival, 1e-9)
        obs[:n_types] = self._type_onehot[task.type]
        obs[n_types] = task.priority / self._max_priority
        obs[n_types + 1] = task.difficulty / max(N_LEVELS - 1, 1)

        now = sim.now
        dt = now - self._last_time
        if dt > 0:
            busy = sim.busy_time()
            decay = math.exp(-dt / self._tau)
            self._util *= decay
            self._util += (busy - self._last_busy) * ((1.0 - decay) / dt)
            self._last_time, self._last_busy = now, busy
        if self._seen_residency != sim.residency_version:
            self._seen_residency = sim.residency_version
            self._per_dev[:, 2] = sim.free_memory()
            self._per_dev[:, 3:-1] = sim.resident
            self._est_base = sim.missing_load_s() + sim.plan_alpha + sim.plan_beta
        wait = sim.expected_wait()
        per_dev = self._per_dev
        per_dev[:, 0] = sim.queue_len * self._inv_max_batch
        per_dev[:, 1] = wait * inv_slo
        per_dev[:, -1] = self._util
        np.add(self._est_base, wait, out=self._est)
        self._est *= inv_slo
        g = self._global_at
        obs[g] = self._rate / self._mean_rate if self._mean_rate > 0 else 0.0
        obs[g + 1] = self._miss
        obs[g + 2] = sim.arrived / sim.episode_tasks
        return np.minimum(obs, self.clip, dtype=np.float32)

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
