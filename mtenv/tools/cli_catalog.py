"""The commands on what ships with the package: ``mtenv zoo list|train|card`` (the zoos),
``mtenv perf`` (the step-rate benchmark) and ``mtenv scenarios list|show|validate|schema``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mtenv.tools.cli_common import EXIT_BAD_INPUT, out_dir_arg, out_file_arg

# --- zoo -----------------------------------------------------------------------------------


def cmd_zoo_train(args: argparse.Namespace) -> int:
    from mtenv.zoo import train_zoo

    paths = train_zoo(out_dir=out_dir_arg(args.out), names=args.models)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_zoo_card(args: argparse.Namespace) -> int:
    from mtenv.tools.plan_card import evaluate_plans, plan_section
    from mtenv.zoo import DEFAULT_ZOO, get_zoo, write_card
    from mtenv.zoo.card import any_zoo_card, render_any_zoo_card, write_any_zoo_card

    zoo = get_zoo(args.zoo or DEFAULT_ZOO)
    out = out_dir_arg(args.out)
    if zoo.name == DEFAULT_ZOO:
        paths = write_card(out_dir=out, extra_sections=[plan_section()])
    else:
        sections = [plan_section(evaluate_plans(zoo=zoo, task_type=t)) for t in zoo.task_type_names]
        if out is None:
            print(render_any_zoo_card(any_zoo_card(zoo), sections))
            return 0
        paths = write_any_zoo_card(zoo, out, sections)
    for path in paths:
        print(path)
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from mtenv.zoo import ZooError, get_zoo, zoo_names, zoo_source

    rows: list[dict[str, Any]] = []
    for name in zoo_names():
        try:
            zoo = get_zoo(name)
        except ZooError as exc:  # one broken plug-in does not hide the others
            rows.append({"name": name, "source": zoo_source(name), "error": str(exc)})
            continue
        rows.append(
            {
                "name": name,
                "source": zoo_source(name),
                "description": zoo.description,
                "task_types": list(zoo.task_type_names),
                "models": list(zoo.model_names),
                "levels": zoo.n_levels,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['source']})")
        if "error" in row:
            print(f"    cannot be loaded: {row['error']}")
            continue
        print(f"    {row['description']}")
        print(f"    task types: {', '.join(row['task_types'])}; levels: {row['levels']}")
        print(f"    models: {', '.join(row['models'])}")
    return 0


# --- perf ----------------------------------------------------------------------------------


def cmd_perf(args: argparse.Namespace) -> int:
    from mtenv.tools.perf import PerfSettings, format_report, run_perf

    names = ("steps", "repeats", "batch_sizes", "tasks", "train_steps", "train_envs", "seed")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if "batch_sizes" in given:
        given["batch_sizes"] = tuple(given["batch_sizes"])
    settings = PerfSettings.quick(**given) if args.quick else PerfSettings(**given)
    report = run_perf(settings, progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


# --- scenarios -----------------------------------------------------------------------------


def _scenario_row(name: str) -> dict[str, Any]:
    """One shipped scenario's line of ``scenarios list``."""
    from mtenv.io.scenario_files import load_scenario

    scenario = load_scenario(name)
    return {
        "name": name,
        "summary": scenario.summary,
        "devices": len(scenario.device_names()),
        "episode_tasks": scenario.episode_tasks,
        "task_types": list(scenario.workload.task_types),
    }


def cmd_scenarios_list(args: argparse.Namespace) -> int:
    from mtenv.core.schema import ScenarioError
    from mtenv.io.scenario_files import shipped_scenarios

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


def cmd_scenarios_show(args: argparse.Namespace) -> int:
    from mtenv.io.scenario_files import load_scenario, scenario_yaml

    scenario = load_scenario(args.scenario)
    print(f"# {scenario.name}, resolved from {scenario.source}", end="\n")
    print(scenario_yaml(scenario), end="")
    return 0


def cmd_scenarios_validate(args: argparse.Namespace) -> int:
    from mtenv.core.schema import ScenarioError
    from mtenv.io.scenario_files import load_scenario

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


def cmd_scenarios_schema(args: argparse.Namespace) -> int:
    from mtenv.io.schema_reference import schema_reference

    text = schema_reference()
    if args.out is None:
        print(text, end="")
        return 0
    out = out_file_arg(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a file
    print(out)
    return 0
