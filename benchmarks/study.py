"""The learning study: every policy on every shipped scenario, over seeds and load factors.

For each scenario and each seed ``k`` (0 … ``--seeds``−1):

* each learner (``--agents``) is trained at 1× load with ``mtenv train --seed k`` into
  ``OUT/runs/<scenario>/<agent>/seed<k>``, with its hyperparameter file's settings and budget
  (or ``--budget`` / ``--hp``);
* every baseline (``mtenv.agents.policies.BASELINES``), the clairvoyant oracle and each trained
  agent is evaluated at each load factor of ``--loads`` (the env's ``load_scale``: the scenario's
  arrival rate times the factor; 1 is always included) on ``--episodes`` held-out episodes seeded
  ``EVAL_SEED + 1000·k + i``, the same workloads for every policy, so results pair by seed.

One seed contributes one sample: the mean return of its episodes. The statistics are in
``mtenv/tools/bench/stats.py``. The report (``OUT/study.md``, printed; raw numbers in
``OUT/study.json``):

* a summary row per scenario at 1× load: the best baseline, each learner and the oracle (mean
  return ± Student-t 95 % CI over seeds) and MaskablePPO's paired difference from the best
  baseline;
* per scenario at 1× load, every policy's return (± CI) and other metrics, and for each learner:
  its paired difference from the best baseline (the baseline of highest mean return, oracle
  excluded; mean ± t 95 % CI over seeds), whether it beats it (interval above 0), the share of
  the headroom it closes, mean(learner − best) / mean(oracle − best) (undefined without
  headroom), its paired differences from random and round-robin, and its training CPU seconds
  per run (the run manifest's ``cpu_time_s``: the training loop, worker processes included;
  mean over seeds); the headroom itself, oracle − best paired, is given too;
* across scenarios at 1× load (after Agarwal et al. 2021, rliable): scores normalised per
  (scenario, seed) as (x − random) / (oracle − random) with the scenario's mean random and
  oracle returns; each policy's interquartile mean (IQM) of all (scenario, seed) scores pooled,
  and each learner's probability of improvement over the best baseline (per scenario over all
  seed pairs, averaged over scenarios), each with a stratified bootstrap 95 % interval (seeds
  resampled within each scenario, 2000 resamples, fixed RNG seed);
* per scenario and load factor, each learner's mean return, the best baseline at that load, their
  paired difference (± CI) and whether the learner is at or above it (mean difference ≥ 0);
* the targets, each printed as met or missed with the figures of every scenario (or not
  assessed, when the study lacks the learner, load factor or scenario kind it needs):
  MaskablePPO beats the best baseline on every scenario; it closes at least half the headroom on
  every scenario whose plans collaborate (ensembles, cascades, multi-task models); at 2× load it
  is at or above the best baseline on every scenario; tabular learners beat random and
  round-robin on every scenario ("beats": paired 95 % interval above 0, at 1× load).

Every finished training run and every evaluation (keyed by scenario, load factor, policy and
seed, under ``OUT/results``) is kept on disk, so a killed study rerun with the same arguments
continues where it stopped; training runs resume from their last checkpoint, and an evaluation
is redone only when its file is missing or was made with another ``--episodes``.

    python benchmarks/study.py --out study \\
        --budget maskable-ppo=25000 --hp maskable-ppo:vec_env=dummy      # the README's table
    python benchmarks/study.py --out /tmp/s --scenarios quickstart,edge_burst --seeds 2 \\
        --agents q-learning --budget q-learning=3000 --loads 1,2          # a quick look

``--scenarios`` and ``--agents`` take names separated by commas or spaces.
"""

from __future__ import annotations

import argparse
import json
import math
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
from mtenv.tools.bench.stats import (
    beats,
    headroom_closed,
    iqm,
    normalise,
    paired_difference,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
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
TABULAR = ("q-learning", "sarsa", "expected-sarsa")
PPO = "maskable-ppo"
ORACLE = "oracle"
BEST = "best baseline"
"""The per-scenario best baseline, as a row of the across-scenario table."""
FLOORS = ("random", "round-robin")
"""The baselines tabular learners must beat."""
HEADROOM_TARGET = 0.5
"""The share of the headroom PPO must close on collaborative scenarios."""
STRESS_LOAD = 2.0
"""The load factor at which PPO must be at or above the best baseline."""
UNIT = "1"
"""The 1× load factor as a key of the study's JSON (``load_tag(1.0)``)."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    scenarios = _names(args.scenarios) or sorted(shipped_scenarios())
    agents = _names(args.agents)
    names = {"--scenarios": (scenarios, shipped_scenarios()), "--agents": (agents, LEARNERS)}
    for flag, (given, known) in names.items():
        if unknown := sorted(set(given) - set(known)):
            parser.error(f"{flag}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))

    train_jobs = [(s, a, k) for s in scenarios for a in agents for k in seeds]
    _train_all(train_jobs, out, args)

    policies = [*BASELINES, ORACLE, *agents]
    eval_jobs = [
        (s, p, k, load) for load in args.loads for s in scenarios for p in policies for k in seeds
    ]
    _evaluate_all(eval_jobs, out, args.episodes, args.jobs)

    study = collect(out, scenarios, policies, seeds, args.loads, agents)
    (out / "study.json").write_text(json.dumps(study, indent=1, allow_nan=True) + "\n")
    report = format_report(study)
    (out / "study.md").write_text(report + "\n")
    print(report)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="study folder (kept between runs)")
    parser.add_argument(
        "--scenarios", nargs="*", default=[], help="names, comma- or space-separated (default: all)"
    )
    parser.add_argument(
        "--agents",
        nargs="*",
        default=list(LEARNERS),
        help=f"learners, comma- or space-separated (default: all of {', '.join(LEARNERS)})",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=3, help="evaluation episodes per seed")
    parser.add_argument(
        "--loads",
        type=_loads,
        default=_loads("1,0.5,2"),
        metavar="F,F,...",
        help="load factors to evaluate at (default 1,0.5,2; 1 is always included)",
    )
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


def _names(values: list[str]) -> list[str]:
    """Names given separated by commas and/or spaces, in order, without repeats."""
    return list(dict.fromkeys(n for v in values for n in v.split(",") if n))


def _loads(text: str) -> list[float]:
    """``"1,0.5,2"`` as ``[1.0, 0.5, 2.0]``: 1 first, each factor once; each must be > 0."""
    try:
        factors = [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None
    if not all(math.isfinite(f) and f > 0 for f in factors):
        raise argparse.ArgumentTypeError(f"load factors must be > 0: {text!r}")
    return list(dict.fromkeys([1.0, *factors]))


def load_tag(load: float) -> str:
    """A load factor as written in paths and JSON keys: ``1``, ``0.5``, ``2``."""
    return f"{load:g}"


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


def result_path(out: Path, scenario: str, policy: str, seed: int, load: float) -> Path:
    """Where one evaluation is kept: its key is (scenario, load factor, policy, seed)."""
    return out / "results" / scenario / f"load{load_tag(load)}" / policy / f"seed{seed}.json"


def _cached(path: Path, episodes: int) -> bool:
    """Whether ``path`` holds a finished evaluation over ``episodes`` episodes."""
    try:
        return json.loads(path.read_text())["episodes"] == episodes
    except (OSError, ValueError, KeyError):
        return False


def _evaluate_all(
    jobs: list[tuple[str, str, int, float]], out: Path, episodes: int, workers: int
) -> None:
    pending = [j for j in jobs if not _cached(result_path(out, *j), episodes)]
    print(f"evaluation: {len(jobs) - len(pending)} of {len(jobs)} already done", flush=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(evaluate_one, str(out), *job, episodes): job for job in pending}
        for done, future in enumerate(as_completed(futures), 1):
            scenario, policy, seed, load = futures[future]
            record = future.result()
            print(
                f"  [{done}/{len(pending)}] {scenario:<20} {load_tag(load):>4}× {policy:<15} "
                f"seed {seed}: return {record['metrics']['episode_return']:.2f}",
                flush=True,
            )


def evaluate_one(
    out: str, scenario: str, policy: str, seed: int, load: float, episodes: int
) -> dict[str, Any]:
    """One (scenario, policy, seed, load) cell: the mean of its episodes' metrics, saved as
    JSON. Trained agents are loaded from their 1× training run."""
    import torch

    torch.set_num_threads(1)
    env = TaskAllocationEnv(scenario, inference="memoized", load_scale=load)
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
        "load": load,
        "episodes": episodes,
        "eval_cpu_s": cpu,
        "metrics": {m: float(np.mean([f[m] for f in flat])) for m in METRICS},
    }
    if policy in LEARNERS:
        manifest = json.loads((folder / "manifest.json").read_text())
        record["train_cpu_s"] = manifest["cpu_time_s"]
        record["train_steps"] = manifest["steps_done"]
    path = result_path(Path(out), scenario, policy, seed, load)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return record


# --- the statistics ------------------------------------------------------------------------------


def collect(
    out: Path,
    scenarios: list[str],
    policies: list[str],
    seeds: list[int],
    loads: list[float],
    agents: list[str],
) -> dict[str, Any]:
    """The study's numbers, as written to ``study.json``."""
    study: dict[str, Any] = {
        "seeds": seeds,
        "loads": [load_tag(f) for f in loads],
        "baselines": list(BASELINES),
        "agents": agents,
        "scenarios": {},
    }
    for scenario in scenarios:
        by_load = {}
        for load in loads:
            rows = _rows(out, scenario, policies, seeds, load, agents)
            by_load[load_tag(load)] = {"rows": rows, **_versus_best(rows, agents)}
        study["scenarios"][scenario] = {
            "collaborative": _collaborative(scenario),
            "comparison": _comparison(by_load[UNIT]["rows"], agents),
            "loads": by_load,
        }
    study["aggregate"] = aggregate(study["scenarios"], agents)
    study["targets"] = targets(study)
    return study


def _rows(
    out: Path, scenario: str, policies: list[str], seeds: list[int], load: float, agents: list[str]
) -> dict[str, Any]:
    """Per policy: each metric's mean ± CI over seeds, the per-seed returns and, for learners,
    the training CPU seconds."""
    rows = {}
    for policy in policies:
        paths = [result_path(out, scenario, policy, k, load) for k in seeds]
        records = [json.loads(p.read_text()) for p in paths]
        row = {m: summarize(r["metrics"][m] for r in records).as_dict() for m in METRICS}
        if policy in agents:
            row["train_cpu_s"] = summarize(r["train_cpu_s"] for r in records).as_dict()
        row["per_seed_return"] = [r["metrics"]["episode_return"] for r in records]
        rows[policy] = row
    return rows


def _collaborative(scenario: str) -> bool:
    """Whether the scenario offers plans in which models collaborate."""
    return any(p.kind != "single" for p in load_scenario(scenario).plans)


def best_baseline(rows: dict[str, Any]) -> str:
    """The baseline of highest mean return (the oracle is not a baseline)."""
    return max(BASELINES, key=lambda p: rows[p]["episode_return"]["mean"])


def _difference(rows: dict[str, Any], policy: str, other: str) -> dict[str, Any]:
    """``policy − other`` paired by seed (mean ± CI) and whether ``policy`` beats ``other``."""
    diff = paired_difference(rows[policy]["per_seed_return"], rows[other]["per_seed_return"])
    return {"vs": other, "difference": diff.as_dict(), "beats": beats(diff)}


def _versus_best(rows: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    """At one load: the best baseline there and each learner's paired difference from it."""
    best = best_baseline(rows)
    learners = {}
    for agent in agents:
        versus = _difference(rows, agent, best)
        versus["at_or_above"] = versus["difference"]["mean"] >= 0
        learners[agent] = versus
    return {"best_baseline": best, "learners": learners}


def _comparison(rows: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    """At 1× load: the best baseline, the headroom (oracle − best, paired) and per learner its
    differences from the best baseline, random and round-robin, the share of the headroom it
    closes and its training CPU seconds."""
    best = best_baseline(rows)
    mean = {p: r["episode_return"]["mean"] for p, r in rows.items()}
    learners = {}
    for agent in agents:
        learners[agent] = {
            **_difference(rows, agent, best),
            "headroom_closed": headroom_closed(mean[agent], mean[best], mean[ORACLE]),
            "floors": {f: _difference(rows, agent, f) for f in FLOORS},
            "train_cpu_s": rows[agent]["train_cpu_s"]["mean"],
        }
    headroom = paired_difference(rows[ORACLE]["per_seed_return"], rows[best]["per_seed_return"])
    return {"best_baseline": best, "headroom": headroom.as_dict(), "learners": learners}


def aggregate(entries: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    """Across scenarios at 1× load: per policy the IQM of normalised scores, per learner the
    probability of improvement over each scenario's best baseline; stratified bootstrap CIs."""
    rows = {s: e["loads"][UNIT]["rows"] for s, e in entries.items()}
    best = {s: e["comparison"]["best_baseline"] for s, e in entries.items()}
    raw = {p: _matrix(rows, dict.fromkeys(rows, p)) for p in rows[next(iter(rows))]}
    raw[BEST] = _matrix(rows, best)
    scores = {p: _normalised(m, raw["random"], raw[ORACLE]) for p, m in raw.items()}
    result: dict[str, Any] = {"load": UNIT, "iqm": {}, "probability_of_improvement": {}}
    for policy, matrix in scores.items():
        interval = stratified_bootstrap_ci(iqm, matrix)
        result["iqm"][policy] = {"iqm": iqm(matrix), "ci95": interval}
    for agent in agents:
        p = probability_of_improvement(raw[agent], raw[BEST])
        interval = stratified_bootstrap_ci(probability_of_improvement, raw[agent], raw[BEST])
        result["probability_of_improvement"][agent] = {"vs": BEST, "p": p, "ci95": interval}
    result["normalised"] = {
        p: dict(zip(rows, m.T.tolist(), strict=True)) for p, m in scores.items()
    }
    return result


def _matrix(rows: dict[str, Any], policy: dict[str, str]) -> np.ndarray:
    """Per-seed returns as a (seeds, scenarios) matrix; ``policy[scenario]`` names the policy
    whose returns fill that scenario's column."""
    return np.array([rows[s][policy[s]]["per_seed_return"] for s in rows]).T


def _normalised(matrix: np.ndarray, random: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """Each column normalised by that scenario's mean random and mean oracle returns."""
    columns = [
        normalise(matrix[:, j], random[:, j].mean(), oracle[:, j].mean())
        for j in range(matrix.shape[1])
    ]
    return np.stack(columns, axis=1)


# --- the targets ---------------------------------------------------------------------------------


def targets(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what it asks, ``met`` (True, False, or None when this study cannot tell)
    and its checks, one per scenario (and learner), each passed or not, with its figures."""
    entries, agents = study["scenarios"], study["agents"]
    return [
        _ppo_beats_best(entries, agents),
        _ppo_closes_headroom(entries, agents),
        _ppo_under_load(entries, agents),
        _tabular_beats_floors(entries, agents),
    ]


def _target(text: str, checks: list[tuple[bool, str]], missing: str | None) -> dict[str, Any]:
    """A target's verdict: met when every check passes; None (not assessed) when ``missing``
    says why this study cannot tell."""
    if missing is not None:
        return {"target": text, "met": None, "why_not_assessed": missing, "checks": []}
    met = all(ok for ok, _ in checks)
    return {"target": text, "met": met, "checks": [{"ok": ok, "figures": f} for ok, f in checks]}


def _ppo_beats_best(entries: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    checks = []
    for scenario, entry in entries.items():
        v = entry["comparison"]["learners"].get(PPO)
        if v is not None:
            checks.append(
                (v["beats"], f"{scenario}: Δ {_pm(v['difference'], 1, '+')} vs {v['vs']}")
            )
    missing = None if checks else f"{PPO} not among --agents"
    text = f"{PPO} beats the best baseline on every scenario (1×, paired 95 % CI above 0)"
    return _target(text, checks, missing)


def _ppo_closes_headroom(entries: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    checks = []
    for scenario, entry in entries.items():
        c = entry["comparison"]
        if entry["collaborative"] and PPO in agents:
            share = c["learners"][PPO]["headroom_closed"]
            detail = (
                f"{scenario}: closes {share:.0%} of headroom {c['headroom']['mean']:.1f} "
                f"(Δ {c['learners'][PPO]['difference']['mean']:+.1f} vs {c['best_baseline']})"
            )
            checks.append((share >= HEADROOM_TARGET, detail))
    missing = None if checks else "no collaborative scenario with " + PPO
    text = f"{PPO} closes ≥ {HEADROOM_TARGET:.0%} of the headroom on collaborative scenarios (1×)"
    return _target(text, checks, missing)


def _ppo_under_load(entries: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    tag, checks = load_tag(STRESS_LOAD), []
    for scenario, entry in entries.items():
        v = entry["loads"].get(tag, {}).get("learners", {}).get(PPO)
        if v is not None:
            detail = f"{scenario}: Δ {_pm(v['difference'], 1, '+')} vs {v['vs']}"
            checks.append((v["at_or_above"], detail))
    missing = None if checks else f"needs {PPO} in --agents and {tag} in --loads"
    text = f"{PPO} at or above the best baseline at {tag}× load on every scenario (mean Δ ≥ 0)"
    return _target(text, checks, missing)


def _tabular_beats_floors(entries: dict[str, Any], agents: list[str]) -> dict[str, Any]:
    checks = []
    for scenario, entry in entries.items():
        for agent in [a for a in agents if a in TABULAR]:
            floors = entry["comparison"]["learners"][agent]["floors"]
            detail = ", ".join(
                f"Δ {_pm(v['difference'], 1, '+')} vs {f}" for f, v in floors.items()
            )
            checks.append(
                (all(v["beats"] for v in floors.values()), f"{scenario} {agent}: {detail}")
            )
    missing = None if checks else "no tabular learner among --agents"
    text = "tabular learners beat random and round-robin on every scenario (1×, paired CI above 0)"
    return _target(text, checks, missing)


# --- the report ----------------------------------------------------------------------------------


def format_report(study: dict[str, Any]) -> str:
    """The whole report: summary, per-scenario tables, across scenarios, loads, targets."""
    parts = [
        "## Summary (1× load)",
        format_summary(study),
        "## Per scenario (1× load)",
        format_markdown(study),
        "## Across scenarios (1× load)",
        format_aggregate(study),
        "## Load factors",
        format_loads(study),
        "## Targets",
        format_targets(study),
    ]
    return "\n\n".join(parts)


def format_summary(study: dict[str, Any]) -> str:
    """One row per scenario: episode return of the best non-oracle baseline, each learner and
    the oracle (mean ± 95 % CI over seeds), and MaskablePPO's paired difference from the best
    baseline."""
    entries, agents = study["scenarios"], study["agents"]
    head = ["scenario", "best baseline", *agents, "oracle (bound)"]
    if PPO in agents:
        head.append("PPO − best, paired")
    lines = [_row(head), "|---" + "|---:" * (len(head) - 1) + "|"]
    for scenario, entry in entries.items():
        rows, c = entry["loads"][UNIT]["rows"], entry["comparison"]
        best = c["best_baseline"]
        star = " *" if entry["collaborative"] else ""
        cells = [f"{scenario}{star}", f"{best} {_pm(rows[best]['episode_return'], 1)}"]
        cells += [_pm(rows[p]["episode_return"], 1) for p in [*agents, ORACLE]]
        if PPO in agents:
            cells.append(_pm(c["learners"][PPO]["difference"], 1, "+"))
        lines.append(_row(cells))
    return "\n".join(lines) + "\n\n`*`: plans collaborate (ensembles, cascades, multi-task models)."


def format_markdown(study: dict[str, Any]) -> str:
    """Per scenario: every policy by return with its metrics, then each learner against the best
    baseline, random and round-robin."""
    lines = [
        f"Mean ± 95 % CI over {len(study['seeds'])} seeds (each seed: the mean of its held-out "
        "episodes). Train CPU: seconds of CPU per training run. The oracle is clairvoyant (it "
        "sees each plan's answer before choosing): an upper bound, not a policy. Every policy "
        "meets the same workloads, so differences (Δ) are paired by seed, which separates "
        "policies that the unpaired intervals, wide from workload variance, cannot. Beats: the "
        "paired interval lies above 0. Headroom closed: mean(learner − best) / "
        "mean(oracle − best).",
        "",
    ]
    for scenario, entry in study["scenarios"].items():
        c = entry["comparison"]
        kind = "collaborative plans" if entry["collaborative"] else "single-model plans"
        lines += [
            f"**{scenario}** ({kind}; best baseline: {c['best_baseline']}; headroom, oracle − "
            f"best: {_pm(c['headroom'], 1, '+')})",
            "",
            _policy_table(entry["loads"][UNIT]["rows"]),
            "",
        ]
        if c["learners"]:
            lines += [_learner_table(c), ""]
    return "\n".join(lines).rstrip()


def _policy_table(rows: dict[str, Any]) -> str:
    lines = [
        "| policy | return | eff. accuracy | SLO attainment | p99 ms | cost $ | reject "
        "| train CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for policy in sorted(rows, key=lambda p: -rows[p]["episode_return"]["mean"]):
        r = rows[policy]
        cpu = r.get("train_cpu_s")
        cells = [
            policy,
            _pm(r["episode_return"], 1),
            _pm(r["effective_accuracy"], 3),
            _pm(r["slo_attainment"], 3),
            f"{r['latency_p99_ms']['mean']:.2f}",
            f"{r['cost_usd']['mean']:.4f}",
            f"{r['reject_rate']['mean']:.3f}",
            "" if cpu is None else f"{cpu['mean']:.1f}",
        ]
        lines.append(_row(cells))
    return "\n".join(lines)


def _learner_table(comparison: dict[str, Any]) -> str:
    best = comparison["best_baseline"]
    head = ["learner", f"Δ vs {best}", "beats", "headroom closed", *(f"Δ vs {f}" for f in FLOORS)]
    lines = [_row([*head, "train CPU s"]), "|---" + "|---:" * len(head) + "|"]
    for agent, v in comparison["learners"].items():
        cells = [
            agent,
            _pm(v["difference"], 1, "+"),
            _yes(v["beats"]),
            f"{v['headroom_closed']:.0%}",
            *(_floor(v["floors"][f]) for f in FLOORS),
            f"{v['train_cpu_s']:.1f}",
        ]
        lines.append(_row(cells))
    return "\n".join(lines)


def format_aggregate(study: dict[str, Any]) -> str:
    """IQM of normalised scores per policy and each learner's probability of improvement."""
    agg = study["aggregate"]
    lines = [
        "Normalised score per (scenario, seed): (x − random) / (oracle − random), with the "
        "scenario's mean random and oracle returns. IQM: mean of the middle 50 % of all "
        "(scenario, seed) scores; P(X > Y): per scenario over all seed pairs, averaged over "
        f"scenarios. The row '{BEST}' takes each scenario's own. 95 % CIs: stratified "
        "bootstrap (seeds resampled within each scenario, 2000 resamples).",
        "",
        "| policy | IQM | 95 % CI |",
        "|---|---:|---:|",
    ]
    for policy, v in sorted(agg["iqm"].items(), key=lambda kv: -_sortable(kv[1]["iqm"])):
        lines.append(_row([policy, f"{v['iqm']:.3f}", _interval(v["ci95"], 3)]))
    if agg["probability_of_improvement"]:
        lines += ["", f"| learner | P(learner > {BEST}) | 95 % CI |", "|---|---:|---:|"]
        for agent, v in agg["probability_of_improvement"].items():
            lines.append(_row([agent, f"{v['p']:.2f}", _interval(v["ci95"], 2)]))
    return "\n".join(lines)


def format_loads(study: dict[str, Any]) -> str:
    """Per scenario and load factor, each learner against the best baseline at that load."""
    if not study["agents"]:
        return "No learners in this study."
    lines = [
        "Learners trained at 1×, evaluated at each load factor; the best baseline is chosen at "
        "that load. At or above: mean paired Δ ≥ 0.",
        "",
        "| scenario | load | learner | return | best baseline | Δ (paired) | at or above |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for scenario, entry in study["scenarios"].items():
        for tag, at in entry["loads"].items():
            rows, best = at["rows"], at["best_baseline"]
            for agent, v in at["learners"].items():
                cells = [
                    scenario,
                    f"{tag}×",
                    agent,
                    _pm(rows[agent]["episode_return"], 1),
                    f"{best} {_pm(rows[best]['episode_return'], 1)}",
                    _pm(v["difference"], 1, "+"),
                    _yes(v["at_or_above"]),
                ]
                lines.append(_row(cells))
    return "\n".join(lines)


def format_targets(study: dict[str, Any]) -> str:
    """Each target as met / missed / not assessed, with the figures it was judged on."""
    lines = []
    for t in study["targets"]:
        if t["met"] is None:
            lines.append(f"- **not assessed**: {t['target']} ({t['why_not_assessed']})")
            continue
        passed = sum(c["ok"] for c in t["checks"])
        verdict = "met" if t["met"] else "missed"
        lines.append(f"- **{verdict}** ({passed} of {len(t['checks'])}): {t['target']}")
        lines += [f"  - {'met' if c['ok'] else 'missed'}: {c['figures']}" for c in t["checks"]]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _pm(summary: dict[str, float], digits: int, sign: str = "") -> str:
    return f"{summary['mean']:{sign}.{digits}f} ± {summary['ci95']:.{digits}f}"


def _floor(versus: dict[str, Any]) -> str:
    return _pm(versus["difference"], 1, "+") + (" (beats)" if versus["beats"] else "")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _interval(bounds: list[float], digits: int) -> str:
    return f"[{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def _sortable(value: float) -> float:
    return -math.inf if math.isnan(value) else value


if __name__ == "__main__":
    raise SystemExit(main())
