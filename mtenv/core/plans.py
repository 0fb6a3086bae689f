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

How a plan turns its models' real outputs into one answer is written once, in :func:`serve`, with
the weights an ensemble starts from in :func:`ensemble_weights`. The simulator (stage by stage),
the action catalog and the zoo card (on whole pools, :func:`serve_pool`) all serve through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mtenv.core.inference import InferenceEngine

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


def ensemble_weights(plan: EnsemblePlan, engine: InferenceEngine, task_type: str) -> np.ndarray:
    """The member weights an ensemble starts an episode with: fitted on the labelled validation
    pool of ``task_type`` with ``engine``'s models for ``weighting: fitted``, else uniform (an
    online ensemble learns from there)."""
    if plan.weighting != "fitted":
        return uniform_weights(len(plan.members))
    outputs = [engine.pool_outputs(m, task_type, split="validation") for m in plan.members]
    return fit_ensemble_weights(outputs, engine.validation_pool(task_type).labels)


# --- serving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """What a plan answered for a batch of inputs.

    Attributes:
        answer: ``[B]`` int64, the predicted class.
        confidence: ``[B]`` float, the answering distribution's largest probability.
        escalated: ``[B]`` bool, the tasks a cascade sends on to its second model (all false
            for other plans).
    """

    answer: np.ndarray
    confidence: np.ndarray
    escalated: np.ndarray


def escalates(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Where a cascade escalates: the first model's confidence is under the threshold. A NaN
    confidence (a model that returned NaN) does not escalate: the first answer stands."""
    confidence = np.asarray(confidence, dtype=np.float64)
    return (confidence < threshold) & ~np.isnan(confidence)


def serve(
    plan: Plan, outputs: Mapping[str, np.ndarray], weights: np.ndarray | None = None
) -> Served:
    """The answer ``plan`` gives from its models' class probabilities on the same B inputs.

    Args:
        plan: the plan.
        outputs: model name → ``[B, C]`` probabilities (a multi-task model's: the head of the
            inputs' task type). A single or multi-task plan needs its model's; an ensemble
            every member's. A cascade answers with what it is given: its first model's alone
            decide which tasks escalate (the simulator then queues those for the second model);
            its second model's alone answer tasks that reached it; both give the cascade's final
            answer, the second's where the first escalated.
        weights: an ensemble's member weights (:func:`ensemble_weights`, or online ones);
            ignored by the other plans.
    """
    if isinstance(plan, EnsemblePlan):
        members = [outputs[m] for m in plan.members]
        if weights is None:
            raise ValueError(f"plan {plan.name!r}: an ensemble needs its member weights")
        return _served(fuse(plan.fusion, members, weights))
    if isinstance(plan, CascadePlan):
        first, second = outputs.get(plan.first), outputs.get(plan.second)
        if first is None:
            if second is None:
                raise KeyError(f"plan {plan.name!r}: no outputs of {plan.first} or {plan.second}")
            return _served(second, escalated=np.ones(len(second), dtype=bool))
        escalated = escalates(first.max(axis=1), plan.threshold)
        probs = first if second is None else np.where(escalated[:, None], second, first)
        return _served(probs, escalated)
    return _served(outputs[plan.models[0]])


def serve_pool(
    plan: Plan, engine: InferenceEngine, task_type: str, split: str = "serving"
) -> Served:
    """``plan`` served on every input of ``task_type``'s ``split`` pool, as if each were a task
    of its own (an ensemble with the weights it starts an episode with)."""
    outputs = {m: engine.pool_outputs(m, task_type, split=split) for m in plan.models}
    weights = ensemble_weights(plan, engine, task_type) if isinstance(plan, EnsemblePlan) else None
    return serve(plan, outputs, weights)


def _served(probs: np.ndarray, escalated: np.ndarray | None = None) -> Served:
    if escalated is None:
        escalated = np.zeros(len(probs), dtype=bool)
    return Served(probs.argmax(axis=1), probs.max(axis=1), escalated)
