"""A frozen, read-only picture of the simulator: what one rendered frame shows.

:func:`take_snapshot` copies plain values (strings, numbers, tuples) out of a
:class:`~mtenv.core.simulator.Simulator`, so a snapshot holds no reference to live state and the
viewer that draws it never touches the simulator. Nothing here imports pygame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from mtenv.core.simulator import Simulator
from mtenv.core.tasks import Task, TaskStatus

MAX_QUEUE_MARKS = 24  # queued tasks listed per device (the queue length is always exact)
OUTCOMES = ("correct", "wrong", "late", "rejected", "dropped")


def outcome_of(task: Task) -> str:
    """One settled task's outcome: correct / wrong (on time), late, rejected or dropped."""
    if task.status is TaskStatus.REJECTED:
        return "rejected"
    if task.status is TaskStatus.DROPPED:
        return "dropped"
    if task.finished > task.deadline:
        return "late"
    return "correct" if task.answer == task.label else "wrong"


@dataclass(frozen=True, slots=True)
class QueuedMark:
    """A queued (or running) task: its type index and priority rank (0 = lowest)."""

    type: int
    priority_rank: int


@dataclass(frozen=True, slots=True)
class BatchView:
    """What a device is doing: a batch of a plan, or loading a model's weights."""

    label: str  # plan name(s), or "load <model>"
    size: int  # tasks in the batch (0 while loading)
    progress: float  # 0..1 from busy_since to busy_until
    loading: bool


@dataclass(frozen=True, slots=True)
class DeviceView:
    name: str
    kind: str
    used_bytes: float
    capacity_bytes: float
    resident: tuple[str, ...]
    queue_len: int
    max_queue: int
    queued: tuple[QueuedMark, ...]  # up to MAX_QUEUE_MARKS, oldest first
    batch: BatchView | None
    utilization: float  # busy fraction since the episode started


@dataclass(frozen=True, slots=True)
class TaskView:
    id: int
    type: int
    type_name: str
    difficulty: int
    priority: float
    priority_rank: int
    slack_s: float  # deadline minus now


@dataclass(frozen=True, slots=True)
class Snapshot:
    scenario: str
    time_s: float
    arrived: int
    episode_tasks: int
    task_types: tuple[str, ...]
    n_priorities: int
    devices: tuple[DeviceView, ...]
    task: TaskView | None
    last_action: str
    outcomes: tuple[str, ...]  # oldest first, each one of OUTCOMES
    accuracy: float  # correct ÷ completed (NaN before any completion)
    slo_attainment: float  # on-time completions ÷ settled tasks (NaN before any)
    latency_p99_ms: float
    cost_usd: float
    episode_return: float


def _priority_ranks(weights: Iterable[float]) -> tuple[int, ...]:
    """Per priority class: its rank by weight (0 = the lowest weight)."""
    w = list(weights)
    return tuple(sum(other < own for other in w) for own in w)


def take_snapshot(
    sim: Simulator,
    task: Task | None,
    last_action_label: str,
    recent_outcomes: Iterable[str],
    scenario_name: str,
    episode_return: float = 0.0,
) -> Snapshot:
    """Copy what a frame shows out of ``sim`` (after :meth:`Simulator.reset`)."""
    now = float(sim.now)
    ranks = _priority_ranks(float(w) for w in sim.generator.priority_weights)
    busy = sim.busy_time()
    devices = []
    for dev in sim.devices:
        queued = sorted(
            (q for queue in dev.queues for q in queue), key=lambda q: q.enqueued
        )  # oldest first across the stage queues (stable)
        marks = [QueuedMark(q.type, ranks[q.priority_class]) for q in queued[:MAX_QUEUE_MARKS]]
        batch = None
        if dev.busy:
            span = dev.busy_until - dev.busy_since
            progress = 1.0 if span <= 0 else min(max((now - dev.busy_since) / span, 0.0), 1.0)
            if dev.loading >= 0:
                batch = BatchView(f"load {sim.models[dev.loading]}", 0, progress, True)
            else:
                names = list(dict.fromkeys(sim.plans[t.plan].name for t in dev.batch))
                batch = BatchView("+".join(names), len(dev.batch), progress, False)
        devices.append(
            DeviceView(
                name=dev.name,
                kind=dev.spec.kind,
                used_bytes=float(dev.used_bytes),
                capacity_bytes=float(dev.spec.memory_bytes),
                resident=tuple(sim.models[m] for m in dev.resident),
                queue_len=int(dev.n_queued),
                max_queue=int(dev.max_queue),
                queued=tuple(marks),
                batch=batch,
                utilization=float(busy[dev.index] / now) if now > 0 else 0.0,
            )
        )
    task_view = None
    if task is not None:
        task_view = TaskView(
            id=task.id,
            type=task.type,
            type_name=sim.task_types[task.type],
            difficulty=int(task.difficulty),
            priority=float(task.priority),
            priority_rank=ranks[task.priority_class],
            slack_s=float(task.deadline - now),
        )
    m = sim.metrics
    settled = m.completed + m.rejected + m.dropped
    return Snapshot(
        scenario=scenario_name,
        time_s=now,
        arrived=int(sim.arrived),
        episode_tasks=int(sim.episode_tasks),
        task_types=tuple(sim.task_types),
        n_priorities=len(ranks),
        devices=tuple(devices),
        task=task_view,
        last_action=last_action_label,
        outcomes=tuple(recent_outcomes),
        accuracy=m.correct / m.completed if m.completed else math.nan,
        slo_attainment=m.on_time / settled if settled else math.nan,
        latency_p99_ms=1e3 * m.latency.quantile(0.99) if m.latency.count else math.nan,
        cost_usd=float(sum(d.cost_usd for d in m.devices)),
        episode_return=float(episode_return),
    )
