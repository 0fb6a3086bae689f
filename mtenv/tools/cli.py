"""The ``mtenv`` command line.

    mtenv run --scenario quickstart --policy random --episodes 3 --seed 0 [--json]
    mtenv zoo list [--json]             the zoos scenarios can name (built in, plug-ins)
    mtenv zoo train [--out DIR]         retrain the digits zoo (deterministic recipe)
    mtenv zoo card [--zoo NAME] [--out DIR]   a zoo's card from its weights
    mtenv perf [--quick] [--json]       one table of speed ratios (CartPole-v1, batched, PPO)
    mtenv scenarios list [--json]       the shipped scenarios, one line each
    mtenv scenarios show NAME|FILE      one scenario resolved (extends, defaults) as YAML
    mtenv scenarios validate FILE...    check scenario files: "ok FILE" or one line per problem
    mtenv scenarios schema [--out FILE] the scenario schema reference (docs/scenario-schema.md)
    mtenv bench --scenarios A,B --policies P,Q --seeds N --episodes E --out DIR
                                        a resumable sweep into DIR/results.jsonl, then a report
    mtenv bench report DIR              the report of a sweep folder, again

Bad input (an unknown scenario or policy, an invalid scenario file) prints one message naming
what is wrong and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from mtenv.tools.cli_agents import cmd_eval, cmd_explain, cmd_train
from mtenv.tools.cli_bench import add_bench_commands
from mtenv.tools.cli_catalog import (
    cmd_perf,
    cmd_scenarios_list,
    cmd_scenarios_schema,
    cmd_scenarios_show,
    cmd_scenarios_validate,
    cmd_zoo_card,
    cmd_zoo_list,
    cmd_zoo_train,
)
from mtenv.tools.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    CliError,
    non_negative_int,
    positive_int,
    terminate_like_ctrl_c,
)
from mtenv.tools.cli_run import cmd_plot, cmd_render, cmd_run

__all__ = ["EVAL_SEED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "CliError", "main"]

EVAL_SEED = 10_000
"""Default first seed of ``eval`` / ``explain``: training episodes use seeds from the run's
seed upwards, so evaluation meets workloads the agent has not trained on."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.command_argv = list(sys.argv[1:] if argv is None else argv)
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
        with terminate_like_ctrl_c():
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
    except KeyboardInterrupt:  # commands with work to resume say how; the rest stop here
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``mtenv run | head``): not an error
        sys.stderr.close()
        return 0


_EXAMPLES = """examples:
  mtenv scenarios list
  mtenv run --scenario quickstart --policy expected-reward --episodes 3
  mtenv train --scenario quickstart --agent maskable-ppo --seed 0 --out runs/ppo
  mtenv eval runs/ppo --episodes 5        the agent beside every baseline and the oracle
  mtenv bench --scenarios quickstart --policies all --seeds 5 --out sweep
  mtenv render --scenario quickstart --policy least-loaded --out quickstart.gif

`mtenv COMMAND --help` describes a command."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtenv",
        description="Allocate a stream of AI inference tasks to models on GPUs: run policies on "
        "scenarios, train agents, compare them with the baselines, render, measure speed.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser("run", help="run a policy on a scenario and print its metrics")
    run.add_argument("--scenario", default="quickstart", help="shipped name or YAML path")
    run.add_argument(
        "--policy",
        default="random",
        help=_policy_help(),
    )
    run.add_argument("--episodes", type=positive_int, default=3)
    run.add_argument("--seed", type=non_negative_int, default=0)
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
    _add_trust_pickle(run)
    run.set_defaults(handler=cmd_run)

    zoo = commands.add_parser("zoo", help="the model zoos: list them, show a card, retrain digits")
    zoo.set_defaults(handler=lambda _args: _print_help(zoo))
    zoo_commands = zoo.add_subparsers(title="zoo commands")
    listing = zoo_commands.add_parser(
        "list", help="every zoo a scenario can name: built in, installed plug-ins, registered"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per zoo")
    listing.set_defaults(handler=cmd_zoo_list)
    train = zoo_commands.add_parser(
        "train", help="train every model of the built-in digits zoo (deterministic)"
    )
    train.add_argument("--out", default=None, help="folder for the weights (default: the package)")
    train.add_argument("--models", nargs="*", default=None, help="only these models")
    train.set_defaults(handler=cmd_zoo_train)
    card = zoo_commands.add_parser(
        "card", help="evaluate a zoo's weights and its plans on the serving pools: the card"
    )
    card.add_argument("--zoo", default=None, help="the zoo (default: the built-in digits)")
    card.add_argument(
        "--out",
        default=None,
        help="folder for CARD.md / card.json (digits default: the package's; other zoos "
        "default: print CARD.md)",
    )
    card.set_defaults(handler=cmd_zoo_card)

    render = commands.add_parser(
        "render", help="record a policy on a scenario as a video, or show it in a window"
    )
    render.add_argument("--scenario", default="quickstart", help="shipped name or YAML path")
    render.add_argument(
        "--policy",
        default="random",
        help=_policy_help(),
    )
    render.add_argument("--out", default=None, help="video file to write (.gif or .mp4)")
    render.add_argument("--show", action="store_true", help="open a window instead of recording")
    render.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="decisions to record (default: one episode)",
    )
    render.add_argument("--seed", type=non_negative_int, default=0)
    render.add_argument("--fps", type=positive_int, default=10)
    render.add_argument("--inference", choices=["live", "memoized"], default="memoized")
    _add_trust_pickle(render)
    render.set_defaults(handler=cmd_render)

    plot = commands.add_parser("plot", help="draw a paper's figures from recorded runs")
    plot.add_argument("runs", nargs="+", help="folders written by `mtenv run --out`")
    plot.add_argument("--out", default="plots", help="folder for the figures (default: ./plots)")
    plot.set_defaults(handler=cmd_plot)

    perf = commands.add_parser(
        "perf",
        help="one table of speed ratios (vs CartPole-v1, live vs memoized, batched, memory, PPO)",
        description="Measures every rate in this process, runs of different rows interleaved, "
        "and prints one table of ratios with their targets. Options left out take the full run's "
        "values, or --quick's.",
    )
    perf.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2,000 steps, 1 repeat, K = 1 and 8, 10^4 tasks, one PPO rollout",
    )
    perf.add_argument("--steps", type=positive_int, help="env steps a timed run (20,000)")
    perf.add_argument("--repeats", type=positive_int, help="timed runs a rate, median (3)")
    perf.add_argument(
        "--batch-sizes", type=positive_int, nargs="+", help="K of the batched env (1 8 64)"
    )
    perf.add_argument("--tasks", type=positive_int, help="tasks of the memory episode (10^6)")
    perf.add_argument("--train-steps", type=positive_int, help="env steps a model.learn (4096)")
    perf.add_argument("--train-envs", type=positive_int, help="envs in training (8)")
    perf.add_argument("--seed", type=non_negative_int, help="first seed (0)")
    perf.add_argument("--json", action="store_true")
    perf.set_defaults(handler=cmd_perf)
    _add_agent_commands(commands)
    _add_scenario_commands(commands)
    add_bench_commands(commands)
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
        type=positive_int,
        default=None,
        help="budget in env steps (default: n_timesteps of the hyperparameter file)",
    )
    train.add_argument("--seed", type=non_negative_int, default=0)
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
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "eval", help="evaluate a trained agent: the metrics table of `mtenv run`"
    )
    evaluate.add_argument("run", help="run folder written by `mtenv train`")
    evaluate.add_argument(
        "--scenario", default=None, help="scenario to evaluate on (default: the training one)"
    )
    evaluate.add_argument("--episodes", type=positive_int, default=5)
    evaluate.add_argument(
        "--seed",
        type=non_negative_int,
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
    _add_trust_pickle(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    explain = commands.add_parser(
        "explain", help="why a policy decides as it does: sampled decisions and summary tables"
    )
    explain.add_argument("policy", help="run folder written by `mtenv train`, or a baseline name")
    explain.add_argument(
        "--scenario", default=None, help="scenario (default: the training one, or quickstart)"
    )
    explain.add_argument("--seed", type=non_negative_int, default=EVAL_SEED)
    explain.add_argument("--samples", type=positive_int, default=6, help="decisions to show")
    explain.add_argument("--trace", default=None, help="also write every decision to this CSV")
    _add_trust_pickle(explain)
    explain.set_defaults(handler=cmd_explain)


def _add_scenario_commands(commands: Any) -> None:
    """``mtenv scenarios list|show|validate|schema``."""
    scenarios = commands.add_parser("scenarios", help="list, show, validate scenarios; schema")
    scenarios.set_defaults(handler=lambda _args: _print_help(scenarios))
    sub = scenarios.add_subparsers(title="scenario commands")
    listing = sub.add_parser("list", help="the shipped scenarios, one line each")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead")
    listing.set_defaults(handler=cmd_scenarios_list)
    show = sub.add_parser("show", help="a scenario resolved, defaults filled in, as YAML")
    show.add_argument("scenario", help="shipped name or YAML path")
    show.set_defaults(handler=cmd_scenarios_show)
    validate = sub.add_parser("validate", help="check scenario files; exit 2 if any is bad")
    validate.add_argument("files", nargs="+", metavar="FILE", help="scenario files (or names)")
    validate.set_defaults(handler=cmd_scenarios_validate)
    schema = sub.add_parser("schema", help="the scenario schema reference, as Markdown")
    schema.add_argument("--out", default=None, help="write it to this file instead of stdout")
    schema.set_defaults(handler=cmd_scenarios_schema)


def _add_trust_pickle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a run folder's SB3 agent.zip (older mtenv versions), which runs code from "
        "the file: only for folders you trust (agents saved now load without it)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_BAD_INPUT


def _policy_help() -> str:
    """``--policy``'s help: the registered baselines, the oracle, a run folder."""
    from mtenv.agents.policies import BASELINES

    return (
        f"a baseline ({', '.join(BASELINES)}), oracle (a clairvoyant upper bound, not a "
        "policy), or a run folder written by `mtenv train`"
    )


if __name__ == "__main__":
    sys.exit(main())
