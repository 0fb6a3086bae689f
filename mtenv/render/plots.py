"""Figures for papers from recorded runs (``mtenv run --out DIR``), as PNG and PDF.

* ``latency_cdf``: the empirical CDF of task latency, one line per run (policy);
* ``accuracy_cost``: effective accuracy against cost per run, with the Pareto front (higher
  accuracy, lower cost) drawn through the runs no other run beats on both;
* ``utilization``: each device's busy fraction over simulated time, one panel per run (its
  first episode);
* ``plan_mix``: the share of decisions per plan over simulated time, one panel per run (its
  first episode);
* ``learning_curve``: episode return over training steps, for runs that hold a
  ``learning_curve.csv`` (written by training).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

# Okabe–Ito: distinguishable with the common forms of colour blindness.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_WINDOWS = 20
_SMOOTH = 20  # episodes in a learning curve's running mean


class RunFolderError(ValueError):
    """A folder that is not a readable recording; the message names the file."""


def load_run(folder: str | Path) -> dict[str, Any]:
    """A recording's run.json, timeline rows and latencies."""
    folder = Path(folder)
    meta_path = folder / "run.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(
            f"{meta_path}: not found; record a run with `mtenv run --out`"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{meta_path}: unreadable: {exc}") from None
    try:
        with open(folder / "timeline.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        with np.load(folder / "latencies.npz", allow_pickle=False) as npz:
            latencies = [npz[k] for k in sorted(npz.files, key=lambda k: int(k.split("_")[1]))]
    except (OSError, ValueError, KeyError) as exc:
        raise RunFolderError(f"{folder}: incomplete recording: {exc}") from None
    curve_path = folder / "learning_curve.csv"
    curve = None
    if curve_path.exists():
        with open(curve_path, newline="") as f:
            curve = list(csv.DictReader(f))
    return {"folder": folder, "meta": meta, "rows": rows, "latencies": latencies, "curve": curve}


def plot_runs(folders: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Draw every figure the recordings support into ``out_dir``; returns the files written."""
    runs = [load_run(f) for f in folders]
    figures = build_figures(runs)  # before the folder exists: a missing extra leaves nothing behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures.items():
        for suffix in (".png", ".pdf"):
            path = out / f"{name}{suffix}"
            fig.savefig(path, dpi=150)
            written.append(path)
        _pyplot().close(fig)
    return written


def build_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's name and matplotlib ``Figure``, for runs read by :func:`load_run`.

    Figures that compare runs (latency CDF, accuracy–cost front, learning curves) draw every run
    on one axis; those of one run's timeline (utilisation, plan mix) get one panel per run.
    """
    plt = _pyplot()
    shared = {"latency_cdf": _latency_cdf, "accuracy_cost": _accuracy_cost}
    if any(r["curve"] for r in runs):
        shared["learning_curve"] = _learning_curve
    per_run = {"utilization": _utilization, "plan_mix": _plan_mix}
    figures: dict[str, Any] = {}
    for name, draw in shared.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        draw(ax, runs)
        figures[name] = fig
    for name, draw_one in per_run.items():
        fig, axes = plt.subplots(
            len(runs), 1, figsize=(6.4, 0.6 + 3.0 * len(runs)), layout="constrained", squeeze=False
        )
        for ax, run in zip(axes[:, 0], runs, strict=True):
            draw_one(ax, run)
        figures[name] = fig
    return dict(sorted(figures.items()))


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (the ``render`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(run: dict[str, Any]) -> str:
    return f"{run['meta']['policy']} ({run['meta']['scenario']})"


def _latency_cdf(ax: Any, runs: list[dict[str, Any]]) -> None:
    for i, run in enumerate(runs):
        values = np.sort(np.concatenate(run["latencies"])) if run["latencies"] else np.array([])
        if values.size:
            ax.step(values, np.arange(1, values.size + 1) / values.size, where="post",
                    color=PALETTE[i % len(PALETTE)], label=_label(run))  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("task latency (ms)")
    ax.set_ylabel("fraction of tasks")
    ax.set_title("Latency CDF")
    ax.legend(fontsize="small")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not beaten on both cost (lower) and accuracy (higher), by cost."""
    front = []
    for i, (cost, acc) in enumerate(points):
        beaten = any(
            c <= cost and a >= acc and (c, a) != (cost, acc) for j, (c, a) in enumerate(points)
            if j != i
        )  # fmt: skip
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _accuracy_cost(ax: Any, runs: list[dict[str, Any]]) -> None:
    points = [
        (
            r["meta"]["summary"]["cost_usd"]["mean"],
            r["meta"]["summary"]["effective_accuracy"]["mean"],
        )
        for r in runs
    ]
    for i, (run, (cost, acc)) in enumerate(zip(runs, points, strict=True)):
        ax.scatter(cost, acc, color=PALETTE[i % len(PALETTE)], label=_label(run), zorder=3)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="0.4",
            linestyle="--", label="Pareto front", zorder=2)  # fmt: skip
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_xlabel("cost per episode (USD)")
    ax.set_ylabel("effective accuracy")
    ax.set_title("Accuracy vs cost")
    ax.legend(fontsize="small")


def _first_episode(run: dict[str, Any]) -> list[dict[str, str]]:
    return [r for r in run["rows"] if r["episode"] == "0"]


def _utilization(ax: Any, run: dict[str, Any]) -> None:
    rows = _first_episode(run)
    times = np.array([float(r["time_s"]) for r in rows])
    edges = np.linspace(times[0], times[-1], _WINDOWS + 1)
    for i, device in enumerate(run["meta"]["devices"]):
        busy = np.array([float(r[f"busy_s.{device}"]) for r in rows])
        at_edges = np.interp(edges, times, busy)
        share = np.diff(at_edges) / np.maximum(np.diff(edges), 1e-12)
        ax.plot(1e3 * edges[1:], np.clip(share, 0, 1), color=PALETTE[i % len(PALETTE)],
                label=device)  # fmt: skip
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("busy fraction")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Device utilisation: {_label(run)}")
    ax.legend(fontsize="small", ncol=2)


def _plan_mix(ax: Any, run: dict[str, Any]) -> None:
    rows = _first_episode(run)
    plans = [*run["meta"]["plans"], "reject"]
    windows = np.array_split(np.arange(len(rows)), _WINDOWS)
    shares = np.zeros((len(plans), len(windows)))
    for w, index in enumerate(windows):
        for k in index:
            plan = rows[k]["plan"]
            if plan in plans:
                shares[plans.index(plan), w] += 1
        shares[:, w] /= max(len(index), 1)
    centres = [1e3 * float(rows[ix[len(ix) // 2]]["time_s"]) for ix in windows if len(ix)]
    ax.stackplot(centres, shares[:, : len(centres)], labels=plans,
                 colors=[PALETTE[i % len(PALETTE)] for i in range(len(plans))])  # fmt: skip
    ax.set_xlabel("simulated time (ms)")
    ax.set_ylabel("share of decisions")
    ax.set_title(f"Plan mix: {_label(run)}")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _learning_curve(ax: Any, runs: list[dict[str, Any]]) -> None:
    for i, run in enumerate(runs):
        if run["curve"]:
            steps = [float(r["step"]) for r in run["curve"]]
            returns = [float(r["episode_return"]) for r in run["curve"]]
            ax.plot(steps, returns, color=PALETTE[i % len(PALETTE)], label=_label(run))
    ax.set_xlabel("training steps")
    ax.set_ylabel("episode return")
    ax.set_title("Learning curves")
    ax.legend(fontsize="small")


def plot_learning_curve(
    steps: list[int], returns: list[float], title: str, path: str | Path
) -> Path:
    """One training run's episode returns over steps, with their running mean over
    ``_SMOOTH`` episodes (``mtenv train`` writes this as ``learning_curve.png``). Raises
    ``ImportError`` without matplotlib."""
    plt = _pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    ax.plot(steps, returns, color=PALETTE[4], alpha=0.5, lw=0.8, label="episode return")
    if len(returns) >= 2:
        window = min(_SMOOTH, len(returns))
        kernel = np.ones(window) / window
        smooth = np.convolve(returns, kernel, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color=PALETTE[0], lw=2, label=f"mean of {window}")
    ax.set_xlabel("training steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
