"""The discrete-event simulator of a serving cluster.

Simulated time moves from event to event: the next task arrival (from the task generator) or the
earliest entry of a heap of device events (a batch or a weight load finishing, a batching timer
expiring). The allocator is asked for a decision at every arrival; between decisions the simulator
runs every event that falls before the next arrival.

Each device serves one batch at a time. Its queue is split by plan, because one batch runs one
plan's models on all its tasks. When the device is free it starts the plan queue whose oldest task
has waited longest among the *ready* ones: a queue is ready once it holds ``max_batch`` tasks or
its oldest task has waited ``batch_timeout`` (dynamic batching, as Triton and Clipper do). If a
model of that plan is not resident, the device first loads it (cold start), evicting the least
recently used models that the plan does not need. At batch start the plan's real models run one
batched forward pass on the batch's real inputs; the batch finishes ``alpha + beta · b`` seconds
later, when its tasks are completed and their metrics recorded.

The simulator imports nothing from Gymnasium, pygame or any RL library: the env adapts it.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict, deque
from functools import partial

import numpy as np

from mtenv.core.devices import DeviceSpec
from mtenv.core.inference import InferenceEngine
from mtenv.core.metrics import DeviceUsage, EpisodeMetrics
from mtenv.core.plans import Plan
from mtenv.core.profiles import LatencyProfile, ProfileScale, derive_profile
from mtenv.core.schema import Scenario
from mtenv.core.stages import TRUNK, StageRunner, build_stages
from mtenv.core.tasks import Task, TaskStatus
from mtenv.core.workload import TaskGenerator

_DONE, _WAKE = 0, 1


class DeviceState:
    """A device's runtime state: queues, the activity in flight, resident models, usage.

    ``busy``, ``busy_since``, ``busy_until``, ``n_queued`` and ``used_bytes`` are mirrored in the
    simulator's per-device arrays (``is_busy``, ``queue_len``, ...), which the observation reads
    vectorised; the scalars here serve the per-event hot path. Both are written together.
    """

    __slots__ = (
        "batch",
        "busy",
        "busy_since",
        "busy_until",
        "index",
        "loading",
        "max_batch",
        "max_queue",
        "n_queued",
        "name",
        "pending_cost",
        "pending_energy",
        "queues",
        "resident",
        "spec",
        "timeout_s",
        "usage",
        "used_bytes",
        "wake_at",
    )

    def __init__(
        self,
        index: int,
        name: str,
        spec: DeviceSpec,
        max_batch: int,
        timeout_s: float,
        max_queue: int,
        n_plans: int,
        usage: DeviceUsage,
    ):
        self.index = index
        self.name = name
        self.spec = spec
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.max_queue = max_queue
        self.queues: list[deque[Task]] = [deque() for _ in range(n_plans)]
        self.n_queued = 0
        self.busy = False
        self.busy_since = 0.0
        self.busy_until = 0.0
        self.batch: list[Task] = []
        self.loading = -1
        self.resident: OrderedDict[int, None] = OrderedDict()
        self.used_bytes = 0.0
        self.wake_at = math.inf
        self.pending_cost = 0.0
        self.pending_energy = 0.0
        self.usage = usage


class Simulator:
    """One cluster serving one scenario's workload.

    Args:
        scenario: the validated scenario.
        generator: draws the tasks and their arrival times.
        engine: runs the real models.

    Use :meth:`reset`, then alternate :meth:`dispatch` / :meth:`reject` on the returned task and
    :meth:`advance` to the next one; once :meth:`advance` returns ``None`` (the episode's tasks
    have all arrived) call :meth:`drain`. Tasks whose fate is settled are handed out once by
    :meth:`take_finished`.
    """

    def __init__(self, scenario: Scenario, generator: TaskGenerator, engine: InferenceEngine):
        self.scenario = scenario
        self.generator = generator
        self.engine = engine
        self.zoo = engine.zoo
        self.episode_tasks = scenario.episode_tasks
        self.drop_expired = scenario.workload.drop_expired
        self.plans: list[Plan] = scenario.plan_list()
        self.models: list[str] = list(scenario.models)
        self.device_names = scenario.device_names()
        self.task_types = generator.task_types
        entries = scenario.device_entries()
        self.specs = [e.spec() for e in entries]
        self._entries = entries
        self.layout = build_stages(self.plans, self.models)
        self.runner = StageRunner(self.plans, self.models, self.task_types, self.layout, engine)
        self._build_profiles()

    # --- static tables -----------------------------------------------------------------------

    def _build_profiles(self) -> None:
        scale = self.scenario.profile.scale()
        overrides = {(o.model, o.device): o for o in self.scenario.profile.overrides}
        zoo_latency = {m: self.zoo.model(m).latency_ms for m in self.models}
        n_m, n_d, n_p = len(self.models), len(self.specs), len(self.plans)
        self.model_profiles: list[list[LatencyProfile]] = []
        for m in self.models:
            stats = self.zoo.stats(m)
            row = []
            for spec in self.specs:
                prof = derive_profile(
                    flops=stats.flops,
                    weight_bytes=stats.weight_bytes,
                    layers=stats.layers,
                    device=spec,
                    scale=scale,
                )
                o = overrides.get((m, spec.kind))
                measured = (
                    (o.alpha_ms, o.beta_ms) if o is not None else zoo_latency[m].get(spec.kind)
                )
                if measured is not None:
                    alpha_ms, beta_ms = measured
                    prof = LatencyProfile(
                        alpha_ms / 1e3, beta_ms / 1e3, prof.load_s, prof.weight_bytes
                    )
                row.append(prof)
            self.model_profiles.append(row)
        model_index = {m: i for i, m in enumerate(self.models)}
        self.plan_models: list[tuple[int, ...]] = [
            tuple(model_index[m] for m in p.models) for p in self.plans
        ]
        self.model_bytes = np.array([self.model_profiles[m][0].weight_bytes for m in range(n_m)])
        self.model_load_s = np.array(
            [[self.model_profiles[m][d].load_s for d in range(n_d)] for m in range(n_m)]
        )

        def together(members: tuple[int, ...], d: int) -> LatencyProfile:
            """Members run one after another: their times add up."""
            return sum(
                (self.model_profiles[m][d] for m in members[1:]), self.model_profiles[members[0]][d]
            )

        # A plan's latency for the observation's estimates: every model it may run (a cascade's
        # worst case, escalation included).
        plan_profiles = [[together(members, d) for d in range(n_d)] for members in self.plan_models]
        self.plan_alpha = np.array([[pp.alpha_s for pp in row] for row in plan_profiles])
        self.plan_beta = np.array([[pp.beta_s for pp in row] for row in plan_profiles])
        # Stage latencies drive the clock; Python lists for scalar reads on the hot path.
        stage_profiles = [[together(st.models, d) for d in range(n_d)] for st in self.layout.stages]
        self._alpha: list[list[float]] = [[pp.alpha_s for pp in row] for row in stage_profiles]
        self._beta: list[list[float]] = [[pp.beta_s for pp in row] for row in stage_profiles]
        self._trunk_parts = {
            i: self._trunk_profiles(self.models[st.models[0]], scale)
            for i, st in enumerate(self.layout.stages)
            if st.kind == TRUNK
        }
        capacity = np.array([s.memory_bytes for s in self.specs])
        plan_bytes = np.array(
            [self.model_bytes[list(members)].sum() for members in self.plan_models]
        )
        self.plan_fits = plan_bytes[:, None] <= capacity[None, :]
        self.plan_model_matrix = np.zeros((n_p, n_m), dtype=bool)
        for p, members in enumerate(self.plan_models):
            self.plan_model_matrix[p, list(members)] = True
        self.plan_serves = np.array(
            [[t in plan.task_types for t in self.task_types] for plan in self.plans], dtype=bool
        ).reshape(n_p, len(self.task_types))
        self.capacity = capacity

    def _trunk_profiles(
        self, model: str, scale: ProfileScale
    ) -> list[tuple[LatencyProfile, dict[int, LatencyProfile]]]:
        """Per device: the shared trunk's profile and each task type's head profile, priced
        from the multi-task model's measured trunk and head FLOPs (weights stream once, with
        the trunk)."""
        stats = self.zoo.stats(model)
        parts = []
        for spec in self.specs:
            price = partial(derive_profile, device=spec, scale=scale)
            trunk = price(
                flops=stats.trunk_flops, weight_bytes=stats.weight_bytes, layers=stats.trunk_layers
            )
            heads = {
                t: price(
                    flops=stats.head_flops[name], weight_bytes=0, layers=stats.head_layers[name]
                )
                for t, name in enumerate(self.task_types)
                if name in stats.head_flops
            }
            parts.append((trunk, heads))
        return parts

    def _batch_latency(self, stage: int, device: int, batch: list[Task]) -> float:
        """Seconds a batch of a stage takes on a device: ``alpha + beta · b``; for a shared trunk,
        the trunk on the whole batch plus each task type's head on its own tasks."""
        parts = self._trunk_parts.get(stage)
        if parts is None:
            return self._alpha[stage][device] + self._beta[stage][device] * len(batch)
        trunk, heads = parts[device]
        counts = Counter(task.type for task in batch)
        return trunk.batch_latency(len(batch)) + sum(
            heads[t].batch_latency(n) for t, n in counts.items()
        )

    # --- episode control ---------------------------------------------------------------------

    def reset(self, rng: np.random.Generator) -> Task:
        """Start a new episode; returns the first task to decide."""
        self.now = 0.0
        self._events: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._finished: list[Task] = []
        self.arrived = 0
        self.in_flight = 0
        self.last_completion = 0.0
        self.metrics = EpisodeMetrics(
            n_classes=[self.zoo.n_classes[t] for t in self.task_types],
            cascade_plans=tuple(p for p, e in enumerate(self.layout.escalation) if e >= 0),
            plan_names=[p.name for p in self.plans],
            device_names=self.device_names,
            task_types=self.task_types,
        )
        n_d, n_m = len(self.specs), len(self.models)
        self.devices = [
            DeviceState(
                d,
                self.device_names[d],
                spec,
                e.max_batch,
                e.batch_timeout_ms / 1e3,
                e.max_queue,
                len(self.layout.stages),
                self.metrics.devices[d],
            )
            for d, (spec, e) in enumerate(zip(self.specs, self._entries, strict=True))
        ]
        self.resident = np.zeros((n_d, n_m), dtype=bool)
        self.queue_len = np.zeros(n_d, dtype=np.int64)
        self.full_queues = 0
        self.queued_work_s = np.zeros(n_d)
        self.busy_until = np.zeros(n_d)
        self.busy_acc_s = np.zeros(n_d)
        self.busy_since = np.zeros(n_d)
        self.is_busy = np.zeros(n_d)
        self.used_bytes = np.zeros(n_d)
        self.residency_version = 0
        self._missing_load_version = -1
        model_index = {m: i for i, m in enumerate(self.models)}
        for dev, entry in zip(self.devices, self._entries, strict=True):
            for name in entry.resident:
                m = model_index[name]
                if dev.used_bytes + self.model_bytes[m] <= dev.spec.memory_bytes:
                    self._make_resident(dev, m)
        self.runner.reset()
        self.generator.reset(rng)
        first = self.advance()
        assert first is not None, "an episode has at least one task"
        return first

    def advance(self) -> Task | None:
        """Run events up to the next arrival and return that task; ``None`` once the episode's
        tasks have all arrived (or a non-looping trace ran out)."""
        if self.arrived >= self.episode_tasks:
            return None
        task = self.generator.next_task()
        if math.isinf(task.arrival):
            return None
        self._run_until(task.arrival)
        self.now = task.arrival
        self.arrived += 1
        self.metrics.arrived += 1
        return task

    def drain(self) -> None:
        """Serve every queued and running task to completion (the episode's end)."""
        self._run_until(math.inf)

    def take_finished(self) -> list[Task]:
        """Tasks settled (completed, dropped or rejected) since the last call."""
        done, self._finished = self._finished, []
        return done

    # --- decisions ---------------------------------------------------------------------------

    def can_run(self, plan: int, device: int, task_type: int) -> bool:
        """Whether ``plan`` on ``device`` is a valid action for a task of ``task_type``."""
        return bool(
            self.plan_serves[plan, task_type]
            and self.plan_fits[plan, device]
            and self.queue_len[device] < self.devices[device].max_queue
        )

    def reject(self, task: Task, invalid: bool = False) -> None:
        """Turn the task away."""
        task.status = TaskStatus.REJECTED
        task.invalid_action = invalid
        task.finished = self.now
        self.metrics.rejected += 1
        self.metrics.invalid_actions += invalid
        self._finished.append(task)

    def dispatch(self, task: Task, plan: int, device: int) -> None:
        """Queue the task on ``device`` to be served by ``plan`` (the caller checked validity)."""
        task.plan = plan
        task.device = device
        self.in_flight += 1
        self._enqueue(task, self.layout.first[plan], self.devices[device])

    def _enqueue(self, task: Task, stage: int, dev: DeviceState) -> None:
        task.status = TaskStatus.QUEUED
        task.stage = stage
        task.enqueued = self.now
        queue = dev.queues[stage]
        before = self._queue_work(dev, stage, len(queue))
        queue.append(task)
        dev.n_queued += 1
        self.queue_len[dev.index] += 1
        if dev.n_queued == dev.max_queue:
            self.full_queues += 1
        self.queued_work_s[dev.index] += self._queue_work(dev, stage, len(queue)) - before
        if not dev.busy:
            self._try_start(dev)

    # --- observation helpers -----------------------------------------------------------------

    def expected_wait(self, out: np.ndarray | None = None) -> np.ndarray:
        """Per device: seconds until a newly queued task could start (current activity plus the
        work already queued, at the profiles' batch latencies); into ``out`` if given."""
        wait = np.subtract(self.busy_until, self.now, out=out)
        np.maximum(wait, 0.0, out=wait)
        wait += self.queued_work_s
        return wait

    def missing_load_s(self) -> np.ndarray:
        """``[plan, device]`` seconds of weight loading a batch of the plan would need now."""
        if self._missing_load_version != self.residency_version:
            missing = ~self.resident  # [D, M]
            self._missing_load = (
                self.plan_model_matrix[:, None, :]
                * missing[None, :, :]
                * self.model_load_s.T[None, :, :]
            ).sum(axis=2)
            self._missing_load_version = self.residency_version
        return self._missing_load

    def busy_time(self, out: np.ndarray | None = None) -> np.ndarray:
        """Per device: seconds spent busy (running or loading) up to now; into ``out`` if
        given."""
        busy = np.subtract(self.now, self.busy_since, out=out)
        busy *= self.is_busy
        busy += self.busy_acc_s
        return busy

    def free_memory(self) -> np.ndarray:
        """Per device: fraction of memory not taken by resident weights."""
        return 1.0 - self.used_bytes / self.capacity

    # --- events ------------------------------------------------------------------------------

    def _push(self, time: float, kind: int, device: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, kind, device))

    def _run_until(self, horizon: float) -> None:
        events = self._events
        while events and events[0][0] <= horizon:
            time, _, kind, device = heapq.heappop(events)
            self.now = time
            dev = self.devices[device]
            if kind == _DONE:
                self._finish_activity(dev)
                self._try_start(dev)
            elif dev.wake_at == time:
                dev.wake_at = math.inf
                if not dev.busy:
                    self._try_start(dev)

    def _queue_work(self, dev: DeviceState, stage: int, n: int) -> float:
        if n == 0:
            return 0.0
        batches = -(-n // dev.max_batch)
        return batches * self._alpha[stage][dev.index] + n * self._beta[stage][dev.index]

    def _try_start(self, dev: DeviceState) -> None:
        """Start the next batch (or the load it needs) if a stage queue is ready."""
        if dev.busy or dev.n_queued == 0:
            return
        now = self.now
        best, best_head, next_wake = -1, math.inf, math.inf
        for p, queue in enumerate(dev.queues):
            if not queue:
                continue
            head = queue[0].enqueued
            due = head + dev.timeout_s
            if len(queue) >= dev.max_batch or due <= now:
                if head < best_head:
                    best, best_head = p, head
            elif due < next_wake:
                next_wake = due
        if best < 0:
            if next_wake < dev.wake_at:
                dev.wake_at = next_wake
                self._push(next_wake, _WAKE, dev.index)
            return
        for m in self.layout.stages[best].models:
            if m not in dev.resident:
                self._start_load(dev, m, best)
                return
        self._start_batch(dev, best)

    def _start_load(self, dev: DeviceState, model: int, stage: int) -> None:
        needed = set(self.layout.stages[stage].models)
        for victim in list(dev.resident):
            if dev.used_bytes + self.model_bytes[model] <= dev.spec.memory_bytes:
                break
            if victim not in needed:
                self._evict(dev, victim)
        duration = self.model_profiles[model][dev.index].load_s
        dev.loading = model
        self._begin(dev, duration)
        dev.usage.loads += 1
        dev.usage.load_s += duration
        cost = dev.spec.price_per_hour * duration / 3600.0
        dev.usage.cost_usd += cost
        dev.pending_cost += cost
        energy = dev.spec.busy_watts * duration
        dev.usage.busy_energy_j += energy
        dev.pending_energy += energy

    def _start_batch(self, dev: DeviceState, stage: int) -> None:
        queue = dev.queues[stage]
        before_len = len(queue)
        before = self._queue_work(dev, stage, before_len)
        batch: list[Task] = []
        now = self.now
        while queue and len(batch) < dev.max_batch:
            task = queue.popleft()
            if self.drop_expired and task.deadline < now:
                self._drop(task)
                continue
            batch.append(task)
        popped = before_len - len(queue)
        if dev.n_queued >= dev.max_queue > dev.n_queued - popped:
            self.full_queues -= 1
        dev.n_queued -= popped
        self.queue_len[dev.index] -= popped
        taken = before - self._queue_work(dev, stage, len(queue))
        self.queued_work_s[dev.index] = max(self.queued_work_s[dev.index] - taken, 0.0)
        if not batch:
            self._try_start(dev)
            return
        for m in self.layout.stages[stage].models:
            dev.resident.move_to_end(m)
        self.runner.run(stage, batch)
        duration = self._batch_latency(stage, dev.index, batch)
        cost = dev.spec.price_per_hour * duration / 3600.0 + dev.pending_cost
        energy = dev.spec.busy_watts * duration + dev.pending_energy
        dev.pending_cost = dev.pending_energy = 0.0
        share = 1.0 / len(batch)
        for task in batch:
            task.status = TaskStatus.RUNNING
            if not task.escalated:
                task.started = now
            task.cost_usd += cost * share
            task.energy_j += energy * share
        dev.batch = batch
        dev.loading = -1
        self._begin(dev, duration)
        dev.usage.batches += 1
        dev.usage.busy_s += duration
        dev.usage.cost_usd += dev.spec.price_per_hour * duration / 3600.0
        dev.usage.busy_energy_j += dev.spec.busy_watts * duration

    def _begin(self, dev: DeviceState, duration: float) -> None:
        dev.busy = True
        dev.busy_since = self.now
        dev.busy_until = self.now + duration
        self.busy_since[dev.index] = self.now
        self.is_busy[dev.index] = 1.0
        self.busy_until[dev.index] = dev.busy_until
        self._push(dev.busy_until, _DONE, dev.index)

    def _finish_activity(self, dev: DeviceState) -> None:
        dev.busy = False
        self.busy_acc_s[dev.index] += self.now - dev.busy_since
        self.is_busy[dev.index] = 0.0
        if dev.loading >= 0:
            self._make_resident(dev, dev.loading)
            dev.loading = -1
            return
        now = self.now
        metrics = self.metrics
        batch, dev.batch = dev.batch, []
        done = []
        escalation = self.layout.escalation
        for task in batch:
            if task.escalate:  # the cascade's first model was unsure: on to its second
                task.escalate = False
                task.escalated = True
                metrics.escalations += 1
                self._enqueue(task, escalation[task.plan], dev)
                continue
            task.status = TaskStatus.COMPLETED
            task.finished = now
            metrics.record_completion(
                task_type=task.type,
                label=task.label,
                answer=task.answer,
                latency_s=now - task.arrival,
                on_time=now <= task.deadline,
                plan=task.plan,
            )
            done.append(task)
        self.in_flight -= len(done)
        self.last_completion = now
        self.runner.feedback(done)
        self._finished.extend(done)

    def _drop(self, task: Task) -> None:
        task.status = TaskStatus.DROPPED
        task.finished = self.now
        self.metrics.dropped += 1
        self.in_flight -= 1
        self._finished.append(task)

    def _make_resident(self, dev: DeviceState, model: int) -> None:
        dev.resident[model] = None
        dev.used_bytes += self.model_bytes[model]
        self.used_bytes[dev.index] = dev.used_bytes
        self.resident[dev.index, model] = True
        self.residency_version += 1

    def _evict(self, dev: DeviceState, model: int) -> None:
        del dev.resident[model]
        dev.used_bytes -= self.model_bytes[model]
        self.used_bytes[dev.index] = dev.used_bytes
        self.resident[dev.index, model] = False
        dev.usage.evictions += 1
        self.residency_version += 1

    # --- summary -----------------------------------------------------------------------------

    def episode_metrics(self) -> dict[str, object]:
        """The metrics of the episode so far (complete once :meth:`drain` has run)."""
        span = max(self.last_completion, self.now)
        metrics = self.metrics.summary(span, [s.idle_watts for s in self.specs])
        weights = {
            self.plans[p].name: dict(
                zip(self.plans[p].models, self.runner.weights(p).tolist(), strict=True)
            )
            for p in sorted({*self.runner.online, *self.runner.fixed_weights})
        }
        if weights:
            metrics["ensemble_weights"] = weights
        return metrics
