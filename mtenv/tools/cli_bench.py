"""The ``mtenv bench`` commands: a sweep of policies over scenarios and seeds into one folder
(``results.jsonl``, ``manifest.json``, ``bench.log``, ``runs/``, the report), and
``mtenv bench report DIR`` to write the report of a sweep folder again."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtenv.tools.cli_common import CliError, out_dir_arg, positive_int

_DESCRIPTION = """\
Runs every (scenario, policy, seed) cell of a sweep and appends each finished episode to
OUT/results.jsonl at once, then writes the report (summary tables, figures). Episode i of seed k
runs with env seed EVAL_SEED + 1000*k + i for every policy, so results pair by seed. Learners of
--train are trained once per scenario and seed into OUT/runs/ first. A killed sweep continues with
the same command and --resume; a crashing cell is recorded as a failure and the sweep goes on
(exit status 1 at the end).
"""

_EXAMPLES = """\
examples:
  mtenv bench --scenarios quickstart,edge_burst@2x --policies random,infaas,oracle \\
      --seeds 2 --episodes 2 --out bench-small
  mtenv bench --scenarios quickstart --policies all --train q-learning=20000 --out bench-q
  mtenv bench --suite v0 --out bench-v0 --workers 8     # the fixed benchmark of papers
  mtenv bench --from-manifest bench-small/manifest.json --out bench-again
  mtenv bench report bench-small --reference infaas
"""


def add_bench_commands(commands: Any) -> None:
    """``mtenv bench`` and ``mtenv bench report``."""
    from mtenv.tools.bench.backends import BACKENDS
    from mtenv.tools.bench.suite import SUITES

    bench = commands.add_parser(
        "bench",
        help="sweep policies over scenarios and seeds into results.jsonl (resumable), then report",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--scenarios",
        nargs="+",
        metavar="NAME",
        help="shipped names or YAML files, comma-separated, or 'all'; NAME@<factor>x evaluates "
        "at that multiple of the scenario's load (quickstart@2x)",
    )
    bench.add_argument(
        "--policies",
        nargs="+",
        metavar="POLICY",
        help="baselines, 'oracle', 'all' (every baseline and the oracle), learners of --train, "
        "or run folders of `mtenv train`",
    )
    bench.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="AGENT=BUDGET",
        help="train AGENT once per scenario and seed inside the sweep, for BUDGET env steps "
        "('hp': its hyperparameter file's); repeatable",
    )
    bench.add_argument("--seeds", type=positive_int, help="seeds 0..N-1 (default 5)")
    bench.add_argument("--episodes", type=positive_int, help="episodes per seed (default 2)")
    bench.add_argument(
        "--episode-tasks",
        type=positive_int,
        help="tasks per evaluation episode instead of each scenario's (short smoke sweeps)",
    )
    bench.add_argument("--out", help="the sweep folder (new or empty, or the one to --resume)")
    bench.add_argument("--backend", choices=BACKENDS, help="local (default) or ray")
    bench.add_argument(
        "--workers",
        type=positive_int,
        help="units at once (default: the CPU count; 1 runs in this process)",
    )
    bench.add_argument(
        "--resume", action="store_true", help="continue the sweep in --out where it stopped"
    )
    bench.add_argument(
        "--reference",
        help="the policy the report compares every other with (default: the best "
        "baseline of each scenario)",
    )
    bench.add_argument(
        "--no-report",
        action="store_true",
        help="skip the report at the end (write it later with `mtenv bench report OUT`)",
    )
    bench.add_argument(
        "--suite", metavar="NAME", help=f"a fixed sweep by name ({', '.join(SUITES)})"
    )
    bench.add_argument(
        "--from-manifest",
        metavar="FILE",
        help="run the sweep of a manifest.json again (into its --out unless --out is given)",
    )
    bench.set_defaults(handler=cmd_bench)
    sub = bench.add_subparsers(title="bench commands")
    report = sub.add_parser("report", help="write the report of a sweep folder again")
    report.add_argument("dir", help="a sweep folder (holding results.jsonl)")
    report.add_argument(
        "--reference", help="the policy every other is compared with (default: the sweep's)"
    )
    report.set_defaults(handler=cmd_bench_report)


def cmd_bench(args: argparse.Namespace) -> int:
    from mtenv.tools.bench.engine import Options, run_sweep
    from mtenv.tools.cli import EVAL_SEED

    sweep, out = _sweep_of(args)
    options = Options(
        out=Path(out),
        backend=args.backend or "local",
        workers=args.workers,
        resume=args.resume,
        argv=tuple(getattr(args, "command_argv", ()) or ()),
        eval_seed=EVAL_SEED,
        report=not args.no_report,
    )
    return run_sweep(sweep, options)


def _sweep_of(args: argparse.Namespace) -> tuple[Any, str]:
    """The sweep the arguments ask for, and its folder."""
    from mtenv.tools.bench.manifest import read_manifest
    from mtenv.tools.bench.suite import suite_arguments
    from mtenv.tools.bench.sweep import build_sweep, from_resolved

    fixed = {
        "--scenarios": args.scenarios,
        "--policies": args.policies,
        "--train": args.train,
        "--seeds": args.seeds,
        "--episodes": args.episodes,
        "--episode-tasks": args.episode_tasks,
        "--reference": args.reference,
    }
    given = [flag for flag, value in fixed.items() if value]
    if args.from_manifest:
        if given or args.suite:
            extra = ", ".join(given + (["--suite"] if args.suite else []))
            raise CliError(
                f"--from-manifest takes the sweep from its file; drop {extra} (only --out, "
                "--backend, --workers and --resume go with it)"
            )
        manifest = read_manifest(Path(args.from_manifest))
        out = args.out or manifest["resolved"].get("out")
        return from_resolved(manifest["resolved"]), _required_out(out)
    if args.suite:
        arguments = suite_arguments(args.suite)
        if given:
            raise CliError(
                f"--suite {args.suite} fixes the sweep; drop {', '.join(given)} (only --out, "
                "--backend, --workers and --resume go with it)"
            )
        return build_sweep(**arguments), _required_out(args.out)  # type: ignore[arg-type]
    if not args.scenarios:
        raise CliError("--scenarios: required (or --suite NAME, or --from-manifest FILE)")
    if not args.policies and not args.train:
        raise CliError("--policies: required (or --train AGENT=BUDGET)")
    sweep = build_sweep(
        scenarios=args.scenarios,
        policies=args.policies or [],
        train=args.train,
        seeds=args.seeds or 5,
        episodes=args.episodes or 2,
        episode_tasks=args.episode_tasks,
        reference=args.reference,
    )
    return sweep, _required_out(args.out)


def _required_out(out: str | None) -> str:
    if not out:
        raise CliError("--out: required: the sweep folder")
    out_dir_arg(out)
    return out


def cmd_bench_report(args: argparse.Namespace) -> int:
    from mtenv.tools.bench import records
    from mtenv.tools.bench.engine import write_report
    from mtenv.tools.bench.manifest import MANIFEST, read_manifest

    folder = Path(args.dir)
    results = folder / records.RESULTS
    if not results.is_file():
        raise CliError(f"{folder}: not a sweep folder (no {records.RESULTS})")
    reference = args.reference
    if reference is None and (folder / MANIFEST).exists():
        reference = read_manifest(folder / MANIFEST)["resolved"].get("reference")
    if args.reference is not None:
        known = sorted({r["policy"] for r in records.read(results).episodes})
        if args.reference not in known:
            raise CliError(
                f"--reference: no results of {args.reference!r} in {results} "
                f"(known: {', '.join(known)})"
            )
    for path in write_report(folder, reference):
        print(path)
    return 0
