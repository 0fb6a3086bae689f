"""Recording a run to a folder that ``mtenv plot`` can draw from.

A run folder holds, in safe formats only:

* ``run.json``: the scenario, policy, seed, inference mode, each episode's metrics and their
  summary (mean, std, 95 % CI);
* ``timeline.csv``: one row per decision: episode, step, simulated time, the action's label,
  its plan and device, and each device's busy seconds so far;
* ``latencies.npz``: per episode, the latency in milliseconds of every completed task.

Per-task history is kept only here, when a recording is asked for; the env itself keeps none.
Files are written to a temporary folder beside the target and renamed into place at the end, so
an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.core.tasks import TaskStatus
from mtenv.tools.evaluation import summarize_runs


class RunRecorder:
    """Collects what a run's plots need while episodes are played (reads the env's simulator
    as an observer; the policy never sees any of it)."""

    def __init__(self, env: Any):
        self.env = env.unwrapped
        sim = self.env.sim
        self.device_names = list(sim.device_names)
        self.rows: list[list[Any]] = []
        self.latencies: list[list[float]] = []
        self.episode = -1

    def start_episode(self) -> None:
        self.episode += 1
        self.latencies.append([])
        self._step = 0

    def record_step(self, action: int) -> None:
        """Before a step: the decision about to be made, and the devices' busy time so far."""
        env, sim = self.env, self.env.sim
        label = env.action_labels[action] if 0 <= action < len(env.action_labels) else "invalid"
        plan, _, device = label.rpartition("@") if label != "reject" else ("reject", "", "")
        busy = sim.busy_time().tolist()
        self.rows.append([self.episode, self._step, sim.now, label, plan, device, *busy])
        self._step += 1

    def record_settled(self) -> None:
        """After a step: the latencies of the tasks it completed."""
        self.latencies[-1].extend(
            1e3 * (t.finished - t.arrival)
            for t in self.env.settled
            if t.status is TaskStatus.COMPLETED
        )

    def write(self, out: Path, header: dict[str, Any], runs: list[dict[str, Any]]) -> Path:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            summary = {k: s.as_dict() for k, s in summarize_runs(runs).items()}
            payload = {**header, "episodes": runs, "summary": summary}
            (tmp / "run.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
            with open(tmp / "timeline.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(
                    ["episode", "step", "time_s", "action", "plan", "device"]
                    + [f"busy_s.{d}" for d in self.device_names]
                )
                writer.writerows(self.rows)
            np.savez_compressed(
                tmp / "latencies.npz",
                **{
                    f"episode_{i}": np.asarray(lat, dtype=np.float64)
                    for i, lat in enumerate(self.latencies)
                },
            )
            if out.exists():  # a previous recording (the caller checked): replace it whole
                shutil.rmtree(out)
            tmp.rename(out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return out


def _json_safe(value: Any) -> Any:
    """Strict JSON: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
