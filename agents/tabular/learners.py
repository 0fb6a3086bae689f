"""Tabular Q-learning, SARSA and Expected SARSA over a discretised observation.

All three keep one value per (state, action), the state coming from a
:class:`~mtenv.agents.tabular.discretiser.Discretiser`, and
differ only in the value of the state they
bootstrap from::

    Q(s, a) ← Q(s, a) + α · [G − Q(s, a)]
    G = r₁ + γ·r₂ + … + γⁿ⁻¹·rₙ + γⁿ · V(sₙ)        (n = n_step; n = 1: G = r + γ·V(s'))

    Q-learning       V(s) = max over the valid a of Q(s, a)
    SARSA            V(s) = Q(s, a), a the action the ε-greedy behaviour takes there
    Expected SARSA   V(s) = (1 − ε) · max_valid Q(s, ·) + ε · mean_valid Q(s, ·),
                     the expectation under the ε-greedy policy over the valid actions of s

With ``n_step: 1`` (the default) this is the textbook one-step rule of each method. A larger n
(uncorrected n-step returns, as in n-step DQN; for Q-learning they value the behaviour's next
n − 1 actions rather than greedy ones) is there for delayed rewards, below.

**Masks.** Exploration and greedy choice range over the valid actions only (the env's
``action_mask``), so an agent never picks a masked action, and a bootstrap reads only the valid
actions of its state. Greedy ties (exactly equal Q-values, e.g. in a state never visited) are
broken uniformly at random by a seeded generator: while learning, the run's exploration
generator; while acting, the policy's ``rng``, reseeded by :meth:`~TabularLearner.reset`; so a
seed fixes every choice.

**Episode ends.** On termination nothing follows, so the returns of the last transitions stop
there; on truncation (the episode was cut, the process goes on) they bootstrap from the final
state, over its valid actions. Every transition, the final ones included, is learned once.

**Delayed rewards.** The env pays a task's reward when its fate is settled, some steps after it
was allocated (a few on the small scenarios, hundreds on ``large_cluster``). Read as Gymnasium
reports it (``credit: settle``), a one-step update credits mostly other decisions' outcomes, and
the greedy choice between plans came out a lottery across seeds on several shipped scenarios.
With ``credit: decision`` (the default) each transition's reward is the reward of the task its
step decided, read from ``info["feedback"]`` (``decision_step``); the transition waits until its
task has settled, so every action is valued by its own outcome plus the discounted value of the
state it led to.

**Schedules** (hyperparameters, see :class:`TabularHyperparameters` in
:mod:`mtenv.agents.tabular.hyperparameters`): ε linear over the first part of the run, α linear
over the run or per (state, action) by visit count.

**Files.** ``save`` writes ``agent.npz`` and ``load`` reads it back, checking every field;
``learn`` writes ``run_dir/checkpoints/tabular.npz`` atomically after every episode, from which
``resume`` continues a killed run to the bit-identical Q-table of an uninterrupted one. The
format is in :mod:`mtenv.agents.tabular.storage`.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from mtenv.agents.interfaces import (
    AgentLoadError,
    BasePolicy,
    EnvConfig,
    TrainingCallback,
    decided_rewards,
)
from mtenv.agents.tabular.discretiser import Discretiser, DiscretiserError
from mtenv.agents.tabular.hyperparameters import TabularHyperparameters, VisitCountStepSize
from mtenv.agents.tabular.storage import (
    AGENT_FIELDS,
    AGENT_FILE,
    CHECKPOINT_FIELDS,
    CHECKPOINT_FILE,
    FORMAT,
    FORMAT_VERSION,
    check_kind,
    check_names,
    json_field,
    read_fields,
    write_npz,
)


@dataclass
class _Transition:
    """One step, waiting for its reward (under decision credit, until its task settles)."""

    state: int
    action: int
    reward: float | None
    next_state: int = -1
    next_mask: np.ndarray | None = None
    next_action: int = -1
    terminated: bool = False


class TabularLearner(BasePolicy):
    """What the three learners share: the table, ε-greedy over valid actions, the training loop,
    checkpoints and files. Subclasses only say how they value the next state
    (:meth:`next_value`).

    Args:
        env: a built env of the scenario, read for its spaces, ``feature_names`` and
            ``action_labels`` (``learn`` builds its own from an :class:`EnvConfig`).
        seed: seeds the tie-breaks of :meth:`act` (training is seeded by ``learn``'s seed).
        **hyperparameters: see :class:`TabularHyperparameters`.
    """

    kind: ClassVar[str] = "tabular"
    name: ClassVar[str] = "tabular"
    value_label: ClassVar[str] = "Q"
    _chooses_before_update: ClassVar[bool] = False
    """SARSA needs the next action before it can update; the others choose it after."""

    def __init__(self, env: gym.Env, seed: int | None = None, **hyperparameters: Any):
        super().__init__(env, seed)
        self.config = TabularHyperparameters.from_dict(hyperparameters)
        self.hyperparameters: dict[str, Any] = self.config.to_dict()
        base = env.unwrapped
        self.feature_names: list[str] = list(base.feature_names)
        self.action_labels: list[str] = list(base.action_labels)
        self.n_actions = int(env.action_space.n)
        self.discretiser = Discretiser(self.config.discretiser, self.feature_names, self.n_actions)
        shape = (self.discretiser.n_states, self.n_actions)
        self.q = np.full(shape, self.config.q_init, dtype=np.float64)
        self.visits = np.zeros(shape, dtype=np.int64)
        self.steps = 0
        self.episodes = 0
        self._run_seed: int | None = None
        self._total_steps = 1
        self._explore = np.random.default_rng(seed)

    # --- acting --------------------------------------------------------------------------------

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        """The greedy valid action of the observation's state (seeded tie-break)."""
        return _greedy(self.q[self.discretiser.state(observation)], mask, self.rng)

    def action_values(self, observation: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Q of the observation's state, NaN on the actions the mask forbids."""
        values = self.q[self.discretiser.state(observation)].copy()
        values[np.asarray(mask) == 0] = np.nan
        return values

    # --- the update ----------------------------------------------------------------------------

    def next_value(
        self, next_state: int, next_mask: np.ndarray, next_action: int, epsilon: float
    ) -> float:  # pragma: no cover - every learner overrides it
        raise NotImplementedError

    def update(
        self,
        state: int,
        action: int,
        reward: float,
        next_state: int,
        next_mask: np.ndarray,
        next_action: int,
        terminated: bool,
        epsilon: float,
        discount: float | None = None,
    ) -> float:
        """One TD update of ``Q[state, action]``; returns the TD error.

        ``terminated`` drops the bootstrap; a truncated transition is passed with
        ``terminated=False`` and bootstraps from ``next_state`` over ``next_mask``.
        ``next_action`` is the behaviour's next action (read by SARSA only) and ``epsilon`` the
        current exploration rate (read by Expected SARSA only). For an n-step return,
        ``reward`` is the discounted sum of the n rewards, ``next_state`` the state n steps on
        and ``discount`` γⁿ (``None``: γ, the one-step rule).
        """
        target = reward
        if not terminated:
            factor = self.config.gamma if discount is None else discount
            target += factor * self.next_value(next_state, next_mask, next_action, epsilon)
        visits = int(self.visits[state, action]) + 1
        self.visits[state, action] = visits
        alpha = self._alpha(visits)
        error = target - float(self.q[state, action])
        self.q[state, action] += alpha * error
        return error

    def _alpha(self, visits: int) -> float:
        schedule = self.config.alpha
        if isinstance(schedule, VisitCountStepSize):
            return schedule.at(visits)
        return schedule.at(self.steps, self._total_steps)

    def _behaviour(self, state: int, mask: np.ndarray, epsilon: float) -> int:
        """ε-greedy over the valid actions, from the run's exploration generator."""
        rng = self._explore
        if rng.random() < epsilon:
            valid = np.flatnonzero(mask)
            return int(valid[rng.integers(len(valid))])
        return _greedy(self.q[state], mask, rng)

    # --- training ------------------------------------------------------------------------------

    def learn(
        self,
        env_config: EnvConfig,
        total_steps: int,
        seed: int,
        run_dir: Path | None,
        callback: TrainingCallback | None = None,
    ) -> None:
        """Train on whole episodes until ``total_steps`` env steps in all are done (the last
        episode runs to its end). Episode ``i`` of the run is reset with seed ``seed + i``;
        after each one the callback hears of it, a checkpoint is written (unless ``run_dir`` is
        ``None``), and the callback hears that too."""
        if self._run_seed is None:
            self._run_seed = int(seed)
            self._explore = np.random.default_rng(seed)
        elif int(seed) != self._run_seed:
            raise ValueError(
                f"seed: this run was started with seed {self._run_seed}; "
                f"continue it with the same seed, not {seed}"
            )
        self._total_steps = max(int(total_steps), 1)
        env = env_config.make()
        try:
            self._check_same_spaces(env)
            while self.steps < total_steps:
                episode_return = self._train_episode(env, self._run_seed + self.episodes)
                self.episodes += 1
                if callback is not None:
                    callback.on_episode(self.steps, episode_return)
                if run_dir is not None:
                    self._write_checkpoint(Path(run_dir))
                    if callback is not None:
                        callback.on_checkpoint(self.steps)
        finally:
            env.close()

    def _train_episode(self, env: gym.Env, seed: int) -> float:
        """One ε-greedy episode, learning every transition, the final ones included.

        Transitions wait in a buffer until their n-step return is known (under decision
        credit: until the tasks of the n steps have settled): the oldest is then updated, and at
        the episode's end the rest are updated with the rewards they have (bootstrapping from
        the final state unless terminated)."""
        state_of = self.discretiser.state
        epsilon_at = self.config.epsilon.at
        total, n = self._total_steps, self.config.n_step
        by_decision = self.config.credit == "decision"
        pending: deque[_Transition] = deque()
        first = 0  # the decision step of pending[0]
        observation, info = env.reset(seed=seed)
        state, mask = state_of(observation), info["action_mask"]
        epsilon = epsilon_at(self.steps, total)
        action = self._behaviour(state, mask, epsilon)
        episode_return = 0.0
        while True:
            observation, reward, terminated, truncated, info = env.step(action)
            self.steps += 1
            episode_return += float(reward)
            step = _Transition(state, action, None if by_decision else float(reward))
            pending.append(step)
            if by_decision:
                for d, r in decided_rewards(info["feedback"]):
                    if d >= first:  # an earlier one was updated when its episode ended
                        waiting = pending[d - first]
                        waiting.reward = (waiting.reward or 0.0) + r
            next_state, next_mask = state_of(observation), info["action_mask"]
            step.next_state, step.next_mask, step.terminated = next_state, next_mask, terminated
            epsilon = epsilon_at(self.steps, total)
            next_action = -1
            if self._chooses_before_update and not terminated:
                next_action = self._behaviour(next_state, next_mask, epsilon)
            step.next_action = next_action
            ended = bool(terminated or truncated)
            while pending and (ended or _ready(pending, n)):
                self._update_oldest(pending, epsilon)
                first += 1
            if ended:
                return episode_return
            if not self._chooses_before_update:
                next_action = self._behaviour(next_state, next_mask, epsilon)
            state, mask, action = next_state, next_mask, next_action

    def _update_oldest(self, pending: deque[_Transition], epsilon: float) -> None:
        """Update the oldest pending transition with the rewards of up to n transitions from it
        (itself included; a reward still unknown at an episode's end counts 0) and a bootstrap
        from the state after the last of them; drop it from ``pending``."""
        gamma = self.config.gamma
        ret, factor = 0.0, 1.0
        last = pending[0]
        for _, step in zip(range(self.config.n_step), pending, strict=False):
            ret += factor * (step.reward or 0.0)
            factor *= gamma
            last = step
        oldest = pending.popleft()
        assert last.next_mask is not None
        self.update(
            oldest.state,
            oldest.action,
            ret,
            last.next_state,
            last.next_mask,
            last.next_action,
            last.terminated,
            epsilon,
            factor,
        )

    def _check_same_spaces(self, env: gym.Env) -> None:
        base = env.unwrapped
        if list(base.feature_names) != self.feature_names:
            raise ValueError(
                "env_config: its env has other observation features than the env this learner "
                "was built for"
            )
        if list(base.action_labels) != self.action_labels:
            raise ValueError(
                "env_config: its env has other actions than the env this learner was built for"
            )

    # --- checkpoints ---------------------------------------------------------------------------

    def _write_checkpoint(self, run_dir: Path) -> Path:
        path = run_dir / "checkpoints" / CHECKPOINT_FILE
        arrays = self._arrays()
        arrays["run_seed"] = np.int64(self._run_seed or 0)
        arrays["rng_state"] = np.str_(json.dumps(self._explore.bit_generator.state))
        write_npz(path, arrays, compress=False)
        return path

    def resume(self, run_dir: Path) -> int:
        """Restore the run's last checkpoint (same hyperparameters and env required); returns the
        env steps already done, 0 when the run has no checkpoint yet."""
        path = Path(run_dir) / "checkpoints" / CHECKPOINT_FILE
        if not path.exists():
            return 0
        fields = read_fields(path, CHECKPOINT_FIELDS)
        self._check_fields(path, fields)
        saved = json_field(path, fields, "hyperparameters")
        saved["discretiser"] = json_field(path, fields, "discretiser")
        if saved != self.hyperparameters:
            raise AgentLoadError(
                f"{path}: field 'hyperparameters': the run was trained with {saved}, "
                f"this learner has {self.hyperparameters}; resume with the run's hyperparameters"
            )
        self._restore(path, fields)
        try:
            state = json.loads(str(fields["rng_state"]))
            explore = np.random.default_rng()
            explore.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise AgentLoadError(
                f"{path}: field 'rng_state': expected a numpy PCG64 generator state ({exc})"
            ) from None
        self._explore = explore
        self._run_seed = int(fields["run_seed"])
        return self.steps

    # --- files ---------------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Write ``folder/agent.npz`` (atomically); returns its path."""
        path = Path(folder) / AGENT_FILE
        write_npz(path, self._arrays(), compress=True)
        return path

    @classmethod
    def load(cls, folder: Path, env: gym.Env) -> TabularLearner:
        """Read an agent saved by :meth:`save` (a folder holding ``agent.npz``, or the file) for
        ``env``; raises :class:`AgentLoadError` naming the file and field on any problem."""
        path = Path(folder)
        if path.is_dir() or path.suffix != ".npz":
            path = path / AGENT_FILE
        fields = read_fields(path, AGENT_FIELDS)
        check_kind(path, fields, cls.kind, TABULAR_LEARNERS)
        base = env.unwrapped
        check_names(path, fields, "feature_names", list(base.feature_names), "observation features")
        check_names(path, fields, "action_labels", list(base.action_labels), "actions")
        hyperparameters = json_field(path, fields, "hyperparameters")
        hyperparameters["discretiser"] = json_field(path, fields, "discretiser")
        try:
            agent = cls(env, **hyperparameters)
        except DiscretiserError as exc:
            raise AgentLoadError(f"{path}: field 'discretiser': {exc}") from None
        except ValueError as exc:
            raise AgentLoadError(f"{path}: field 'hyperparameters': {exc}") from None
        agent._check_fields(path, fields)
        agent._restore(path, fields)
        return agent

    def _arrays(self) -> dict[str, np.ndarray]:
        hyperparameters = {k: v for k, v in self.hyperparameters.items() if k != "discretiser"}
        return {
            "format": np.str_(FORMAT),
            "version": np.int64(FORMAT_VERSION),
            "kind": np.str_(self.kind),
            "q": self.q,
            "visits": self.visits,
            "discretiser": np.str_(self.config.discretiser.to_json()),
            "hyperparameters": np.str_(json.dumps(hyperparameters, sort_keys=True)),
            "feature_names": np.array(self.feature_names, dtype=np.str_),
            "action_labels": np.array(self.action_labels, dtype=np.str_),
            "steps": np.int64(self.steps),
            "episodes": np.int64(self.episodes),
        }

    def _check_fields(self, path: Path, fields: dict[str, np.ndarray]) -> None:
        """The file is this kind of agent, for this env's spaces and this table's shape."""
        check_kind(path, fields, self.kind, TABULAR_LEARNERS)
        check_names(path, fields, "feature_names", self.feature_names, "observation features")
        check_names(path, fields, "action_labels", self.action_labels, "actions")
        for name in ("q", "visits"):
            if fields[name].shape != self.q.shape:
                raise AgentLoadError(
                    f"{path}: field '{name}': expected shape {self.q.shape} "
                    f"({self.discretiser.n_states} states × {self.n_actions} actions), "
                    f"got {fields[name].shape}"
                )
        if not np.isfinite(fields["q"]).all():
            raise AgentLoadError(f"{path}: field 'q': expected finite Q-values")
        if (fields["visits"] < 0).any():
            raise AgentLoadError(f"{path}: field 'visits': expected counts ≥ 0")
        for name in ("steps", "episodes"):
            if int(fields[name]) < 0:
                raise AgentLoadError(f"{path}: field '{name}': expected a count ≥ 0")

    def _restore(self, path: Path, fields: dict[str, np.ndarray]) -> None:
        self.q = fields["q"].astype(np.float64, copy=True)
        self.visits = fields["visits"].astype(np.int64, copy=True)
        self.steps = int(fields["steps"])
        self.episodes = int(fields["episodes"])


def _greedy(q_row: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """The valid action of largest Q; exact ties broken uniformly by ``rng``."""
    values = np.where(mask, q_row, -np.inf)
    ties = np.flatnonzero(values == values.max())
    if len(ties) == 1:
        return int(ties[0])
    return int(ties[rng.integers(len(ties))])


class QLearning(TabularLearner):
    """Off-policy TD control: bootstraps from the best valid action of the next state."""

    kind: ClassVar[str] = "q-learning"
    name: ClassVar[str] = "q-learning"

    def next_value(
        self, next_state: int, next_mask: np.ndarray, next_action: int, epsilon: float
    ) -> float:
        return float(self.q[next_state][np.asarray(next_mask, dtype=bool)].max())


class Sarsa(TabularLearner):
    """On-policy TD control: bootstraps from the action the ε-greedy behaviour takes next."""

    kind: ClassVar[str] = "sarsa"
    name: ClassVar[str] = "sarsa"
    _chooses_before_update: ClassVar[bool] = True

    def next_value(
        self, next_state: int, next_mask: np.ndarray, next_action: int, epsilon: float
    ) -> float:
        return float(self.q[next_state, next_action])


class ExpectedSarsa(TabularLearner):
    """Bootstraps from the expected Q of the next state under ε-greedy over its valid actions:
    ``(1 − ε) · max + ε · mean`` (greedy ties share the greedy mass, and their Q is the max)."""

    kind: ClassVar[str] = "expected-sarsa"
    name: ClassVar[str] = "expected-sarsa"

    def next_value(
        self, next_state: int, next_mask: np.ndarray, next_action: int, epsilon: float
    ) -> float:
        valid = self.q[next_state][np.asarray(next_mask, dtype=bool)]
        return float((1.0 - epsilon) * valid.max() + epsilon * valid.mean())


TABULAR_LEARNERS: dict[str, type[TabularLearner]] = {
    cls.kind: cls for cls in (QLearning, Sarsa, ExpectedSarsa)
}
"""The tabular learners by kind."""


def _ready(pending: deque[_Transition], n: int) -> bool:
    """The oldest transition's n-step return is known: n transitions, every reward in."""
    return len(pending) >= n and all(
        step.reward is not None for _, step in zip(range(n), pending, strict=False)
    )
