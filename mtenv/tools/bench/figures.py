"""The figures of a benchmark report, as PNG and PDF, drawn headless (matplotlib's Agg).

Each figure is drawn from an :class:`~mtenv.tools.bench.stats.Analysis` alone; one whose data
the results lack is skipped with the reason (:func:`plan`). Files are written atomically and
carry no timestamp, so the same results give the same files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.render.plots import PALETTE, pareto_front
from mtenv.tools.bench.stats import (
    BEST_BASELINE,
    LEVEL,
    TRAINED,
    Analysis,
    t_band,
)

FIGURES = {
    "returns": "mean return per policy with Student-t 95 % CIs over seeds, a panel per scenario",
    "iqm": "IQM of normalised scores per policy with stratified bootstrap 95 % CIs",
    "performance_profile": "fraction of (scenario, seed) normalised scores above τ, with "
    "bootstrap 95 % bands",
    "probability_of_improvement": "P(policy > reference) with stratified bootstrap 95 % CIs",
    "latency_cdf": "latency CDF per policy (mean of each percentile over episodes), a panel "
    "per scenario",
    "pareto": "accuracy against cost per policy, the non-dominated ones joined, a panel per "
    "scenario",
    "learning_curves": "episode return over training steps of trained policies, mean and "
    "Student-t 95 % CI over seeds, a panel per scenario",
}
"""Each figure's file stem and what it shows."""
_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend; raises ``ImportError`` without it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plan(analysis: Analysis) -> dict[str, str | None]:
    """Per figure, ``None`` when the results hold its data, else why it is skipped."""
    scenarios = list(analysis.scenarios.values())
    policies = [r for s in scenarios for r in s.policies.values()]
    nothing = "no episode records" if not policies else None
    reasons: dict[str, str | None] = {
        "returns": nothing,
        "iqm": nothing or (None if analysis.aggregates else "no scenario could be normalised"),
        "performance_profile": None,
        "probability_of_improvement": None,
        "latency_cdf": nothing
        or (
            None
            if any(r.latency_cdf is not None for r in policies)
            else "no episode recorded a latency CDF"
        ),
        "pareto": nothing
        or (
            None
            if any(_point(r.metrics) for r in policies)
            else "no policy has both accuracy and cost_usd"
        ),
        "learning_curves": nothing
        or (None if _bands(analysis) else "no trained policy with learning curves"),
    }
    reasons["performance_profile"] = reasons["iqm"]
    if reasons["iqm"] is None and not any(a.improvement for a in analysis.aggregates):
        reasons["probability_of_improvement"] = "no policy shares a scenario with the reference"
    else:
        reasons["probability_of_improvement"] = reasons["iqm"]
    return reasons


def draw(analysis: Analysis, folder: Path) -> list[Path]:
    """Draw every figure :func:`plan` allows into ``folder`` (PNG and PDF); remove the files of
    a skipped one left by an earlier report; returns the files written."""
    plt = pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[[Any, Analysis], Any]] = {
        "returns": _returns,
        "iqm": _iqm,
        "performance_profile": _profile,
        "probability_of_improvement": _improvement,
        "latency_cdf": _latency,
        "pareto": _pareto,
        "learning_curves": _learning,
    }
    written = []
    with plt.rc_context({"font.size": 8}):
        for name, reason in plan(analysis).items():
            if reason is not None:
                for suffix in (".png", ".pdf"):
                    (folder / f"{name}{suffix}").unlink(missing_ok=True)
                continue
            fig = drawers[name](plt, analysis)
            for suffix, metadata in (
                (".png", {"Software": None}),
                (".pdf", {"CreationDate": None, "Producer": None}),
            ):
                path = folder / f"{name}{suffix}"
                tmp = folder / f".{name}.tmp{suffix}"
                fig.savefig(tmp, format=suffix[1:], dpi=150, metadata=metadata)
                os.replace(tmp, path)
                written.append(path)
            plt.close(fig)
    return written


def _style(analysis: Analysis, policy: str) -> dict[str, Any]:
    """One colour, line style and marker per policy, the same in every figure."""
    order = [*analysis.policies, BEST_BASELINE]
    i = order.index(policy) if policy in order else len(order)
    return {
        "color": PALETTE[i % len(PALETTE)],
        "linestyle": _STYLES[(i // len(PALETTE)) % len(_STYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
    }


def _panels(plt: Any, count: int, width: float = 4.2, height: float = 3.2) -> tuple[Any, list]:
    cols = min(3, max(count, 1))
    rows = math.ceil(max(count, 1) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows + 0.4), layout="constrained", squeeze=False
    )
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def _returns(plt: Any, analysis: Analysis) -> Any:
    scenarios = list(analysis.scenarios.values())
    height = 0.9 + 0.22 * max(len(s.policies) for s in scenarios)
    fig, axes = _panels(plt, len(scenarios), height=height)
    for ax, s in zip(axes, scenarios, strict=True):
        names = list(s.policies)[::-1]
        means = [s.policies[p].returns.value for p in names]
        halves = [(s.policies[p].returns.high - s.policies[p].returns.low) / 2 for p in names]
        halves = [h if math.isfinite(h) else 0.0 for h in halves]
        colors = [_style(analysis, p)["color"] for p in names]
        bars = ax.barh(
            range(len(names)),
            means,
            xerr=halves,
            color=colors,
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
        if s.reference in names:
            bars[names.index(s.reference)].set_hatch("//")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("mean episode return")
        ax.set_title(f"{s.name} (hatched: reference)" if s.reference else s.name)
    fig.suptitle(f"Return per scenario, Student-t {LEVEL:.0%} CIs over seeds")
    return fig


def _aggregate_points(plt: Any, analysis: Analysis, which: str) -> Any:
    rows = [a for a in analysis.aggregates if getattr(a, which) is not None]
    rows.sort(key=lambda a: getattr(a, which).value)
    fig, ax = plt.subplots(figsize=(5.2, 0.8 + 0.28 * len(rows)), layout="constrained")
    for y, a in enumerate(rows):
        e = getattr(a, which)
        err = np.array([[max(e.value - e.low, 0)], [max(e.high - e.value, 0)]])
        style = _style(analysis, a.policy)
        ax.errorbar(
            e.value,
            y,
            xerr=np.nan_to_num(err),
            fmt=style["marker"],
            color=style["color"],
            capsize=3,
        )
    ax.set_yticks(range(len(rows)), [a.policy for a in rows])
    ax.grid(axis="x", alpha=0.3)
    return fig, ax


def _iqm(plt: Any, analysis: Analysis) -> Any:
    fig, ax = _aggregate_points(plt, analysis, "iqm")
    for x in (0.0, 1.0):
        ax.axvline(x, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("IQM of normalised score (0 = random, 1 = oracle)")
    ax.set_title(f"Interquartile mean, stratified bootstrap {LEVEL:.0%} CIs")
    return fig


def _improvement(plt: Any, analysis: Analysis) -> Any:
    fig, ax = _aggregate_points(plt, analysis, "improvement")
    ax.axvline(0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xlim(-0.02, 1.02)
    ref = "best baseline" if analysis.reference == BEST_BASELINE else analysis.reference
    ax.set_xlabel(f"P(policy > {ref})")
    ax.set_title(f"Probability of improvement, stratified bootstrap {LEVEL:.0%} CIs")
    return fig


def _profile(plt: Any, analysis: Analysis) -> Any:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for a in analysis.aggregates:
        style = _style(analysis, a.policy)
        ax.plot(
            analysis.taus,
            a.profile,
            color=style["color"],
            linestyle=style["linestyle"],
            lw=1.4,
            label=a.policy,
        )
        ax.fill_between(
            analysis.taus, a.profile_low, a.profile_high, color=style["color"], alpha=0.12, lw=0
        )
    ax.set_xlabel("normalised score τ (0 = random, 1 = oracle)")
    ax.set_ylabel("fraction of (scenario, seed) scores > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profiles, bootstrap {LEVEL:.0%} bands")
    ax.legend(fontsize="x-small", ncol=2)
    return fig


def _latency(plt: Any, analysis: Analysis) -> Any:
    scenarios = [
        s
        for s in analysis.scenarios.values()
        if any(r.latency_cdf is not None for r in s.policies.values())
    ]
    fig, axes = _panels(plt, len(scenarios))
    for ax, s in zip(axes, scenarios, strict=True):
        for p, r in s.policies.items():
            if r.latency_cdf is None:
                continue
            style = _style(analysis, p)
            fraction = np.linspace(0, 1, len(r.latency_cdf))
            ax.plot(
                np.maximum(r.latency_cdf, 1e-3),
                fraction,
                color=style["color"],
                linestyle=style["linestyle"],
                lw=1.2,
                label=p,
            )
        ax.set_xscale("log")
        ax.set_xlabel("task latency (ms)")
        ax.set_ylabel("fraction of completed tasks")
        ax.set_title(s.name)
    _figure_legend(fig, axes)
    fig.suptitle("Latency CDF (mean of each percentile over episodes)")
    return fig


def _point(metrics: dict[str, float]) -> tuple[float, float] | None:
    cost, accuracy = metrics.get("cost_usd", math.nan), metrics.get("accuracy", math.nan)
    return (cost, accuracy) if math.isfinite(cost) and math.isfinite(accuracy) else None


def _pareto(plt: Any, analysis: Analysis) -> Any:
    scenarios = [
        s
        for s in analysis.scenarios.values()
        if any(_point(r.metrics) for r in s.policies.values())
    ]
    fig, axes = _panels(plt, len(scenarios))
    for ax, s in zip(axes, scenarios, strict=True):
        names = [p for p, r in s.policies.items() if _point(r.metrics)]
        points = [_point(s.policies[p].metrics) for p in names]
        for p, (cost, accuracy) in zip(names, points, strict=True):
            style = _style(analysis, p)
            ax.scatter(
                cost, accuracy, color=style["color"], marker=style["marker"], zorder=3, label=p
            )
        front = pareto_front(points)  # type: ignore[arg-type]
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            color="0.4",
            linestyle="--",
            lw=1,
            zorder=2,
            label="Pareto front",
        )
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        ax.set_xlabel("cost per episode (USD)")
        ax.set_ylabel("accuracy")
        ax.set_title(s.name)
    _figure_legend(fig, axes)
    fig.suptitle("Accuracy against cost (mean over seeds); higher and to the left is better")
    return fig


def _bands(analysis: Analysis) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Per scenario, per trained policy, its learning-curve band over seeds."""
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for s in analysis.scenarios.values():
        for p, r in s.policies.items():
            band = t_band(r.curves) if r.role == TRAINED or r.curves else None
            if band is not None:
                out.setdefault(s.name, {})[p] = band
    return out


def _learning(plt: Any, analysis: Analysis) -> Any:
    bands = _bands(analysis)
    fig, axes = _panels(plt, len(bands))
    for ax, (name, per_policy) in zip(axes, bands.items(), strict=True):
        for p, band in per_policy.items():
            style = _style(analysis, p)
            seeds = len(analysis.scenarios[name].policies[p].curves)
            ax.plot(
                band["step"],
                band["mean"],
                color=style["color"],
                lw=1.4,
                label=f"{p} ({seeds} seeds)",
            )
            low, high = np.nan_to_num(band["low"], nan=0), np.nan_to_num(band["high"], nan=0)
            if seeds > 1:
                ax.fill_between(band["step"], low, high, color=style["color"], alpha=0.18, lw=0)
        ax.set_xlabel("training env steps")
        ax.set_ylabel("episode return")
        ax.set_title(name)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"Learning curves: mean and Student-t {LEVEL:.0%} CI over seeds")
    return fig


def _figure_legend(fig: Any, axes: list) -> None:
    """One legend for all panels: every label once, in order of first appearance."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="outside lower center",
            ncol=min(6, len(seen)),
            fontsize="x-small",
        )
