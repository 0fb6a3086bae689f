"""The agent commands: ``mtenv train``, ``mtenv eval`` and ``mtenv explain``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtenv.tools.cli_common import EXIT_INTERRUPTED, out_dir_arg, out_file_arg, policy_arg
from mtenv.tools.cli_run import cmd_run


def cmd_train(args: argparse.Namespace) -> int:
    from mtenv.agents.hyperparams import parse_override
    from mtenv.agents.training import TrainingRequest, train

    out_dir_arg(args.out)
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
    kept = _kept_policy(result.folder / "eval")
    if kept:
        print(kept)
    return 0


def _kept_policy(folder: Path) -> str | None:
    """One line on a PPO run's validation: which evaluated policy it kept, beside the first
    (the clone, with a teacher) and the last."""
    if not folder.is_dir():  # a tabular run: nothing validated, and PPO's extra may be absent
        return None
    from mtenv.agents.ppo.selection import Evaluations

    evaluations = Evaluations.read(folder)
    best = evaluations.best()
    if best is None:
        return None
    means = dict(zip(evaluations.steps, evaluations.means(), strict=True))
    first, last = evaluations.steps[0], evaluations.steps[-1]
    return (
        f"kept the policy of step {best:,} (mean validation return {means[best]:.1f}; "
        f"step {first:,}: {means[first]:.1f}, step {last:,}: {means[last]:.1f})"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from mtenv.agents.training import read_manifest

    manifest = read_manifest(Path(args.run))
    args.policy = args.run
    args.scenario = args.scenario or manifest["scenario_arg"]
    return cmd_run(args)


def cmd_explain(args: argparse.Namespace) -> int:
    from mtenv.agents.explain import TracedPolicy, explain, format_explanation, write_trace
    from mtenv.agents.saved import is_run_folder
    from mtenv.agents.training import read_manifest
    from mtenv.envs.task_allocation import TaskAllocationEnv
    from mtenv.tools.evaluation import run_episode

    if args.trace:
        out_file_arg(args.trace, "--trace")
    scenario = args.scenario
    if scenario is None:
        trained = is_run_folder(args.policy)
        scenario = read_manifest(Path(args.policy))["scenario_arg"] if trained else "quickstart"
    env = TaskAllocationEnv(scenario, inference="memoized")
    policy = policy_arg(args.policy, env, args.seed, args.trust_pickle)
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
