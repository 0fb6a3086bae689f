"""Why a policy decides as it does: decision traces, sampled decisions, and summary tables.

:class:`TracedPolicy` wraps any policy and records every decision (the observation, the valid
actions, the chosen one, its reward step, and the policy's value of each action when it has
``action_values``: Q-values for tabular agents, probabilities for PPO). From a trace,
:func:`explain` builds what ``mtenv explain`` prints:

* a sample of decisions: the task and the load it met, and the valid actions ranked by value,
  the chosen one marked;
* **plan by difficulty**: for each corruption level of the input, the share of tasks given to
  each plan (over all devices) or rejected;
* **device by load**: for each band of recent load (arrivals per second ÷ the scenario's mean
  rate), the share of tasks sent to each device or rejected.

:func:`write_trace` exports a trace as CSV, one row per decision.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.agents.interfaces import Policy
from mtenv.envs.observation import ObservationLayout

LOAD_BANDS = (0.5, 1.0, 2.0)
"""Upper edges of the load bands of the device-by-load table (the last band is open)."""


@dataclass
class Decision:
    """One decision of a traced run."""

    episode: int
    step: int
    observation: np.ndarray
    mask: np.ndarray
    action: int
    values: np.ndarray | None
    reward: float = math.nan  # the reward of the step this decision was taken in


@dataclass
class TracedPolicy:
    """A policy that records its decisions; behaves exactly as the policy it wraps."""

    policy: Policy
    decisions: list[Decision] = field(default_factory=list)
    _episode: int = -1
    _step: int = 0

    @property
    def name(self) -> str:
        return self.policy.name

    def reset(self, seed: int | None = None) -> None:
        self._episode += 1
        self._step = 0
        self.policy.reset(seed)

    def act(self, observation: np.ndarray, mask: np.ndarray) -> int:
        action = int(self.policy.act(observation, mask))
        values_of = getattr(self.policy, "action_values", None)
        values = None if values_of is None else np.asarray(values_of(observation, mask), float)
        self.decisions.append(
            Decision(
                max(self._episode, 0), self._step, observation.copy(), mask.copy(), action, values
            )
        )
        self._step += 1
        return action

    def observe(self, reward: float, info: dict[str, Any]) -> None:
        if self.decisions:
            self.decisions[-1].reward = float(reward)
        self.policy.observe(reward, info)


def write_trace(
    path: str | Path, decisions: list[Decision], feature_names: list[str], labels: list[str]
) -> Path:
    """The decisions as CSV: episode, step, action and its label, the step's reward, the
    number of valid actions, the chosen action's value (empty without values), then one column
    per observation feature. Written to a temporary file and renamed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["episode", "step", "action", "label", "reward", "n_valid", "value", *feature_names]
        )
        for d in decisions:
            value = "" if d.values is None else repr(float(d.values[d.action]))
            writer.writerow(
                [
                    d.episode,
                    d.step,
                    d.action,
                    labels[d.action],
                    repr(d.reward),
                    int(np.count_nonzero(d.mask)),
                    value,
                    *(repr(float(x)) for x in d.observation),
                ]
            )
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Explanation:
    """What :func:`format_explanation` prints."""

    samples: list[Decision]
    plan_by_difficulty: dict[str, dict[str, float]]
    device_by_load: dict[str, dict[str, float]]
    counts_by_difficulty: dict[str, int]
    counts_by_load: dict[str, int]


def explain(
    decisions: list[Decision], env: Any, samples: int = 6
) -> Explanation:  # env: the unwrapped TaskAllocationEnv the trace came from
    """Sampled decisions (evenly spaced over the trace) and the two summary tables."""
    env = env.unwrapped
    layout = ObservationLayout.of(env)
    plan_names, device_names = list(env.catalog.plan_names), list(env.catalog.device_names)

    by_diff: dict[str, dict[str, float]] = {}
    by_load: dict[str, dict[str, float]] = {}
    for d in decisions:
        level = f"L{layout.difficulty_level(d.observation)}"
        band = _band(layout.arrival_rate(d.observation))
        if d.action == env.reject_action:
            plan = device = "reject"
        else:
            plan = plan_names[d.action // env.n_devices]
            device = device_names[d.action % env.n_devices]
        by_diff.setdefault(level, {}).setdefault(plan, 0.0)
        by_diff[level][plan] += 1
        by_load.setdefault(band, {}).setdefault(device, 0.0)
        by_load[band][device] += 1

    counts_diff = {k: int(sum(v.values())) for k, v in by_diff.items()}
    counts_load = {k: int(sum(v.values())) for k, v in by_load.items()}
    pick = np.linspace(0, len(decisions) - 1, num=min(samples, len(decisions))).astype(int)
    return Explanation(
        samples=[decisions[i] for i in dict.fromkeys(pick.tolist())],
        plan_by_difficulty=_shares(by_diff, [*plan_names, "reject"], sorted(by_diff)),
        device_by_load=_shares(by_load, [*device_names, "reject"], _band_order(by_load)),
        counts_by_difficulty=counts_diff,
        counts_by_load=counts_load,
    )


def _band(rate: float) -> str:
    low = 0.0
    for high in LOAD_BANDS:
        if rate < high:
            return f"{low:g}-{high:g}x"
        low = high
    return f">={low:g}x"


def _band_order(table: dict[str, Any]) -> list[str]:
    order = [_band(x) for x in (0.0, *LOAD_BANDS)]
    return [b for b in order if b in table]


def _shares(
    counts: dict[str, dict[str, float]], columns: list[str], rows: list[str]
) -> dict[str, dict[str, float]]:
    out = {}
    for row in rows:
        total = sum(counts[row].values())
        out[row] = {c: counts[row].get(c, 0.0) / total for c in columns}
    return out


def format_explanation(expl: Explanation, env: Any, value_label: str | None, top: int = 6) -> str:
    """The explanation as plain text (what ``mtenv explain`` prints)."""
    env = env.unwrapped
    layout = ObservationLayout.of(env)
    lines = []
    for d in expl.samples:
        lines += _format_decision(d, layout, env, value_label, top)
        lines.append("")
    lines.append("plan by difficulty (share of tasks at each corruption level):")
    lines += _format_table(expl.plan_by_difficulty, expl.counts_by_difficulty, "level")
    lines.append("")
    lines.append("device by load (share of tasks; load = recent arrival rate ÷ mean rate):")
    lines += _format_table(expl.device_by_load, expl.counts_by_load, "load")
    return "\n".join(lines)


def _format_decision(
    d: Decision,
    layout: ObservationLayout,
    env: Any,
    value_label: str | None,
    top: int,
) -> list[str]:
    obs, catalog, labels = d.observation, env.catalog, env.action_labels
    # The observation holds weight ÷ largest weight; people read the scenario's weight.
    weights = env.sim.generator.priority_weights
    priority = float(weights[np.argmin(np.abs(weights / weights.max() - layout.priority(obs)))])
    head = (
        f"episode {d.episode} step {d.step}: task {catalog.task_types[layout.task_type(obs)]}, "
        f"difficulty L{layout.difficulty_level(obs)}, priority {priority:g}; "
        f"load {layout.arrival_rate(obs):.2f}x, recent SLO misses {layout.slo_miss(obs):.0%}"
    )
    queue, wait, est = layout.queue(obs), layout.wait(obs), layout.est(obs).ravel()
    devices = "  ".join(
        f"{dev}: queue {queue[i]:.2f} wait {wait[i]:.2f}"
        for i, dev in enumerate(catalog.device_names)
    )
    valid = np.flatnonzero(d.mask)
    if d.values is not None:
        ranked = sorted(valid, key=lambda a: -np.nan_to_num(d.values[a], nan=-np.inf))
    else:
        ranked = list(valid)
    shown = list(ranked[:top])
    if d.action not in shown:
        shown.append(d.action)
    rows = [head, f"  devices ÷ SLO: {devices}", f"  {len(valid)} valid actions:"]
    for a in shown:
        mark = "*" if a == d.action else " "
        est_text = f"  est {est[a]:.2f}×SLO" if a < len(est) else ""
        value = "" if d.values is None else f"  {value_label or 'value'} {d.values[a]:+.3f}"
        rows.append(f"   {mark} {labels[a]:<32}{value}{est_text}")
    return rows


def _format_table(
    table: dict[str, dict[str, float]], counts: dict[str, int], row_title: str
) -> list[str]:
    if not table:
        return ["  (no decisions)"]
    columns = list(next(iter(table.values())))
    width = max(6, *(len(c) for c in columns))
    lines = [f"  {row_title:<8}{'tasks':>7}  " + "  ".join(f"{c:>{width}}" for c in columns)]
    for row, shares in table.items():
        cells = "  ".join(f"{shares[c]:>{width}.0%}" for c in columns)
        lines.append(f"  {row:<8}{counts[row]:>7}  {cells}")
    return lines
