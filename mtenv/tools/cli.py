"""The ``mtenv`` command line.

    mtenv run --scenario quickstart --policy random --episodes 3 --seed 0 [--json]
    mtenv zoo train [--out DIR]         retrain the model zoo (deterministic recipe)
    mtenv zoo card [--out DIR]          regenerate the zoo card from the shipped weights
    mtenv perf [--steps N] [--json]     step-rate benchmark against CartPole-v1
    mtenv scenarios list [--json]       the shipped scenarios, one line each
    mtenv scenarios show NAME|FILE      one scenario resolved (extends, defaults) as YAML
    mtenv scenarios validate FILE...    check scenario files: "ok FILE" or one line per problem
    mtenv scenarios schema [--out FILE] the scenario schema reference (docs/scenario-schema.md)

Bad input (an unknown scenario or policy, an invalid scenario file) prints one message naming
what is wrong and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EVAL_SEED = 10_000
"""Default first seed of ``eval`` / ``explain``: training episodes use seeds from the run's
seed upwards, so evaluation meets workloads the agent has not trained on."""


class CliError(Exception):
    """A user error: printed as one message, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_BAD_INPUT
    from gymnasium.error import DependencyNotInstalled

    from mtenv.agents.hyperparams import HyperparameterError
    from mtenv.agents.interfaces import AgentLoadError
    from mtenv.agents.training import TrainingError
    from mtenv.core.schema import ScenarioError
    from mtenv.extras import missing_extra_message
    from mtenv.zoo import ZooError

    try:
        return args.handler(args)
    except (
        CliError,
        ScenarioError,
        ZooError,
        AgentLoadError,
        HyperparameterError,
        TrainingError,
    ) as exc:
        print(f"mtenv: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ImportError, DependencyNotInstalled) as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(f"mtenv: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader went away (``mtenv run | head``): not an error
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtenv", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser("run", help="run a policy on a scenario and print its metrics")
    run.add_argument("--scenario", default="quickstart", help="shipped name or YAML path")
    run.add_argument(
        "--policy",
        default="random",
        help=_POLICY_HELP,
    )
    run.add_argument("--episodes", type=_positive_int, default=3)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--inference",
        choices=["live", "memoized"],
        default=None,
        help="override the scenario's inference mode",
    )
    run.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=None,
        help="where the models run (default: the scenario's)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--out", default=None, help="record the run to this folder (for mtenv plot)")
    run.add_argument("--trace", default=None, help="write every decision to this CSV")
    run.set_defaults(handler=_cmd_run)

    zoo = commands.add_parser("zoo", help="the model zoo: train it, regenerate its card")
    zoo.set_defaults(handler=lambda _args: _print_help(zoo))
    zoo_commands = zoo.add_subparsers(title="zoo commands")
    train = zoo_commands.add_parser("train", help="train every zoo model (deterministic)")
    train.add_argument("--out", default=None, help="folder for the weights (default: the package)")
    train.add_argument("--models", nargs="*", default=None, help="only these models")
    train.set_defaults(handler=_cmd_zoo_train)
    card = zoo_commands.add_parser(
        "card", help="evaluate the shipped weights and the collaborating plans, write the card"
    )
    card.add_argument("--out", default=None, help="folder for CARD.md / card.json")
    card.set_defaults(handler=_cmd_zoo_card)

    render = commands.add_parser(
        "render", help="record a policy on a scenario as a video, or show it in a window"
    )
    render.add_argument("--scenario", default="quickstart", help="shipped name or YAML path")
    render.add_argument(
        "--policy",
        default="random",
        help=_POLICY_HELP,
    )
    render.add_argument("--out", default=None, help="video file to write (.gif or .mp4)")
    render.add_argument("--show", action="store_true", help="open a window instead of recording")
    render.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="decisions to record (default: one episode)",
    )
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--fps", type=_positive_int, default=10)
    render.add_argument("--inference", choices=["live", "memoized"], default="memoized")
    render.set_defaults(handler=_cmd_render)

    plot = commands.add_parser("plot", help="draw a paper's figures from recorded runs")
    plot.add_argument("runs", nargs="+", help="folders written by `mtenv run --out`")
    plot.add_argument("--out", default="plots", help="folder for the figures (default: ./plots)")
    plot.set_defaults(handler=_cmd_plot)

    perf = commands.add_parser("perf", help="step rate versus CartPole-v1, live and memoized")
    perf.add_argument(
        "--scenarios", nargs="+", default=["quickstart", "collaboration"], help="shipped names"
    )
    perf.add_argument("--steps", type=_positive_int, default=20_000)
    perf.add_argument("--repeats", type=_positive_int, default=3)
    perf.add_argument("--json", action="store_true")
    perf.add_argument(
        "--memory",
        action="store_true",
        help="instead: one long episode, reporting step rate and resident memory along it",
    )
    perf.add_argument("--memory-scenario", default="large_cluster")
    perf.add_argument("--memory-tasks", type=_positive_int, default=1_000_000)
    perf.set_defaults(handler=_cmd_perf)
    _add_agent_commands(commands)
    _add_scenario_commands(commands)
    return parser


def _add_agent_commands(commands: Any) -> None:
    """``mtenv train``, ``mtenv eval``, ``mtenv explain``."""
    from mtenv.agents.training import LEARNERS

    train = commands.add_parser(
        "train", help="train an agent on a scenario into a run folder (resumable)"
    )
    train.add_argument("--scenario", default="quickstart", help="shipped name or YAML path")
    train.add_argument("--agent", choices=LEARNERS, default="maskable-ppo")
    train.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="budget in env steps (default: n_timesteps of the hyperparameter file)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="run folder (new, or the run to --resume)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    train.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (value read as YAML); repeatable",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)

    evaluate = commands.add_parser(
        "eval", help="evaluate a trained agent: the metrics table of `mtenv run`"
    )
    evaluate.add_argument("run", help="run folder written by `mtenv train`")
    evaluate.add_argument(
        "--scenario", default=None, help="scenario to evaluate on (default: the training one)"
    )
    evaluate.add_argument("--episodes", type=_positive_int, default=5)
    evaluate.add_argument(
        "--seed",
        type=int,
        default=EVAL_SEED,
        help=f"first episode's seed (default {EVAL_SEED}: workloads unseen in training)",
    )
    evaluate.add_argument("--inference", choices=["live", "memoized"], default=None)
    evaluate.add_argument("--device", choices=["cpu", "cuda"], default=None)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--out", default=None, help="record the run to this folder")
    evaluate.add_argument("--trace", default=None, help="write every decision to this CSV")
    evaluate.add_argument(
        "--baselines",
        default="all",
        help="baselines to run on the same seeds, comma-separated, 'all' (default: every "
        "baseline and the oracle bound) or 'none'",
    )
    evaluate.set_defaults(handler=_cmd_eval)

    explain = commands.add_parser(
        "explain", help="why a policy decides as it does: sampled decisions and summary tables"
    )
    explain.add_argument("policy", help="run folder written by `mtenv train`, or a baseline name")
    explain.add_argument(
        "--scenario", default=None, help="scenario (default: the training one, or quickstart)"
    )
    explain.add_argument("--seed", type=int, default=EVAL_SEED)
    explain.add_argument("--samples", type=_positive_int, default=6, help="decisions to show")
    explain.add_argument("--trace", default=None, help="also write every decision to this CSV")
    explain.set_defaults(handler=_cmd_explain)


def _add_scenario_commands(commands: Any) -> None:
    """``mtenv scenarios list|show|validate|schema``."""
    scenarios = commands.add_parser("scenarios", help="list, show, validate scenarios; schema")
    scenarios.set_defaults(handler=lambda _args: _print_help(scenarios))
    sub = scenarios.add_subparsers(title="scenario commands")
    listing = sub.add_parser("list", help="the shipped scenarios, one line each")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead")
    listing.set_defaults(handler=_cmd_scenarios_list)
    show = sub.add_parser("show", help="a scenario resolved, defaults filled in, as YAML")
    show.add_argument("scenario", help="shipped name or YAML path")
    show.set_defaults(handler=_cmd_scenarios_show)
    validate = sub.add_parser("validate", help="check scenario files; exit 2 if any is bad")
    validate.add_argument("files", nargs="+", metavar="FILE", help="scenario files (or names)")
    validate.set_defaults(handler=_cmd_scenarios_validate)
    schema = sub.add_parser("schema", help="the scenario schema reference, as Markdown")
    schema.add_argument("--out", default=None, help="write it to this file instead of stdout")
    schema.set_defaults(handler=_cmd_scenarios_schema)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_BAD_INPUT


_POLICY_HELP = (
    "a baseline (random, round-robin, least-loaded, fastest, most-accurate, infaas, cascade, "
    "eps-greedy, ucb1, exp3), oracle (a clairvoyant upper bound, not a policy), or a run "
    "folder written by `mtenv train`"
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# --- run -----------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from mtenv.agents.explain import TracedPolicy, write_trace
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.tools.evaluation import evaluate_policy, summarize_runs
    from mtenv.tools.recording import RunRecorder

    out = _run_folder(args.out)
    trace = _trace_file(args.trace)
    baselines = _baseline_names(getattr(args, "baselines", "none"))
    env = TaskAllocationEnv(args.scenario, inference=args.inference, device=args.device)
    policy = _policy(args.policy, env, args.seed)
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
    path = Path(trace)
    if path.is_dir() or not path.parent.is_dir():
        raise CliError(f"--trace: expected a CSV file in an existing folder, got {trace!r}")
    return path


def _run_folder(out: str | None) -> Path | None:
    """``--out`` for a recording: a new folder, or one holding an earlier recording."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / "run.json").exists())
    ):
        raise CliError(f"--out: expected a new folder or an earlier recording, got {out!r}")
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


def _cmd_render(args: argparse.Namespace) -> int:
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.render.video import VideoError, check_video_path, write_video

    if args.show == (args.out is not None):
        raise CliError("render: give exactly one of --out FILE.gif|.mp4 and --show")
    try:
        out = None if args.show else check_video_path(args.out)
    except VideoError as exc:
        raise CliError(f"render: {exc}") from None
    mode = "human" if args.show else "rgb_array"
    env = TaskAllocationEnv(args.scenario, render_mode=mode, inference=args.inference)
    policy = _policy(args.policy, env, args.seed)
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


def _cmd_plot(args: argparse.Namespace) -> int:
    from mtenv.render.plots import RunFolderError, plot_runs

    out = Path(_out_dir(args.out))
    try:
        written = plot_runs(args.runs, out)
    except RunFolderError as exc:
        raise CliError(str(exc)) from None
    for path in written:
        print(path)
    print(f"{len(written)} files for {len(args.runs)} run(s) in {out}/", file=sys.stderr)
    return 0


# --- agents ----------------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from mtenv.agents.hyperparams import parse_override
    from mtenv.agents.training import TrainingRequest, train

    request = TrainingRequest(
        scenario=args.scenario,
        agent=args.agent,
        out=Path(args.out),
        seed=args.seed,
        steps=args.steps,
        overrides=dict(parse_override(text) for text in args.hp),
        resume=args.resume,
        progress=not args.quiet,
    )
    try:
        result = train(request)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished work is in {args.out}; continue with the same command "
            "and --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"trained {args.agent} on {args.scenario}: {result.steps:,} steps, "
        f"{result.episodes:,} episodes this session, {result.cpu_time_s:.1f} CPU s in all "
        f"-> {result.folder}"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from mtenv.agents.training import read_manifest

    manifest = read_manifest(Path(args.run))
    args.policy = args.run
    args.scenario = args.scenario or manifest["scenario_arg"]
    return _cmd_run(args)


def _cmd_explain(args: argparse.Namespace) -> int:
    from mtenv.agents.explain import TracedPolicy, explain, format_explanation, write_trace
    from mtenv.agents.saved import is_run_folder
    from mtenv.agents.training import read_manifest
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.tools.evaluation import run_episode

    scenario = args.scenario
    if scenario is None:
        trained = is_run_folder(args.policy)
        scenario = read_manifest(Path(args.policy))["scenario_arg"] if trained else "quickstart"
    env = TaskAllocationEnv(scenario, inference="memoized")
    policy = _policy(args.policy, env, args.seed)
    traced = TracedPolicy(policy)
    traced.reset(args.seed)
    run_episode(env, traced, args.seed)
    expl = explain(traced.decisions, env, samples=args.samples)
    print(
        f"{policy.name} on {env.scenario.name}, seed {args.seed}: one episode, "
        f"{len(traced.decisions)} decisions\n"
    )
    print(format_explanation(expl, env, getattr(policy, "value_label", None)))
    if args.trace:
        path = write_trace(args.trace, traced.decisions, env.feature_names, env.action_labels)
        print(f"\ndecision trace: {path}", file=sys.stderr)
    env.close()
    return 0


def _policy(spec: str, env: Any, seed: int | None) -> Any:
    """A baseline by name or a trained agent by run folder, as a ``--policy`` value."""
    from mtenv.agents.saved import resolve_policy

    try:
        return resolve_policy(spec, env, seed)
    except ValueError as exc:
        raise CliError(f"--policy: {exc}") from None


# --- zoo -----------------------------------------------------------------------------------


def _out_dir(out: str | None) -> str | None:
    """``--out`` checked before any work: an existing path must be a folder."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise CliError(f"--out: expected a folder, got the file {out!r}")
    return out


def _cmd_zoo_train(args: argparse.Namespace) -> int:
    from mtenv.zoo import train_zoo

    paths = train_zoo(out_dir=_out_dir(args.out), names=args.models)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_zoo_card(args: argparse.Namespace) -> int:
    from mtenv.tools.plan_card import plan_section
    from mtenv.zoo import write_card

    out = _out_dir(args.out)
    for path in write_card(out_dir=out, extra_sections=[plan_section()]):
        print(path)
    return 0


# --- perf ----------------------------------------------------------------------------------


def _cmd_perf(args: argparse.Namespace) -> int:
    from mtenv.tools.perf import format_memory_report, format_report, run_memory, run_perf

    if args.memory:

        def progress(done: int, rss_mb: float) -> None:
            print(f"{done:,} tasks, {rss_mb:.0f} MB resident", file=sys.stderr)

        report = run_memory(args.memory_scenario, tasks=args.memory_tasks, progress=progress)
        print(json.dumps(report, indent=2) if args.json else format_memory_report(report))
        return 0
    report = run_perf(tuple(args.scenarios), steps=args.steps, repeats=args.repeats)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


# --- scenarios -----------------------------------------------------------------------------


def _scenario_row(name: str) -> dict[str, Any]:
    """One shipped scenario's line of ``scenarios list``."""
    from mtenv.core.schema import load_scenario

    scenario = load_scenario(name)
    return {
        "name": name,
        "summary": scenario.summary,
        "devices": len(scenario.device_names()),
        "episode_tasks": scenario.episode_tasks,
        "task_types": list(scenario.workload.task_types),
    }


def _cmd_scenarios_list(args: argparse.Namespace) -> int:
    from mtenv.core.schema import ScenarioError, shipped_scenarios

    rows, problems = [], []
    for name in shipped_scenarios():
        try:
            rows.append(_scenario_row(name))
        except ScenarioError as exc:
            problems.append(str(exc))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_scenario_table(rows))
    for problem in problems:
        print(f"mtenv: error: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT if problems else 0


def _scenario_table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned columns, the free-text summary last."""
    header = ("name", "devices", "tasks", "task types", "summary")
    cells = [header] + [
        (
            r["name"],
            str(r["devices"]),
            str(r["episode_tasks"]),
            ",".join(r["task_types"]),
            r["summary"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    lines = []
    for row in cells:
        fixed = [
            cell.rjust(w) if i in (1, 2) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*fixed, row[-1]]).rstrip())
    return "\n".join(lines)


def _cmd_scenarios_show(args: argparse.Namespace) -> int:
    from mtenv.core.schema import load_scenario, scenario_yaml

    scenario = load_scenario(args.scenario)
    print(f"# {scenario.name}, resolved from {scenario.source}", end="\n")
    print(scenario_yaml(scenario), end="")
    return 0


def _cmd_scenarios_validate(args: argparse.Namespace) -> int:
    from mtenv.core.schema import ScenarioError, load_scenario

    bad = 0
    for file in args.files:
        try:
            load_scenario(file)
        except ScenarioError as exc:
            bad += 1
            for line in str(exc).splitlines():
                print(line, file=sys.stderr)
        else:
            print(f"ok {file}")
    return EXIT_BAD_INPUT if bad else 0


def _cmd_scenarios_schema(args: argparse.Namespace) -> int:
    from mtenv.core.schema import schema_reference

    text = schema_reference()
    if args.out is None:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out: expected a file, got the folder {args.out!r}")
    if not out.parent.is_dir():
        raise CliError(f"--out: no such folder {str(out.parent)!r}")
    out.write_text(text, encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
