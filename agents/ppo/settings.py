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
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

VEC_ENVS = ("subproc", "dummy")
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
    :class:`~mtenv.agents.ppo.rollouts.CreditToDecisions`) or ``settle`` (the step the env pays
    it, as Gymnasium reports)."""
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
_NOT_HYPERPARAMETERS = {"self", "policy", "env", "tensorboard_log", "verbose", "seed", "device"}
_NOT_HYPERPARAMETERS |= {"_init_setup_model"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
