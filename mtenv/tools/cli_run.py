"""The ``mtenv run``, ``mtenv render`` and ``mtenv plot`` commands, and the tables ``run``
prints: the metrics table and the comparison with the baselines on the same seeds."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.tools.cli_common import CliError, out_dir_arg, out_file_arg, policy_arg


def cmd_run(args: argparse.Namespace) -> int:
    from mtenv.agents.explain import TracedPolicy, write_trace
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.tools.evaluation import evaluate_policy, summarize_runs
    from mtenv.tools.recording import RunRecorder

    out = _run_folder(args.out)
    trace = _trace_file(args.trace)
    baselines = _baseline_names(getattr(args, "baselines", "none"))
    env = TaskAllocationEnv(args.scenario, inference=args.inference, device=args.device)
    policy = policy_arg(args.policy, env, args.seed, getattr(args, "trust_pickle", False))
    if trace is not None:
        policy = TracedPolicy(policy)
    recorder = RunRecorder(env) if out is not None else None

    def progress(i: int, metrics: dict[str, Any]) -> None:
        print(
            f"episode {i + 1}/{args.episodes}: return {metrics['episode_return']:.2f}, "
            f"effective accuracy {metrics['effective_accuracy']:.3f}",
            file=sys.stderr,
        )

    runs = evaluate_policy(
        env, policy, args.episodes, seed=args.seed, progress=progress, recorder=recorder
    )
    env.close()
    if recorder is not None:
        header = {
            "scenario": env.scenario.name,
            "policy": args.policy,
            "seed": args.seed,
            "inference": env.engine.mode,
            "devices": env.sim.device_names,
            "plans": [p.name for p in env.sim.plans],
        }
        recorder.write(out, header, runs)
        print(f"recorded to {out}", file=sys.stderr)
    if trace is not None:
        write_trace(trace, policy.decisions, env.feature_names, env.action_labels)
        print(f"decision trace: {trace}", file=sys.stderr)
    summary = summarize_runs(runs)
    compared = _compare_with_baselines(args, env.scenario, runs, baselines) if baselines else []
    if args.json:
        payload = {
            "scenario": env.scenario.name,
            "policy": args.policy,
            "episodes": args.episodes,
            "seed": args.seed,
            "inference": env.engine.mode,
            "metrics": {k: _json_float(s.mean) for k, s in summary.items()},
            "ci95": {k: _json_float(s.ci95) for k, s in summary.items()},
        }
        if compared:
            payload["baselines"] = {row.name: row.as_json() for row in compared}
        print(json.dumps(payload, indent=2, sort_keys=False))
    else:
        print(_metrics_table(env.scenario.name, args.policy, args.episodes, summary))
        if compared:
            print()
            print(_comparison_table(args, summary, compared))
    return 0


def _baseline_names(spec: str) -> list[str]:
    """``--baselines`` checked before any work: names, ``all`` or ``none``."""
    from mtenv.agents.policies import BASELINES, POLICIES

    if spec == "none":
        return []
    if spec == "all":
        return [*BASELINES, "oracle"]
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise CliError(
            f"--baselines: expected 'all', 'none' or names among {', '.join(POLICIES)}, "
            f"got {spec!r}"
        )
    return names


@dataclass(frozen=True)
class _Compared:
    """A baseline's episode returns beside the evaluated policy's, on the same seeds."""

    name: str
    clairvoyant: bool
    episode_return: Any  # Summary
    difference: Any  # Summary of (evaluated − baseline), paired by seed
    effective_accuracy: float
    slo_attainment: float

    def as_json(self) -> dict[str, Any]:
        return {
            "episode_return": _json_float(self.episode_return.mean),
            "ci95": _json_float(self.episode_return.ci95),
            "paired_difference": _json_float(self.difference.mean),
            "paired_difference_ci95": _json_float(self.difference.ci95),
            "effective_accuracy": _json_float(self.effective_accuracy),
            "slo_attainment": _json_float(self.slo_attainment),
            "upper_bound": self.clairvoyant,
        }


def _compare_with_baselines(
    args: argparse.Namespace, scenario: Any, runs: list[dict[str, Any]], names: list[str]
) -> list[_Compared]:
    """Each baseline on the episodes ``runs`` came from (same scenario, seeds and count).

    Baselines run with memoized inference, which gives the same trajectories as live inference
    for a seed, only faster."""
    from mtenv.agents.policies import POLICIES, make_policy
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.tools.evaluation import evaluate_policy, summarize

    print(f"baselines: {len(names)} on the same {args.episodes} seed(s) ...", file=sys.stderr)
    env = TaskAllocationEnv(scenario, inference="memoized", device=args.device)
    ours = np.array([m["episode_return"] for m in runs])
    compared = []
    for name in names:
        theirs = evaluate_policy(env, make_policy(name, env, args.seed), args.episodes, args.seed)
        returns = np.array([m["episode_return"] for m in theirs])
        compared.append(
            _Compared(
                name=name,
                clairvoyant=POLICIES[name].clairvoyant,
                episode_return=summarize(returns),
                difference=summarize(ours - returns),
                effective_accuracy=float(np.mean([m["effective_accuracy"] for m in theirs])),
                slo_attainment=float(np.mean([m["slo_attainment"] for m in theirs])),
            )
        )
    env.close()
    return sorted(compared, key=lambda row: (not row.clairvoyant, -row.episode_return.mean))


def _comparison_table(
    args: argparse.Namespace, summary: dict[str, Any], compared: list[_Compared]
) -> str:
    """The evaluated policy beside the baselines: return, the paired difference, and the two
    headline rates; the best deployable baseline marked."""

    def ci(value: float) -> str:
        return "" if math.isnan(value) else f"± {value:.1f}"

    best = next((row.name for row in compared if not row.clairvoyant), None)
    labels = [
        row.name
        + (" (upper bound)" if row.clairvoyant else " (best baseline)" if row.name == best else "")
        for row in compared
    ]
    width = max(len("» this policy"), *map(len, labels)) + 2
    seeds = f"{args.seed}–{args.seed + args.episodes - 1}" if args.episodes > 1 else str(args.seed)
    lines = [
        f"beside the baselines on the same seeds ({seeds}); Δ = this policy − baseline, "
        "paired by seed, mean ± 95% CI",
        f"{'policy':<{width}}{'return':>9} {'':<8}{'Δ return':>10} {'':<8}"
        f"{'eff. acc':>9}{'SLO':>7}",
    ]
    ret = summary["episode_return"]
    lines.append(
        f"{'» this policy':<{width}}{ret.mean:9.1f} {ci(ret.ci95):<8}{'':>10} {'':<8}"
        f"{summary['effective_accuracy'].mean:9.3f}{summary['slo_attainment'].mean:7.3f}"
    )
    for label, row in zip(labels, compared, strict=True):
        r, d = row.episode_return, row.difference
        lines.append(
            f"{label:<{width}}{r.mean:9.1f} {ci(r.ci95):<8}{d.mean:+10.1f} {ci(d.ci95):<8}"
            f"{row.effective_accuracy:9.3f}{row.slo_attainment:7.3f}"
        )
    return "\n".join(lines)


def _trace_file(trace: str | None) -> Path | None:
    """``--trace`` checked before any work: a CSV file in an existing folder."""
    if trace is None:
        return None
    return out_file_arg(trace, "--trace")


def _run_folder(out: str | None) -> Path | None:
    """``--out`` for a recording: a new folder, or one holding an earlier recording."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / "run.json").exists())
    ):
        raise CliError(f"--out: expected a new folder or an earlier recording, got {out!r}")
    out_dir_arg(out)
    return path


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def _metrics_table(scenario: str, policy: str, episodes: int, summary: dict) -> str:
    from mtenv.tools.evaluation import HEADLINE_METRICS

    rows = [k for k in HEADLINE_METRICS if k in summary]
    rows += sorted(k for k in summary if k.startswith(("utilization.", "plan_mix.")))
    width = max(len(k) for k in rows)
    lines = [
        f"scenario {scenario} · policy {policy} · {episodes} episode(s): mean ± 95% CI",
        f"{'metric'.ljust(width)}  {'mean':>12}  {'± ci95':>10}",
    ]
    for key in rows:
        s = summary[key]
        ci = "" if math.isnan(s.ci95) else f"{s.ci95:10.4g}"
        lines.append(f"{key.ljust(width)}  {s.mean:12.4g}  {ci:>10}")
    return "\n".join(lines)


# --- render ----------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.render.video import VideoError, check_video_path, write_video

    if args.show == (args.out is not None):
        raise CliError("render: give exactly one of --out FILE.gif|.mp4 and --show")
    try:
        out = None if args.show else check_video_path(args.out)
    except VideoError as exc:
        raise CliError(f"render: {exc}") from None
    if out is not None:
        out_file_arg(args.out)
    mode = "human" if args.show else "rgb_array"
    env = TaskAllocationEnv(args.scenario, render_mode=mode, inference=args.inference)
    policy = policy_arg(args.policy, env, args.seed, getattr(args, "trust_pickle", False))
    env.metadata = {**env.metadata, "render_fps": args.fps}
    policy.reset(args.seed)
    obs, info = env.reset(seed=args.seed)
    frames = [] if args.show else [env.render()]
    steps = 0
    while args.steps is None or steps < args.steps:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, info["action_mask"]))
        policy.observe(reward, info)
        steps += 1
        if not args.show:
            frames.append(env.render())
        if terminated or truncated:
            if args.steps is None:
                break
            obs, info = env.reset()
    env.close()
    if out is not None:
        try:
            write_video(frames, out, fps=args.fps)
        except VideoError as exc:
            raise CliError(f"render: {exc}") from None
        print(f"{out}: {len(frames)} frames at {args.fps} fps")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from mtenv.render.plots import RunFolderError, plot_runs

    out = Path(out_dir_arg(args.out))
    try:
        written = plot_runs(args.runs, out)
    except RunFolderError as exc:
        raise CliError(str(exc)) from None
    for path in written:
        print(path)
    print(f"{len(written)} files for {len(args.runs)} run(s) in {out}/", file=sys.stderr)
    return 0
