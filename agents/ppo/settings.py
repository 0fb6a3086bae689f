"""The hyperparameters of the PPO learners: :class:`TrainingSettings`, which checks them and
splits them into what mtenv uses and what the SB3 algorithm takes, and rl-zoo's ``lin_<x>``
learning-rate schedules.

Hyperparameters come per scenario from rl-zoo-shaped YAML files, ``hyperparams/ppo.yml`` and
``hyperparams/maskable-ppo.yml``: one key per registered env id, each with ``n_timesteps``,
``policy`` and the algorithm's keyword arguments (read by :mod:`mtenv.agents.hyperparams`;
what the keys mean: :class:`TrainingSettings`).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mtenv.envs.task_allocation import is_load_scale

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

VEC_ENVS = ("batched", "subproc", "dummy")
POLICIES = ("CandidatePolicy", "MlpPolicy")
CREDITS = ("decision", "settle")
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}


# --- schedules ---------------------------------------------------------------------------------


def linear_schedule(start: float) -> LinearSchedule:
    """rl-zoo's ``lin_<value>``: decays linearly from ``start`` to 0 over the run."""
    return LinearSchedule(start)


@dataclass(frozen=True)
class LinearSchedule:
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


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSettings:
    """The hyperparameters of one learner, checked and split into what mtenv uses and what the
    SB3 algorithm takes. Frequencies count env steps over all envs."""

    policy: str = "CandidatePolicy"
    """``CandidatePolicy`` (one network scores every (plan, device) candidate, see
    :mod:`mtenv.agents.ppo.candidates`) or ``MlpPolicy`` (SB3's flat MLP)."""
    n_envs: int = 4
    """Envs stepped in parallel; one rollout is ``n_envs × n_steps`` env steps."""
    vec_env: str | None = None
    """``batched``: all envs in this process, stepped together on one shared set of models
    (:mod:`mtenv.agents.ppo.batched`); ``subproc``: one worker process per env; ``dummy``: one
    env after the other in this process. ``None`` (the default): ``batched`` when ``n_envs > 1``,
    ``dummy`` for one env."""
    eval_freq: int = 0
    """Env steps between greedy evaluations on fixed validation episodes (0: none); the run
    keeps the best evaluated weights (:mod:`mtenv.agents.ppo.selection`)."""
    eval_episodes: int = 3
    """Validation episodes per evaluation and load, the same ones every time."""
    eval_loads: list[float] | None = None
    """Load factors (``load_scale``) every validation episode is played at, so the kept policy
    is the best over that range and not only at the scenario's load; ``null``: the scenario's
    load alone."""
    checkpoint_freq: int = 20_000
    """Env steps between checkpoints (taken between rollouts, so rounded up to whole ones)."""
    credit: str = "decision"
    """Which step a task's reward trains: ``decision`` (the step that decided the task, see
    :class:`~mtenv.agents.ppo.rollouts.CreditToDecisions`) or ``settle`` (the step the env pays
    it, as Gymnasium reports)."""
    teacher: str | None = None
    """Start from a heuristic (:mod:`mtenv.agents.ppo.imitation`): ``auto`` (the catalog
    heuristic with the best return, picked at the scenario's load and at both ends of
    ``load_range``; each training env learns from the pick nearest its load), a heuristic's name,
    or none."""
    demo_steps: int = 4000
    """States per demonstration round (the first driven by the teacher, the rest by the
    learner and labelled by the teacher)."""
    dagger_rounds: int = 2
    """Demonstration rounds after the first, driven by the learner."""
    clone_epochs: int = 20
    """Passes of behaviour cloning over the demonstrations after each round."""
    teacher_coef: float = 1.0
    """Weight of the teacher's cross-entropy during PPO at its first update."""
    teacher_decay: float = 0.5
    """Share of the run over which that weight falls linearly to 0."""
    load_range: list[float] | None = None
    """``[low, high]``: the training envs run at load factors spread evenly over the range
    (``load_scale``), so the policy has seen heavier and lighter load than the scenario's;
    ``null``: all at the scenario's load."""
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
        least_values |= {"demo_steps": 1, "dagger_rounds": 0, "clone_epochs": 1}
        for name, least in least_values.items():
            value = getattr(settings, name)
            if not _is_int(value) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
        if settings.policy not in POLICIES:
            raise ValueError(f"policy: expected one of {POLICIES}, got {settings.policy!r}")
        if settings.credit not in CREDITS:
            raise ValueError(f"credit: expected one of {CREDITS}, got {settings.credit!r}")
        teachers = ("auto", *teacher_names())
        if settings.teacher is not None and settings.teacher not in teachers:
            raise ValueError(
                f"teacher: expected one of {teachers} or null, got {settings.teacher!r}"
            )
        for name in ("teacher_coef", "teacher_decay"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
        loads = settings.eval_loads
        if loads is not None and not (
            isinstance(loads, (list, tuple)) and loads and all(is_load_scale(x) for x in loads)
        ):
            raise ValueError(f"eval_loads: expected a list of numbers > 0, got {loads!r}")
        low_high = settings.load_range
        if low_high is not None and not (
            isinstance(low_high, (list, tuple))
            and len(low_high) == 2
            and all(is_load_scale(x) for x in low_high)
            and low_high[0] <= low_high[1]
        ):
            raise ValueError(
                f"load_range: expected [low, high] with 0 < low <= high, got {low_high!r}"
            )
        if settings.vec_env is None:
            settings = dataclasses.replace(
                settings, vec_env="batched" if settings.n_envs > 1 else "dummy"
            )
        if settings.vec_env not in VEC_ENVS:
            raise ValueError(
                f"vec_env: expected one of {VEC_ENVS} or null, got {settings.vec_env!r}"
            )
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
    "eval_loads",
    "checkpoint_freq",
    "credit",
    "teacher",
    "demo_steps",
    "dagger_rounds",
    "clone_epochs",
    "teacher_coef",
    "teacher_decay",
    "load_range",
)
_NOT_HYPERPARAMETERS = {"self", "policy", "env", "tensorboard_log", "verbose", "seed", "device"}
_NOT_HYPERPARAMETERS |= {"_init_setup_model"}


def teacher_names() -> tuple[str, ...]:
    """The heuristics that can teach: the stateless rules over the observation and catalog."""
    from mtenv.agents.baselines.heuristics import CatalogPolicy
    from mtenv.agents.interfaces import BasePolicy
    from mtenv.agents.policies import POLICIES as NAMED

    return tuple(
        name
        for name, cls in NAMED.items()
        if issubclass(cls, CatalogPolicy)
        and not cls.clairvoyant
        and cls.observe is BasePolicy.observe  # learns nothing while it acts
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
