"""The sweep engine behind ``mtenv bench``: trains the sweep's learners, evaluates every cell's
episodes, and appends each finished episode to ``OUT/results.jsonl`` as it comes back.

Phase 1 trains each learner of ``--train`` once per (base scenario, seed) into
``OUT/runs/<scenario>/<agent>/seed<k>`` (one unit per run; a run a killed sweep left unfinished
resumes from its last checkpoint, a finished one is kept). Phase 2 plays the episodes of every
cell (one unit per episode) on the backend's workers. This process is the file's only writer:
each record is appended, flushed and synced the moment its unit returns
(:func:`mtenv.tools.bench.records.append`).

A unit that raises becomes one failure record for its cell (error line and traceback, also in
``OUT/bench.log``), and the sweep goes on without that cell's remaining episodes; a learner
whose training fails fails every cell that evaluates it. The exit status is non-zero when any
cell failed. ``--resume`` reads ``results.jsonl`` back (a line cut by a kill is reported and
skipped), runs only the episodes it lacks, and runs failed cells again; no episode is recorded
twice. Ctrl-C stops the workers and leaves a folder that ``--resume`` continues.
"""

from __future__ import annotations

import csv
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mtenv.progress import ProgressBar
from mtenv.tools.bench import records
from mtenv.tools.bench.backends import Backend, make_backend, runs_in_process
from mtenv.tools.bench.manifest import MANIFEST, build_manifest, finish_manifest, write_manifest
from mtenv.tools.bench.sweep import PolicySpec, ScenarioSpec, Sweep, resolve_scenario, scenario_hash
from mtenv.tools.bench.units import EpisodeJob, TrainJob, play_episode, train_run
from mtenv.tools.cli_common import EXIT_INTERRUPTED, CliError

LOG = "bench.log"
EXIT_CELLS_FAILED = 1
Cell = tuple[str, str, int]


@dataclass
class Options:
    """How to run a sweep: where to (``out``), on what (``backend``, ``workers``: ``None`` is
    the CPU count), whether to continue a folder (``resume``), the command's ``argv``, the
    first evaluation seed, and whether to write the report at the end."""

    out: Path
    backend: str = "local"
    workers: int | None = None
    resume: bool = False
    argv: tuple[str, ...] = ()
    eval_seed: int = 10_000
    report: bool = True


def run_dir(out: Path, scenario_label: str, agent: str, seed: int) -> Path:
    """Where the sweep trains ``agent`` on a base scenario with ``seed``."""
    return Path(out) / "runs" / scenario_label / agent / f"seed{seed}"


def run_sweep(sweep: Sweep, options: Options, stderr: TextIO | None = None) -> int:
    """Run (or continue) a sweep into ``options.out``; returns the exit status: 0, 1 when a
    cell failed, :data:`EXIT_INTERRUPTED` on Ctrl-C. Bad input raises :class:`CliError`
    before anything is written."""
    stderr = stderr if stderr is not None else sys.stderr
    out = Path(options.out)
    resolved = {s.name: resolve_scenario(s, sweep.episode_tasks) for s in sweep.scenarios}
    if not runs_in_process(options.backend, options.workers):
        check_zoos_reach_workers(resolved)
    hashes = {name: scenario_hash(scenario) for name, scenario in resolved.items()}
    previous = check_out(out, options.resume, hashes)
    backend = make_backend(options.backend, options.workers)
    interrupted = False
    try:
        out.mkdir(parents=True, exist_ok=True)
        run = _Run(sweep, options, out, backend, hashes, previous, stderr)
        try:
            return run.go()
        except KeyboardInterrupt:
            interrupted = True
            backend.close(interrupted=True)
            return run.interrupted()
    finally:
        if not interrupted:
            backend.close()


def check_zoos_reach_workers(scenarios: dict[str, Any]) -> None:
    """Refuse a scenario whose zoo was registered at run time in this process: worker
    processes import mtenv afresh and find only built-in and installed zoos."""
    from mtenv.zoo.registry import ENTRY_POINT_GROUP, REGISTERED_AT_RUN_TIME, zoo_source

    for name, scenario in scenarios.items():
        if zoo_source(scenario.zoo) == REGISTERED_AT_RUN_TIME:
            raise CliError(
                f"--scenarios: {name}: zoo {scenario.zoo!r} is registered at run time in this "
                "process, which worker processes do not share: run with --workers 1, or install "
                f"it as a package with an {ENTRY_POINT_GROUP!r} entry point"
            )


def check_out(out: Path, resume: bool, hashes: dict[str, str]) -> records.Records | None:
    """``--out`` checked before anything is written: a new or empty folder, or with
    ``--resume`` a sweep folder whose records were made on the same scenarios. Returns the
    records read back (``None`` for a new sweep)."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out: expected a folder, got the file {str(out)!r}")
    used = out.exists() and any(out.iterdir())
    if not resume:
        if used:
            raise CliError(
                f"--out: {str(out)!r} is not empty; pass --resume to continue the sweep in it, "
                "or choose a new folder"
            )
        return None
    if not used:
        return None
    if not (out / records.RESULTS).exists() and not (out / MANIFEST).exists():
        raise CliError(f"--resume: {str(out)!r} holds no sweep (no {records.RESULTS})")
    found = records.read(out / records.RESULTS)
    for record in found.episodes:
        name, recorded = record["scenario"], record.get("scenario_hash")
        if name in hashes and recorded != hashes[name]:
            raise CliError(
                f"--resume: {out / records.RESULTS}: scenario {name!r} was recorded as "
                f"{recorded}, and resolves now to {hashes[name]} (the scenario, its load or "
                "--episode-tasks changed); use a new --out"
            )
    return found


class _Run:
    """One session of a sweep in its folder."""

    def __init__(
        self,
        sweep: Sweep,
        options: Options,
        out: Path,
        backend: Backend,
        hashes: dict[str, str],
        previous: records.Records | None,
        stderr: TextIO,
    ):
        self.sweep, self.options, self.out, self.backend = sweep, options, out, backend
        self.hashes, self.stderr = hashes, stderr
        self.results = out / records.RESULTS
        self.log_path = out / LOG
        self.failed: set[Cell] = set()
        self.recorded = 0
        self._train_info: dict[str, dict[str, Any]] = {}
        self._bar: ProgressBar | None = None
        if previous is not None:
            if records.repair(self.results):
                self.note(f"{records.RESULTS}: its last line was cut short by a kill")
            for skipped in previous.skipped:
                self.note(f"{skipped}: skipped")
        self.done = previous.finished_episodes() if previous is not None else {}
        resolved = {
            **sweep.resolved(),
            "backend": options.backend,
            "workers": backend.workers,
            "out": str(out.resolve()),
        }
        self.manifest = build_manifest(list(options.argv), resolved, hashes, options.eval_seed)
        write_manifest(out, self.manifest)
        self.log(f"start: mtenv {' '.join(options.argv)} ({backend.describe()})")

    # --- the two phases ------------------------------------------------------------------------

    def go(self) -> int:
        self.train_all()
        self.evaluate_all()
        status = "failed" if self.failed else "finished"
        finish_manifest(self.out, self.manifest, status)
        total = sum(len(v) for v in self.done.values())
        self.log(f"end: {status}; {self.recorded} episode(s) recorded in this session")
        print(
            f"{self.results}: {total} episode(s), {self.recorded} recorded in this session"
            + (f"; {len(self.failed)} cell(s) failed (see {self.log_path})" if self.failed else ""),
        )
        reported = self.report() if self.options.report else True
        return EXIT_CELLS_FAILED if self.failed or not reported else 0

    def train_all(self) -> None:
        sweep = self.sweep
        jobs, cells_of = [], {}
        for base in sweep.bases():
            for spec in sweep.train:
                for seed in range(sweep.seeds):
                    folder = run_dir(self.out, base.label, spec.agent, seed)
                    cells = [
                        (s.name, spec.agent, seed) for s in sweep.scenarios if s.base == base.base
                    ]
                    if _complete(folder) or all(self._cell_done(c) for c in cells):
                        continue
                    job = TrainJob(base.base, spec.agent, seed, spec.budget, str(folder))
                    jobs.append(job)
                    cells_of[job] = cells
        if not jobs:
            return
        self._bar = ProgressBar(len(jobs), "bench: train", stream=self.stderr)
        self._bar.update(0)
        for n, (job, outcome) in enumerate(self.backend.run(train_run, jobs), 1):
            label = f"{job.agent} on {Path(job.scenario).stem} seed {job.seed}"
            if outcome["ok"]:
                value = outcome["value"]
                self.log(f"trained {label}: {value['steps']} steps, {value['cpu_s']:.1f} CPU s")
            else:
                for cell in cells_of[job]:
                    self.fail(cell, "train", f"training failed: {outcome['error']}", outcome)
            self._bar.update(n, f"{len(self.failed)} failed" if self.failed else "")
        self._bar.close()
        self._bar = None

    def evaluate_all(self) -> None:
        sweep = self.sweep
        cells = sweep.cells()
        total = len(cells) * sweep.episodes
        already = sum(
            len(self.done.get((s.name, p.name, k), set()) & set(range(sweep.episodes)))
            for s, p, k in cells
        )
        self._bar = ProgressBar(total, "bench: episodes", stream=self.stderr)
        self._bar.update(already)
        finished = already
        run = self.backend.run(play_episode, self._episode_jobs(), skip=self._skip)
        for job, outcome in run:
            if outcome["ok"]:
                self.record(job, outcome["value"])
                finished += 1
            else:
                self.fail(job.cell, "eval", outcome["error"], outcome)
            note = f"{len(self.failed)} cell(s) failed" if self.failed else ""
            self._bar.update(finished, note)
        self._bar.close()
        self._bar = None

    def _episode_jobs(self):  # type: ignore[no-untyped-def]
        sweep = self.sweep
        for scenario, policy, seed in sweep.cells():
            cell = (scenario.name, policy.name, seed)
            if cell in self.failed:
                continue
            done = self.done.get(cell, set())
            for i in range(sweep.episodes):
                if i in done:
                    continue
                yield EpisodeJob(
                    scenario=scenario,
                    episode_tasks=sweep.episode_tasks,
                    policy=policy.name,
                    spec=self._policy_spec(scenario, policy, seed),
                    seed=seed,
                    episode=i,
                    eval_seed=self.options.eval_seed + 1000 * seed + i,
                    scenario_hash=self.hashes[scenario.name],
                )

    def _skip(self, job: EpisodeJob) -> bool:
        return job.cell in self.failed

    def _cell_done(self, cell: Cell) -> bool:
        return len(self.done.get(cell, set()) & set(range(self.sweep.episodes))) == (
            self.sweep.episodes
        )

    def _policy_spec(self, scenario: ScenarioSpec, policy: PolicySpec, seed: int) -> str:
        if policy.kind == "run":
            return str(policy.run_dir)
        if policy.kind == "trained":
            return str(run_dir(self.out, scenario.label, policy.name, seed))
        return policy.name

    # --- records ---------------------------------------------------------------------------------

    def record(self, job: EpisodeJob, value: dict[str, Any]) -> None:
        scenario, policy, seed = job.cell
        kind = next(p for p in self.sweep.policies if p.name == policy).kind
        record = {
            "kind": records.EPISODE,
            "scenario": scenario,
            "policy": policy,
            "seed": seed,
            "episode": value["episode"],
            "eval_seed": value["eval_seed"],
            "return": value["return"],
            "metrics": value["metrics"],
            "latency_cdf_ms": value["latency_cdf_ms"],
            "scenario_hash": job.scenario_hash,
            "versions": value["versions"],
            "train": None if kind == "baseline" else self.train_info(job.spec),
            "wall_s": value["wall_s"],
        }
        records.append(self.results, record)
        self.done.setdefault(job.cell, set()).add(job.episode)
        self.recorded += 1

    def fail(self, cell: Cell, stage: str, error: str, outcome: dict[str, Any]) -> None:
        """One failure record per cell and session; every failure goes to the log."""
        self.log(f"FAILED {stage} {cell[0]} / {cell[1]} / seed {cell[2]}: {error}")
        self.log(outcome.get("traceback", "").rstrip())
        if cell in self.failed:
            return
        self.failed.add(cell)
        scenario, policy, seed = cell
        records.append(
            self.results,
            {
                "kind": records.FAILURE,
                "scenario": scenario,
                "policy": policy,
                "seed": seed,
                "stage": stage,
                "error": error,
                "traceback": outcome.get("traceback", ""),
            },
        )
        self.note(f"cell {scenario} / {policy} / seed {seed} failed: {error}")

    def train_info(self, folder: str) -> dict[str, Any]:
        """A trained policy's ``train`` field: its run folder (relative to the sweep folder when
        inside it), training CPU seconds and learning curve."""
        if folder not in self._train_info:
            path = Path(folder)
            try:
                manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
                cpu = manifest.get("cpu_time_s")
            except (OSError, ValueError):
                cpu = None
            try:
                shown = str(path.resolve().relative_to(self.out.resolve()))
            except ValueError:
                shown = str(path.resolve())
            self._train_info[folder] = {"run_dir": shown, "cpu_s": cpu, "curve": _curve(path)}
        return self._train_info[folder]

    # --- messages ----------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A line on stderr (and in the log), above the progress bar."""
        if self._bar is not None and self._bar.interactive:
            self.stderr.write("\n")
        print(f"mtenv bench: {text}", file=self.stderr, flush=True)
        self.log(text)

    def log(self, text: str) -> None:
        if not text:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {text}\n")

    def interrupted(self) -> int:
        if self._bar is not None:
            self._bar.close()
        finish_manifest(self.out, self.manifest, "interrupted")
        self.log("interrupted")
        print(
            f"\ninterrupted: finished episodes are in {self.results}; continue with the same "
            "command and --resume",
            file=self.stderr,
        )
        return EXIT_INTERRUPTED

    def report(self) -> bool:
        """Write the report; whether it went well (a missing report module is only noted)."""
        try:
            paths = write_report(self.out, self.sweep.reference)
        except CliError as exc:
            self.note(f"no report: {exc}")
            return True
        except Exception as exc:  # the results are safe on disk: say so and how to retry
            from mtenv.tools.bench.units import one_line

            self.note(
                f"the report failed ({one_line(exc)}); the results are kept: rerun it with "
                f"`mtenv bench report {self.out}`"
            )
            self.log(traceback.format_exc())
            return False
        for path in paths:
            print(f"report: {path}")
        return True


def write_report(out: Path, reference: str | None = None) -> list[Path]:
    """The summary tables and figures of a sweep folder (:mod:`mtenv.tools.bench.report`)."""
    try:
        from mtenv.tools.bench.report import write_report as report
    except ModuleNotFoundError as exc:
        if exc.name != "mtenv.tools.bench.report":
            raise
        raise CliError(
            "the report module (mtenv.tools.bench.report) is not in this mtenv; the results "
            f"are in {Path(out) / records.RESULTS}"
        ) from None
    return list(report(Path(out), reference=reference))


def _complete(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "manifest.json").read_text())["complete"])
    except (OSError, ValueError, KeyError):
        return False


def _curve(folder: Path) -> list[list[float]]:
    """``learning_curve.csv`` as ``[[step, episode_return], ...]`` (rows cut by a kill left out)."""
    try:
        with open(folder / "learning_curve.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
    except OSError:
        return []
    curve = []
    for row in rows:
        try:
            curve.append([int(row[0]), float(row[1])])
        except (IndexError, ValueError):
            continue
    return curve
