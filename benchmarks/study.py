"""The learning study: every policy on every shipped scenario, over several seeds, with CIs.

For each scenario and each seed ``k`` (0 … ``--seeds``−1):

* each learner (``--agents``) is trained with ``mtenv train --seed k`` into
  ``OUT/runs/<scenario>/<agent>/seed<k>`` with the scenario's hyperparameter file budget;
* each baseline (every non-oracle baseline and the clairvoyant oracle) and each trained agent is
  evaluated on ``--episodes`` held-out episodes seeded ``EVAL_SEED + 1000·k + i``.

One seed contributes one sample (its episodes' mean) to the table's mean ± 95 % CI (Student t
over seeds). Every finished training run and evaluation is kept on disk, so a killed study
rerun with the same arguments continues where it stopped; training runs resume from their last
checkpoint. Results: ``OUT/study.json`` and ``OUT/study.md`` (the README's table).

    python benchmarks/study.py --out study \
        --budget maskable-ppo=25000 --hp maskable-ppo:vec_env=dummy      # the README's table
    python benchmarks/study.py --out /tmp/s --scenarios quickstart --seeds 2 \
        --budget q-learning=3000 --agents q-learning                       # a quick look

The targets it checks and prints:

* tabular agents beat random and round-robin (mean return; ``separated`` when the 95 %
  intervals do not overlap);
* MaskablePPO beats the best non-oracle baseline with non-overlapping intervals;
* on scenarios whose plans collaborate (ensembles, cascades, multi-task models), PPO closes at
  least half the gap between the best baseline and the oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.agents.policies import BASELINES
from mtenv.agents.saved import resolve_policy
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.io.scenario_files import load_scenario, shipped_scenarios
from mtenv.tools.evaluation import evaluate_policy, flatten_metrics, summarize

EVAL_SEED = 10_000
METRICS = (
    "episode_return",
    "effective_accuracy",
    "slo_attainment",
    "latency_p99_ms",
    "cost_usd",
    "reject_rate",
)
LEARNERS = ("q-learning", "sarsa", "expected-sarsa", "maskable-ppo")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenarios = args.scenarios or sorted(shipped_scenarios())
    unknown = sorted(set(scenarios) - set(shipped_scenarios()))
    if unknown:
        print(f"study: --scenarios: unknown {', '.join(unknown)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))

    train_jobs = [(s, a, k) for s in scenarios for a in args.agents for k in seeds]
    _train_all(train_jobs, out, args)

    policies = [*BASELINES, "oracle", *args.agents]
    eval_jobs = [(s, p, k) for s in scenarios for p in policies for k in seeds]
    _evaluate_all(eval_jobs, out, args)

    study = _collect(out, scenarios, policies, seeds, args.agents)
    (out / "study.json").write_text(json.dumps(study, indent=1, allow_nan=True) + "\n")
    table = format_summary(study) + "\n\n" + format_markdown(study)
    (out / "study.md").write_text(table + "\n")
    print(table)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="study folder (kept between runs)")
    parser.add_argument("--scenarios", nargs="*", default=None, help="default: every shipped one")
    parser.add_argument("--agents", nargs="*", default=list(LEARNERS), choices=LEARNERS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=3, help="evaluation episodes per seed")
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="AGENT=STEPS",
        help="train AGENT for STEPS env steps instead of its hyperparameter file's n_timesteps",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel training / evaluation jobs")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="AGENT:KEY=VALUE",
        help="a hyperparameter override for one learner's runs (passed to `mtenv train --hp`)",
    )
    return parser


# --- training ------------------------------------------------------------------------------------


def run_dir(out: Path, scenario: str, agent: str, seed: int) -> Path:
    return out / "runs" / scenario / agent / f"seed{seed}"


def _train_all(jobs: list[tuple[str, str, int]], out: Path, args: argparse.Namespace) -> None:
    pending = [j for j in jobs if not _complete(run_dir(out, *j))]
    print(f"training: {len(jobs) - len(pending)} of {len(jobs)} runs already done", flush=True)
    running: list[tuple[subprocess.Popen, tuple[str, str, int], float]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            job = pending.pop(0)
            running.append((_start_training(job, out, args), job, time.perf_counter()))
        time.sleep(0.5)
        for proc, job, started in list(running):
            if proc.poll() is None:
                continue
            running.remove((proc, job, started))
            took = time.perf_counter() - started
            status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"  train {job[0]:<20} {job[1]:<15} seed {job[2]}: {status}, {took:.0f} s")
            if proc.returncode != 0:
                failed.append(f"{job}: see {run_dir(out, *job)}.log")
    if failed:
        raise SystemExit("training failed:\n" + "\n".join(failed))


def _complete(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "manifest.json").read_text())["complete"])
    except (OSError, ValueError, KeyError):
        return False


def _start_training(job: tuple[str, str, int], out: Path, args: argparse.Namespace):
    scenario, agent, seed = job
    folder = run_dir(out, scenario, agent, seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mtenv.tools.cli", "train", "--quiet",
        "--scenario", scenario, "--agent", agent, "--seed", str(seed), "--out", str(folder),
    ]  # fmt: skip
    if (folder / "manifest.json").exists():
        command.append("--resume")
    budgets = dict(b.split("=", 1) for b in args.budget)
    if agent in budgets:
        command += ["--steps", budgets[agent]]
    for override in args.hp:
        target, _, setting = override.partition(":")
        if target == agent and not (folder / "manifest.json").exists():
            command += ["--hp", setting]
    log = open(f"{folder}.log", "a")  # noqa: SIM115 (closed when the child exits)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


# --- evaluation ----------------------------------------------------------------------------------


def result_path(out: Path, scenario: str, policy: str, seed: int) -> Path:
    return out / "results" / scenario / policy / f"seed{seed}.json"


def _evaluate_all(jobs: list[tuple[str, str, int]], out: Path, args: argparse.Namespace) -> None:
    pending = [j for j in jobs if not result_path(out, *j).exists()]
    print(f"evaluation: {len(jobs) - len(pending)} of {len(jobs)} already done", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(evaluate_one, str(out), *job, args.episodes): job for job in pending}
        for done, future in enumerate(as_completed(futures), 1):
            job = futures[future]
            record = future.result()
            print(
                f"  [{done}/{len(pending)}] {job[0]:<20} {job[1]:<15} seed {job[2]}: "
                f"return {record['metrics']['episode_return']:.2f}",
                flush=True,
            )


def evaluate_one(out: str, scenario: str, policy: str, seed: int, episodes: int) -> dict:
    """One (scenario, policy, seed) cell: the mean of its episodes' metrics, saved as JSON."""
    import torch

    torch.set_num_threads(1)
    env = TaskAllocationEnv(scenario, inference="memoized")
    folder = run_dir(Path(out), scenario, policy, seed)
    spec = str(folder) if policy in LEARNERS else policy
    agent = resolve_policy(spec, env, seed)
    started = time.process_time()
    runs = evaluate_policy(env, agent, episodes, seed=EVAL_SEED + 1000 * seed)
    cpu = time.process_time() - started
    env.close()
    flat = [flatten_metrics(r) for r in runs]
    record: dict[str, Any] = {
        "scenario": scenario,
        "policy": policy,
        "seed": seed,
        "episodes": episodes,
        "eval_cpu_s": cpu,
        "metrics": {m: float(np.mean([f[m] for f in flat])) for m in METRICS},
    }
    if policy in LEARNERS:
        manifest = json.loads((folder / "manifest.json").read_text())
        record["train_cpu_s"] = manifest["cpu_time_s"]
        record["train_steps"] = manifest["steps_done"]
    path = result_path(Path(out), scenario, policy, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return record


# --- the table -----------------------------------------------------------------------------------


def _collect(
    out: Path, scenarios: list[str], policies: list[str], seeds: list[int], agents: list[str]
) -> dict[str, Any]:
    study: dict[str, Any] = {"seeds": seeds, "scenarios": {}}
    for scenario in scenarios:
        rows = {}
        for policy in policies:
            records = [json.loads(result_path(out, scenario, policy, k).read_text()) for k in seeds]
            row = {m: summarize(r["metrics"][m] for r in records).as_dict() for m in METRICS}
            if policy in agents:
                row["train_cpu_s"] = summarize(r["train_cpu_s"] for r in records).as_dict()
            row["per_seed_return"] = [r["metrics"]["episode_return"] for r in records]
            rows[policy] = row
        study["scenarios"][scenario] = {
            "rows": rows,
            "collaborative": _collaborative(scenario),
            "targets": _targets(rows, BASELINES, agents),
        }
    return study


def _collaborative(scenario: str) -> bool:
    """Whether the scenario offers plans in which models collaborate."""
    return any(p.kind != "single" for p in load_scenario(scenario).plans)


def _targets(rows: dict[str, Any], baselines: tuple[str, ...], agents: list[str]) -> dict:
    def ret(p: str) -> tuple[float, float]:
        s = rows[p]["episode_return"]
        return s["mean"], s["ci95"]

    best = max(baselines, key=lambda p: ret(p)[0])
    targets: dict[str, Any] = {"best_baseline": best}
    for agent in agents:
        mean, ci = ret(agent)
        beats = {}
        for other in dict.fromkeys(("random", "round-robin", best)):
            o_mean, o_ci = ret(other)
            paired = summarize(
                a - b
                for a, b in zip(
                    rows[agent]["per_seed_return"], rows[other]["per_seed_return"], strict=True
                )
            )
            beats[other] = {
                "higher": mean > o_mean,
                "separated": mean - ci > o_mean + o_ci,
                "paired_difference": paired.as_dict(),
            }
        targets[agent] = beats
    if "maskable-ppo" in agents:
        oracle, b, ppo = ret("oracle")[0], ret(best)[0], ret("maskable-ppo")[0]
        targets["gap_closed"] = (ppo - b) / (oracle - b) if oracle != b else float("nan")
    return targets


def format_markdown(study: dict[str, Any]) -> str:
    """One table per scenario: policies by return, with metrics and training CPU seconds."""
    lines = [
        f"Mean ± 95 % CI over {len(study['seeds'])} seeds (each seed: the mean of its held-out "
        "episodes). Train CPU: seconds of CPU per training run. The oracle is clairvoyant (it "
        "sees each plan's answer before choosing): an upper bound, not a policy. Every policy "
        "meets the same workloads, so the targets also give the paired difference in return "
        "(Δ, mean ± 95 % CI over seeds), which separates policies that the unpaired intervals, "
        "wide from workload variance, cannot.",
        "",
    ]
    for scenario, entry in study["scenarios"].items():
        t = entry["targets"]
        kind = "collaborative plans" if entry["collaborative"] else "single-model plans"
        lines += [f"**{scenario}** ({kind}; best baseline: {t['best_baseline']})", ""]
        lines.append(
            "| policy | return | eff. accuracy | SLO attainment | p99 ms | cost $ | "
            "reject | train CPU s |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        rows = entry["rows"]
        for policy in sorted(rows, key=lambda p: -rows[p]["episode_return"]["mean"]):
            r = rows[policy]
            cpu = r.get("train_cpu_s")
            cells = [
                _pm(r["episode_return"], 1),
                _pm(r["effective_accuracy"], 3),
                _pm(r["slo_attainment"], 3),
                f"{r['latency_p99_ms']['mean']:.2f}",
                f"{r['cost_usd']['mean']:.4f}",
                f"{r['reject_rate']['mean']:.3f}",
                "" if cpu is None else f"{cpu['mean']:.0f}",
            ]
            lines.append(f"| {policy} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(_target_line(t))
        lines.append("")
    return "\n".join(lines)


def format_summary(study: dict[str, Any]) -> str:
    """One row per scenario: episode return of the best non-oracle baseline, each learner and
    the oracle (mean ± 95 % CI over seeds), and MaskablePPO's paired difference from the best
    baseline."""
    entries = study["scenarios"]
    agents = [a for a in LEARNERS if all(a in e["rows"] for e in entries.values())]
    head = ["scenario", "best baseline", *agents, "oracle (bound)"]
    if "maskable-ppo" in agents:
        head.append("PPO − best, paired")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for scenario, entry in entries.items():
        rows, t = entry["rows"], entry["targets"]
        best = t["best_baseline"]
        star = " *" if entry["collaborative"] else ""
        cells = [f"{scenario}{star}", f"{best} {_pm(rows[best]['episode_return'], 1)}"]
        cells += [_pm(rows[p]["episode_return"], 1) for p in [*agents, "oracle"]]
        if "maskable-ppo" in agents:
            cells.append(_pm(t["maskable-ppo"][best]["paired_difference"], 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pm(summary: dict[str, float], digits: int) -> str:
    return f"{summary['mean']:.{digits}f} ± {summary['ci95']:.{digits}f}"


def _target_line(t: dict[str, Any]) -> str:
    parts = []
    for agent, beats in t.items():
        if not isinstance(beats, dict) or "random" not in beats:
            continue
        verdict = ", ".join(
            f"{'>' if b['higher'] else '≤'} {other} "
            f"(Δ {_pm(b['paired_difference'], 1)} paired"
            f"{', intervals separated' if b['separated'] else ''})"
            for other, b in beats.items()
        )
        parts.append(f"{agent}: {verdict}")
    if "gap_closed" in t:
        parts.append(f"PPO closes {t['gap_closed']:.0%} of the best-baseline→oracle gap")
    return "Targets: " + "; ".join(parts) + "."


if __name__ == "__main__":
    raise SystemExit(main())
