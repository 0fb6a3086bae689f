"""Plans: how one task is served by the zoo's models, alone or together.

A plan names the models it may run and how their real outputs become one answer. The action
space pairs every plan with every device, so a plan is the unit an allocator chooses between.
Plans know nothing of time: the simulator prices the models a plan runs with their profiles.

* :class:`SinglePlan`: one model answers.
* :class:`EnsemblePlan`: k models answer the same input; their class probabilities are fused
  by a weighted average ``ŷ = Σ wᵢ·yᵢ / Σ wᵢ`` or by a weighted majority vote. The weights are
  uniform, fitted offline on the validation pool (:func:`fit_ensemble_weights`), or learned online
  from real outcomes with multiplicative weights (:class:`OnlineWeights`, the Exp4 / Hedge update
  Clipper uses).
* :class:`CascadePlan`: a cheap model answers first; when its softmax confidence is under the
  threshold the task escalates to a bigger model, which costs its own queueing and compute.
* :class:`MultiTaskPlan`: a shared-trunk model with one head per task type; a batch that mixes
  task types runs the trunk once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FUSIONS = ("mean", "vote")


@dataclass(frozen=True)
class Plan:
    """What every plan has.

    Attributes:
        name: unique within a scenario; names the plan in tables and action labels.
        task_types: the task types the plan serves.
    """

    name: str
    task_types: tuple[str, ...]

    kind = "plan"

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the plan may run (all must fit on the device together)."""
        raise NotImplementedError


@dataclass(frozen=True)
class SinglePlan(Plan):
    """One model answers."""

    model: str = ""
    kind = "single"

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,)


@dataclass(frozen=True)
class EnsemblePlan(Plan):
    """Several models answer the same input; their outputs are fused.

    Attributes:
        members: the models, run one after another on the task's device.
        fusion: ``"mean"`` (weighted average of probabilities) or ``"vote"`` (weighted majority).
        weighting: ``"uniform"``, ``"fitted"`` (offline, on the validation pool) or ``"online"``
            (multiplicative weights from real outcomes during the episode).
        learning_rate: η of the online update ``wᵢ ← wᵢ·exp(−η·lossᵢ)``.
    """

    members: tuple[str, ...] = ()
    fusion: str = "mean"
    weighting: str = "uniform"
    learning_rate: float = 0.1
    kind = "ensemble"

    @property
    def models(self) -> tuple[str, ...]:
        return self.members


@dataclass(frozen=True)
class CascadePlan(Plan):
    """A cheap model first; escalate to a bigger one when confidence is under ``threshold``."""

    first: str = ""
    second: str = ""
    threshold: float = 0.9
    kind = "cascade"

    @property
    def models(self) -> tuple[str, ...]:
        return (self.first, self.second)


@dataclass(frozen=True)
class MultiTaskPlan(Plan):
    """A shared-trunk multi-task model: the trunk once per batch, a head per task type."""

    model: str = ""
    kind = "multitask"

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,)


# --- fusion ----------------------------------------------------------------------------------


def fuse_mean(member_probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted average of the members' probabilities: ``Σ wᵢ·yᵢ / Σ wᵢ`` ([B, C])."""
    stacked = np.stack(member_probs)  # [k, B, C]
    w = np.asarray(weights, dtype=stacked.dtype)
    return np.tensordot(w, stacked, axes=1) / w.sum()


def fuse_vote(member_probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted majority vote as a distribution: class c gets ``Σ wᵢ·[argmax yᵢ = c] / Σ wᵢ``.

    Ties go to the class with the larger weighted mean probability, so the answer is unique.
    """
    n_classes = member_probs[0].shape[1]
    w = np.asarray(weights, dtype=np.float64)
    votes = np.zeros(member_probs[0].shape, dtype=np.float64)
    rows = np.arange(votes.shape[0])
    for w_i, probs in zip(w, member_probs, strict=True):
        votes[rows, probs.argmax(axis=1)] += w_i
    # float64 throughout: in float32 a tie-break this small would round away.
    tie_break = fuse_mean([p.astype(np.float64) for p in member_probs], w) * (1e-6 / n_classes)
    return (votes + tie_break) / w.sum()


def fuse(fusion: str, member_probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Dispatch on the fusion name."""
    if fusion == "mean":
        return fuse_mean(member_probs, weights)
    if fusion == "vote":
        return fuse_vote(member_probs, weights)
    raise ValueError(f"fusion: expected one of {FUSIONS}, got {fusion!r}")


# --- weights ---------------------------------------------------------------------------------


@dataclass
class OnlineWeights:
    """Multiplicative-weights (Hedge / Exp4-style) ensemble weights learned from outcomes.

    After a task whose true answer is known, every member i that was wrong has its weight scaled
    by ``exp(−η)``; weights are then renormalised to sum to one. Members right more often gain.
    """

    n_members: int
    learning_rate: float
    weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.weights = np.full(self.n_members, 1.0 / self.n_members)

    def update(self, member_correct: np.ndarray) -> None:
        """``member_correct``: [k] or [B, k] booleans, one row per finished task."""
        wrong = 1.0 - np.atleast_2d(np.asarray(member_correct, dtype=np.float64))
        self.weights = self.weights * np.exp(-self.learning_rate * wrong.sum(axis=0))
        self.weights /= self.weights.sum()


def fit_ensemble_weights(
    member_probs: list[np.ndarray], labels: np.ndarray, steps: int = 300, lr: float = 0.5
) -> np.ndarray:
    """Weights minimising the cross-entropy of the mean-fused output on labelled data.

    Parametrised as ``w = softmax(θ)`` and fitted by plain gradient descent from uniform, so the
    result is deterministic. ``member_probs``: k arrays [N, C]; ``labels``: [N].
    """
    stacked = np.stack(member_probs).astype(np.float64)  # [k, N, C]
    rows = np.arange(stacked.shape[1])
    p_true = stacked[:, rows, labels]  # [k, N]: each member's probability of the true class
    theta = np.zeros(stacked.shape[0])
    for _ in range(steps):
        w = np.exp(theta - theta.max())
        w /= w.sum()
        fused = w @ p_true  # [N]
        # d(−mean log fused)/dθ through the softmax: −mean((p_true − fused) / fused) · w
        grad_w = -(p_true / np.maximum(fused, 1e-12)).mean(axis=1)
        theta -= lr * w * (grad_w - w @ grad_w)
    w = np.exp(theta - theta.max())
    return w / w.sum()


def uniform_weights(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def confidence_escalates(confidence: float, threshold: float) -> bool:
    """A cascade escalates exactly when the first model's confidence is under the threshold."""
    return confidence < threshold and not math.isnan(confidence)
