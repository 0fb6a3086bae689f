"""Stages: the units of work a device batches, and what running one does to its tasks.

A device keeps one queue per *stage*. A stage is one set of models run together on a batch:

* ``model``: one model (single plans, and each step of a cascade, share it, so tasks of
  different plans that need the same model are batched together, as per-model queues in
  Triton or Clipper do);
* ``ensemble``: all members of one ensemble plan, fused with that plan's weights;
* ``trunk``: a multi-task model; the trunk runs once on the whole batch, each task type's head
  on its own tasks.

:class:`StageRunner` runs a stage on a batch's real inputs and serves each task's plan with the
outputs (:func:`mtenv.core.plans.serve`): it sets each task's answer and confidence, marks
cascade escalations, and learns online ensemble weights from the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtenv.core.inference import InferenceEngine
from mtenv.core.plans import (
    CascadePlan,
    EnsemblePlan,
    MultiTaskPlan,
    OnlineWeights,
    Plan,
    Served,
    ensemble_weights,
    serve,
)
from mtenv.core.tasks import Task

MODEL, ENSEMBLE, TRUNK = "model", "ensemble", "trunk"


@dataclass(frozen=True)
class Stage:
    """One set of models a device runs on a batch.

    Attributes:
        kind: ``"model"``, ``"ensemble"`` or ``"trunk"``.
        models: indices (into the scenario's models) that must be resident to run it.
        plan: the ensemble plan it fuses for (``-1`` for the other kinds).
    """

    kind: str
    models: tuple[int, ...]
    plan: int = -1


@dataclass(frozen=True)
class StagePlan:
    """How each plan maps onto stages: where its tasks start, and where cascades escalate."""

    stages: tuple[Stage, ...]
    first: tuple[int, ...]  # per plan: the stage a dispatched task joins
    escalation: tuple[int, ...]  # per plan: the stage a cascade escalates to, else -1


def build_stages(plans: list[Plan], models: list[str]) -> StagePlan:
    """The distinct stages the plans need, in first-use order."""
    index = {m: i for i, m in enumerate(models)}
    stages: list[Stage] = []

    def stage_of(stage: Stage) -> int:
        if stage not in stages:
            stages.append(stage)
        return stages.index(stage)

    first, escalation = [], []
    for p, plan in enumerate(plans):
        if isinstance(plan, EnsemblePlan):
            first.append(stage_of(Stage(ENSEMBLE, tuple(index[m] for m in plan.members), p)))
            escalation.append(-1)
        elif isinstance(plan, CascadePlan):
            first.append(stage_of(Stage(MODEL, (index[plan.first],))))
            escalation.append(stage_of(Stage(MODEL, (index[plan.second],))))
        elif isinstance(plan, MultiTaskPlan):
            first.append(stage_of(Stage(TRUNK, (index[plan.model],))))
            escalation.append(-1)
        else:
            first.append(stage_of(Stage(MODEL, tuple(index[m] for m in plan.models))))
            escalation.append(-1)
    return StagePlan(tuple(stages), tuple(first), tuple(escalation))


class StageRunner:
    """Runs stages on batches with the real models.

    Args:
        plans: the scenario's plans (action order).
        models: the scenario's model names (stage model indices refer to them).
        task_types: the scenario's task types (``Task.type`` indexes them).
        layout: the stages built by :func:`build_stages`.
        engine: runs the models.
    """

    def __init__(
        self,
        plans: list[Plan],
        models: list[str],
        task_types: list[str],
        layout: StagePlan,
        engine: InferenceEngine,
    ):
        self.plans = plans
        self.models = models
        self.task_types = task_types
        self.layout = layout
        self.engine = engine
        self.online: dict[int, OnlineWeights] = {
            p: OnlineWeights(len(plan.members), plan.learning_rate)
            for p, plan in enumerate(plans)
            if isinstance(plan, EnsemblePlan) and plan.weighting == "online"
        }
        self.fixed_weights: dict[int, np.ndarray] = {
            p: ensemble_weights(plan, engine, plan.task_types[0])
            for p, plan in enumerate(plans)
            if isinstance(plan, EnsemblePlan) and plan.weighting != "online"
        }

        self._memoized = engine.mode == "memoized"
        self._tables: dict[tuple[int, bool, int], _Answers] = {}

    def reset(self) -> None:
        """Online weights start uniform every episode."""
        for weights in self.online.values():
            weights.reset()

    def weights(self, plan: int) -> np.ndarray:
        """The ensemble plan's current member weights."""
        online = self.online.get(plan)
        return online.weights if online is not None else self.fixed_weights[plan]

    # --- running a batch ---------------------------------------------------------------------

    def run(self, stage_index: int, batch: list[Task]) -> None:
        """Run the stage on the batch and serve each task's plan with the outputs: sets
        ``answer`` and ``confidence``, ``escalate`` for cascade tasks at their first stage and,
        for ensembles, each member's answer."""
        stage = self.layout.stages[stage_index]
        if self._memoized and stage.kind != ENSEMBLE:
            self._look_up(batch)
            return
        if stage.kind != ENSEMBLE:
            batch = _read_served(batch, stage_index)
            if not batch:
                return
        if stage.kind == TRUNK:
            self._run_trunk(stage, batch)
            return
        names = [self.models[m] for m in stage.models]
        outputs = _prefetched(batch, names)
        if outputs is None:
            task_type = self.task_types[batch[0].type]
            ids = np.fromiter((t.input_id for t in batch), dtype=np.int64, count=len(batch))
            outputs = {name: self.engine.probabilities(name, ids, task_type) for name in names}
        if stage.kind == ENSEMBLE:
            self._answer(batch, serve(self.plans[stage.plan], outputs, self.weights(stage.plan)))
            members = [outputs[self.models[m]] for m in stage.models]
            member_answers = np.stack([p.argmax(axis=1) for p in members], axis=1)
            for task, answers in zip(batch, member_answers.tolist(), strict=True):
                task.member_answers = tuple(answers)
            return
        (model, probs), first = next(iter(outputs.items())), self.layout.first
        for (p, at_first), rows in _group(batch, lambda t: (t.plan, t.stage == first[t.plan])):
            plan, tasks = self.plans[p], [batch[i] for i in rows]
            if at_first:
                served = serve(plan, {model: probs[rows]})
            else:  # a cascade's second stage: these tasks escalated to it
                served = serve(plan, {plan.second: probs[rows]})  # type: ignore[attr-defined]
            self._answer(tasks, served)
            if at_first and self.layout.escalation[p] >= 0:
                for task, escalate in zip(tasks, served.escalated.tolist(), strict=True):
                    task.escalate = escalate

    def _look_up(self, batch: list[Task]) -> None:
        """Memoized inference, one model per task (single plans, cascade steps, shared trunks):
        each task's answer is read from its plan's answers on the whole pool."""
        first, tables = self.layout.first, self._tables
        for task in batch:
            key = (task.plan, task.stage == first[task.plan], task.type)
            answers = tables.get(key) or self._answers(*key)
            i = task.input_id
            task.answer = answers.answer[i]
            task.confidence = answers.confidence[i]
            if answers.escalate is not None:
                task.escalate = answers.escalate[i]

    def _answers(self, plan_index: int, at_first: bool, task_type: int) -> _Answers:
        """What ``plan`` answers for every input of the task type's serving pool, at its first
        stage (a cascade: its first model, which decides who escalates) or at a cascade's
        second; served by the same rule as a batch (:func:`~mtenv.core.plans.serve`)."""
        plan = self.plans[plan_index]
        if at_first:
            model = self.models[self.layout.stages[self.layout.first[plan_index]].models[0]]
        else:
            model = plan.second  # type: ignore[attr-defined]
        probs = self.engine.pool_outputs(model, self.task_types[task_type])
        served = serve(plan, {model: probs})
        cascade_first = at_first and self.layout.escalation[plan_index] >= 0
        answers = _Answers(
            served.answer.tolist(),
            served.confidence.tolist(),
            served.escalated.tolist() if cascade_first else None,
        )
        self._tables[plan_index, at_first, task_type] = answers
        return answers

    def _run_trunk(self, stage: Stage, batch: list[Task]) -> None:
        groups = _group(batch, lambda t: t.type)
        model = self.models[stage.models[0]]
        ids = {
            self.task_types[t]: np.array([batch[i].input_id for i in rows], dtype=np.int64)
            for t, rows in groups
        }
        outputs = self.engine.multitask_probabilities(model, ids)
        for t, rows in groups:
            tasks = [batch[i] for i in rows]
            self._answer(
                tasks, serve(self.plans[tasks[0].plan], {model: outputs[self.task_types[t]]})
            )

    @staticmethod
    def _answer(tasks: list[Task], served: Served) -> None:
        answers, confidences = served.answer.tolist(), served.confidence.tolist()
        for task, answer, confidence in zip(tasks, answers, confidences, strict=True):
            task.answer = answer
            task.confidence = confidence

    def feedback(self, tasks: list[Task]) -> None:
        """Completed tasks teach the online ensembles which members were right."""
        for task in tasks:
            online = self.online.get(task.plan)
            if online is not None and task.member_answers is not None:
                online.update(np.array(task.member_answers) == task.label)


@dataclass(frozen=True)
class _Answers:
    """A plan's answer, confidence and escalation per pool input, as Python lists (per-task
    reads of numpy scalars would cost more than the lookup saves)."""

    answer: list[int]
    confidence: list[float]
    escalate: list[bool] | None  # a cascade's first stage only


def prefetch(engine: InferenceEngine, requests: list[tuple[StageRunner, Task, int]]) -> None:
    """Run the first-stage models of tasks about to be dispatched, one batched forward pass per
    model and task type over all of them.

    ``requests`` are ``(runner, task, plan)``: the runner of the task's simulator (simulators
    that share ``engine`` may be mixed) and the plan it will be dispatched with. A task whose
    first stage is one model or a shared trunk has its plan's answer served here, row by row as
    its batch would serve it (``Task.served``); an ensemble's answer waits for its batch, as its
    online weights may change until then, and the task keeps its members' outputs
    (``Task.outputs``). The stage that later serves the task reads them instead of running the
    models again: the answers are the same, as the models see the same inputs. A cascade's
    second model is not prefetched: it runs on the tasks that escalate, when they do.
    """
    plain: dict[tuple[str, str], list[tuple[StageRunner, Task, int]]] = {}
    trunks: dict[str, dict[str, list[tuple[StageRunner, Task, int]]]] = {}
    for request in requests:
        runner, task, plan = request
        stage = runner.layout.stages[runner.layout.first[plan]]
        task_type = runner.task_types[task.type]
        task.outputs = task.served = None
        for m in stage.models:
            name = runner.models[m]
            if stage.kind == TRUNK:
                trunks.setdefault(name, {}).setdefault(task_type, []).append(request)
            else:
                plain.setdefault((name, task_type), []).append(request)
    for (name, task_type), group in plain.items():
        _keep(group, name, engine.probabilities(name, _input_ids(group), task_type))
    for name, by_type in trunks.items():
        heads = engine.multitask_probabilities(
            name, {t: _input_ids(group) for t, group in by_type.items()}
        )
        for t, group in by_type.items():
            _keep(group, name, heads[t])


def _input_ids(group: list[tuple[StageRunner, Task, int]]) -> np.ndarray:
    return np.fromiter((task.input_id for _, task, _ in group), dtype=np.int64, count=len(group))


def _keep(group: list[tuple[StageRunner, Task, int]], name: str, probs: np.ndarray) -> None:
    """Row ``i`` of ``probs`` is model ``name``'s output on request ``i``'s input: kept on an
    ensemble member's task, served as the plan's answer on the others (one :func:`serve` per
    distinct plan, however many simulators it comes from)."""
    to_serve: dict[tuple[Plan, int, int, bool], list[int]] = {}
    for i, (runner, task, plan) in enumerate(group):
        layout = runner.layout
        first = layout.first[plan]
        if layout.stages[first].kind == ENSEMBLE:
            task.outputs = {**(task.outputs or {}), name: probs[i]}
        else:
            key = (runner.plans[plan], plan, first, layout.escalation[plan] >= 0)
            to_serve.setdefault(key, []).append(i)
    for (rule, plan, stage, cascade), rows in to_serve.items():
        served = serve(rule, {name: probs[rows]})
        for i, answer, confidence, escalate in zip(
            rows,
            served.answer.tolist(),
            served.confidence.tolist(),
            served.escalated.tolist(),
            strict=True,
        ):
            group[i][1].served = (plan, stage, answer, confidence, escalate if cascade else None)


def _read_served(batch: list[Task], stage_index: int) -> list[Task]:
    """Give the tasks served in advance for this stage (by :func:`prefetch`) their answers;
    returns the others, which the stage still has to run."""
    rest = []
    for task in batch:
        served = task.served
        if served is not None and served[0] == task.plan and served[1] == stage_index:
            _, _, task.answer, task.confidence, escalate = served
            if escalate is not None:
                task.escalate = escalate
        else:
            rest.append(task)
    return rest


def _prefetched(batch: list[Task], names: list[str]) -> dict[str, np.ndarray] | None:
    """The batch's prefetched outputs of ``names`` as ``[B, C]`` arrays; ``None`` unless every
    task of the batch has them."""
    for task in batch:
        if task.outputs is None or any(name not in task.outputs for name in names):
            return None
    return {name: np.stack([t.outputs[name] for t in batch]) for name in names}  # type: ignore[index]


def _group(batch: list[Task], key: Callable[[Task], Hashable]) -> list[tuple[Any, list[int]]]:
    """The batch's row indices grouped by ``key``, groups in first-seen order."""
    groups: dict[Hashable, list[int]] = {}
    for i, task in enumerate(batch):
        groups.setdefault(key(task), []).append(i)
    return list(groups.items())
