"""The simulation core: tasks, arrivals, devices, plans, inference, the event loop, metrics, reward.

It imports nothing from Gymnasium, pygame or stable-baselines3 and does no file output: the env
(:mod:`mtenv.envs`) adapts it to Gymnasium, the viewer (:mod:`mtenv.render`) reads its snapshots.

* :mod:`~mtenv.core.tasks`: one task's state (:class:`Task`) and life cycle.
* :mod:`~mtenv.core.arrivals` and :mod:`~mtenv.core.traces`: when tasks arrive.
* :mod:`~mtenv.core.workload`: which tasks arrive (type, input, difficulty, priority).
* :mod:`~mtenv.core.devices` and :mod:`~mtenv.core.profiles`: device specs and per-(model,
  device) latency profiles.
* :mod:`~mtenv.core.plans`: plan kinds and how a plan's model outputs become one answer.
* :mod:`~mtenv.core.stages`: the units of work a device batches, run with the real models.
* :mod:`~mtenv.core.inference`: the real forward passes, live or memoized.
* :mod:`~mtenv.core.simulator`: the discrete-event loop (queues, batching, loads, evictions).
* :mod:`~mtenv.core.metrics` and :mod:`~mtenv.core.reward`: what an episode scored.
* :mod:`~mtenv.core.snapshot`: a read-only picture of the state, for viewers.
* :mod:`~mtenv.core.schema`: the validated scenario that configures all of the above.
"""
