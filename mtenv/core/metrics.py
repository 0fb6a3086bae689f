"""Episode metrics, accumulated in memory that does not grow with the number of tasks.

Latency quantiles come from a log-bucketed histogram (each bucket 1 % wide, so a reported
quantile is within 1 % of the exact one); per-class precision / recall / F1 come from a confusion
matrix. Everything else is a counter or a sum. An episode of a million tasks costs the same memory
as an episode of ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class LatencyHistogram:
    """Streaming quantiles over positive values with bounded relative error.

    Values in ``[min_value, max_value]`` fall into geometric buckets of ratio ``1 + rel_error``;
    a quantile is reported as its bucket's geometric midpoint. Values outside are clamped to the
    end buckets.
    """

    def __init__(self, min_value: float = 1e-6, max_value: float = 1e5, rel_error: float = 0.01):
        self.min_value = min_value
        self._log_ratio = math.log1p(rel_error)
        self._n_buckets = math.ceil(math.log(max_value / min_value) / self._log_ratio) + 1
        self.counts = [0] * self._n_buckets
        self.count = 0

    def add(self, value: float) -> None:
        """Record one value."""
        index = 0
        if value > self.min_value:
            index = min(
                int(math.log(value / self.min_value) / self._log_ratio), self._n_buckets - 1
            )
        self.counts[index] += 1
        self.count += 1

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0 ≤ q ≤ 1) of the recorded values; NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return self.min_value * math.exp((index + 0.5) * self._log_ratio)


def per_class_scores(confusion: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 per class from a confusion matrix (rows: truth, cols: answer)."""
    scores = {}
    for c in range(confusion.shape[0]):
        tp = float(confusion[c, c])
        predicted = float(confusion[:, c].sum())
        actual = float(confusion[c, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    return scores


@dataclass
class DeviceUsage:
    """What one device did over the episode."""

    busy_s: float = 0.0
    load_s: float = 0.0
    batches: int = 0
    loads: int = 0
    evictions: int = 0
    cost_usd: float = 0.0
    busy_energy_j: float = 0.0


@dataclass
class EpisodeMetrics:
    """Counters for one episode; :meth:`summary` turns them into the reported metrics.

    Every arrived task ends in exactly one of: completed (on time or late), dropped (its deadline
    passed before its batch started, when the scenario drops expired tasks) or rejected.
    """

    n_classes: list[int]  # per task type
    plan_names: list[str]
    device_names: list[str]
    task_types: list[str]
    arrived: int = 0
    completed: int = 0
    correct: int = 0
    on_time: int = 0
    correct_on_time: int = 0
    rejected: int = 0
    dropped: int = 0
    invalid_actions: int = 0
    escalations: int = 0
    cascade_plans: tuple[int, ...] = ()
    latency_sum_s: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    # Plain lists: they are bumped once per task, where numpy scalar updates cost more.
    confusion_counts: list[list[int]] = field(init=False)  # per task type, flat C×C
    plan_counts: list[int] = field(init=False)
    type_completed: list[int] = field(init=False)
    type_correct: list[int] = field(init=False)
    devices: list[DeviceUsage] = field(init=False)

    def __post_init__(self) -> None:
        self.confusion_counts = [[0] * (c * c) for c in self.n_classes]
        self.plan_counts = [0] * len(self.plan_names)
        self.type_completed = [0] * len(self.task_types)
        self.type_correct = [0] * len(self.task_types)
        self.devices = [DeviceUsage() for _ in self.device_names]

    def record_completion(
        self, *, task_type: int, label: int, answer: int, latency_s: float, on_time: bool, plan: int
    ) -> None:
        """A task was served; ``answer`` is the plan's predicted class."""
        correct = answer == label
        self.completed += 1
        self.correct += correct
        self.on_time += on_time
        self.correct_on_time += correct and on_time
        self.latency_sum_s += latency_s
        self.latency.add(latency_s)
        self.confusion_counts[task_type][label * self.n_classes[task_type] + answer] += 1
        self.plan_counts[plan] += 1
        self.type_completed[task_type] += 1
        self.type_correct[task_type] += correct

    def confusion(self, task_type: int = 0) -> np.ndarray:
        """Confusion matrix of a task type's completed tasks (rows: truth, columns: answer)."""
        counts = self.confusion_counts[task_type]
        return np.array(counts, dtype=np.int64).reshape(self.n_classes[task_type], -1)

    def summary(self, span_s: float, idle_watts: list[float]) -> dict[str, object]:
        """The episode's metrics under stable snake_case keys.

        ``span_s`` is the simulated time from the first arrival to the last completion;
        ``idle_watts`` gives each device's idle power, charged for the time it was not busy.
        """
        arrived = max(self.arrived, 1)
        completed = max(self.completed, 1)
        span = max(span_s, 1e-12)
        busy = [d.busy_s + d.load_s for d in self.devices]
        energy = sum(
            d.busy_energy_j + w * max(span_s - b, 0.0)
            for d, w, b in zip(self.devices, idle_watts, busy, strict=True)
        )
        classes = {t: per_class_scores(self.confusion(i)) for i, t in enumerate(self.task_types)}
        served = [n > 0 for n in self.type_completed]
        macro = [
            float(np.mean([c["f1"] for c in classes[t].values()]))
            for t, s in zip(self.task_types, served, strict=True)
            if s
        ]
        plan_total = max(sum(self.plan_counts), 1)
        cascade_tasks = sum(self.plan_counts[p] for p in self.cascade_plans)
        return {
            "tasks": self.arrived,
            "completed": self.completed,
            "accuracy": self.correct / completed if self.completed else 0.0,
            "effective_accuracy": self.correct_on_time / arrived,
            "slo_attainment": self.on_time / arrived,
            "latency_mean_ms": 1e3 * self.latency_sum_s / completed if self.completed else math.nan,
            "latency_p50_ms": 1e3 * self.latency.quantile(0.50),
            "latency_p95_ms": 1e3 * self.latency.quantile(0.95),
            "latency_p99_ms": 1e3 * self.latency.quantile(0.99),
            "throughput": self.completed / span,
            "goodput": self.correct_on_time / span,
            "reject_rate": self.rejected / arrived,
            "drop_rate": self.dropped / arrived,
            "late_rate": (self.completed - self.on_time) / arrived,
            "invalid_actions": self.invalid_actions,
            "cost_usd": sum(d.cost_usd for d in self.devices),
            "gpu_seconds": sum(busy),
            "energy_j": energy,
            "loads": sum(d.loads for d in self.devices),
            "evictions": sum(d.evictions for d in self.devices),
            "span_s": span_s,
            "macro_f1": float(np.mean(macro)) if macro else 0.0,
            "escalations": self.escalations,
            "escalation_rate": self.escalations / cascade_tasks if cascade_tasks else 0.0,
            "utilization": {n: b / span for n, b in zip(self.device_names, busy, strict=True)},
            "plan_mix": {
                n: int(c) / plan_total
                for n, c in zip(self.plan_names, self.plan_counts, strict=True)
            },
            "accuracy_by_type": {
                t: (int(k) / int(n) if n else math.nan)
                for t, k, n in zip(
                    self.task_types, self.type_correct, self.type_completed, strict=True
                )
            },
            "per_class": classes,
        }
