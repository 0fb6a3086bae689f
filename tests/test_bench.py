"""``mtenv bench``: the sweep engine. Tiny sweeps (two scenarios, three policies, two seeds, short
episodes) check that every episode is recorded once, that a sweep killed with SIGKILL (or a cut
last line, or Ctrl-C) resumes to the results of a straight run, that a crashing cell is recorded
and the sweep goes on, that the local and Ray backends agree, that bad input fails before
anything is written, and that a manifest runs its sweep again.

The report at the end of a sweep (``mtenv.tools.bench.report``, tested on its own) is replaced
by a stub in in-process runs and skipped (``--no-report``) in subprocesses."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtenv.agents.baselines.heuristics import InfaasPolicy
from mtenv.agents.interfaces import BasePolicy
from mtenv.agents.policies import BASELINES, POLICIES
from mtenv.tools.bench import engine, records
from mtenv.tools.bench.suite import suite_arguments
from mtenv.tools.bench.sweep import build_sweep
from mtenv.tools.cli import EVAL_SEED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, main

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "--scenarios", "quickstart,edge_burst@2x",
    "--policies", "random,infaas,oracle",
    "--seeds", "2", "--episodes", "2", "--episode-tasks", "20",
]  # fmt: skip
CELLS = 2 * 3 * 2
EPISODES = CELLS * 2
HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(autouse=True)
def _no_report(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str | None]]:
    """In-process sweeps call a stub instead of the report (which draws figures)."""
    calls: list[tuple[Path, str | None]] = []

    def stub(out: Path, reference: str | None = None) -> list[Path]:
        calls.append((Path(out), reference))
        return []

    monkeypatch.setattr(engine, "write_report", stub)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def bench(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["bench", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def returns(folder: Path) -> dict[tuple[str, str, int, int], float]:
    """Each recorded episode's return, by (scenario, policy, seed, episode)."""
    found = records.read(folder / records.RESULTS)
    return {(*records.cell_of(r), r["episode"]): r["return"] for r in found.episodes}


def episode_lines(folder: Path) -> list[tuple[str, str, int, int]]:
    """The key of every well-formed episode line of the file, duplicates included."""
    keys = []
    for line in (folder / records.RESULTS).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record["kind"] == records.EPISODE:
            keys.append((*records.cell_of(record), record["episode"]))
    return keys


def cli_subprocess(*argv: str, **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-m", "mtenv.tools.cli", "bench", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sweep, run straight through in this process."""
    out = tmp_path_factory.mktemp("straight") / "sweep"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "write_report", lambda out, reference=None: [])
        assert main(["bench", *SMALL, "--workers", "1", "--out", str(out)]) == 0
    return out


# --- records -------------------------------------------------------------------------------------


def test_every_episode_is_one_record(straight: Path) -> None:
    found = records.read(straight / records.RESULTS)
    assert not found.skipped and not found.failures
    assert len(found.episodes) == EPISODES
    manifest = json.loads((straight / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["argv"][:3] == ["bench", "--scenarios", "quickstart,edge_burst@2x"]
    assert manifest["resolved"]["scenarios"] == ["quickstart", "edge_burst@2x"]
    assert set(manifest["machine"]) >= {"platform", "cpu_model", "cores"}
    for r in found.episodes:
        assert r["eval_seed"] == EVAL_SEED + 1000 * r["seed"] + r["episode"]
        assert r["return"] == r["metrics"]["episode_return"]
        assert r["metrics"]["tasks"] == 20
        assert r["scenario_hash"] == manifest["scenario_hashes"][r["scenario"]]
        assert r["scenario_hash"].startswith("sha256:")
        cdf = r["latency_cdf_ms"]
        assert len(cdf) == 101 and cdf == sorted(cdf) and cdf[0] > 0
        assert r["versions"]["torch"] and r["train"] is None and r["wall_s"] > 0
    # The load suffix changes the workload (and the hash), not the seeds: results pair by seed.
    hashes = manifest["scenario_hashes"]
    assert hashes["quickstart"] != hashes["edge_burst@2x"]
    assert len(returns(straight)) == EPISODES


def test_same_workloads_for_every_policy(straight: Path) -> None:
    found = records.read(straight / records.RESULTS).episodes
    tasks = {}
    for r in found:
        key = (r["scenario"], r["seed"], r["episode"])
        tasks.setdefault(key, set()).add(r["metrics"]["tasks"])
    assert all(len(v) == 1 for v in tasks.values())
    oracle, rand = (
        {(r["scenario"], r["seed"], r["episode"]): r["return"] for r in found if r["policy"] == p}
        for p in ("oracle", "random")
    )
    assert sum(oracle[k] > rand[k] for k in oracle) >= len(oracle) - 1


def test_the_report_is_written_at_the_end(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, _no_report: list
) -> None:
    argv = ["--scenarios", "quickstart", "--policies", "random,infaas", "--seeds", "1"]
    argv += ["--episodes", "1", "--episode-tasks", "10", "--workers", "1", "--reference", "infaas"]
    code, _, err = bench(capsys, *argv, "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert _no_report == [(tmp_path / "b", "infaas")]


# --- resuming ------------------------------------------------------------------------------------


def pool_sweep_under_way(out: Path) -> subprocess.Popen:
    """A 2-worker sweep of 150-task episodes started in its own session, returned once it has
    recorded 3 episodes (or ended, or 120 s passed)."""
    proc = cli_subprocess(
        *SMALL, "--episode-tasks", "150", "--workers", "2", "--no-report", "--out", str(out),
        start_new_session=True,
    )  # fmt: skip
    results, deadline = out / records.RESULTS, time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    return proc


def test_a_sweep_killed_with_sigkill_resumes_to_the_same_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "killed"
    proc = pool_sweep_under_way(out)
    results = out / records.RESULTS
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers at once
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    kept = len(records.read(results).episodes)
    assert 3 <= kept < EPISODES

    # The killed sweep ran 150-task episodes: resume it as such, then compare a fresh straight
    # run of the same sweep.
    argv = [*SMALL, "--episode-tasks", "150", "--workers", "1"]
    code, _, err = bench(capsys, *argv, "--out", str(out), "--resume")
    assert code == 0, err
    again = tmp_path / "again"
    assert bench(capsys, *argv, "--out", str(again))[0] == 0
    assert returns(out) == returns(again)
    assert len(returns(out)) == EPISODES
    lines = episode_lines(out)
    assert len(lines) == len(set(lines)) == EPISODES  # nothing recorded twice
    assert "--resume" in json.loads((out / "manifest.json").read_text())["argv"]


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (Linux ``/proc``)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_stops_the_pool_workers_and_leaves_a_resumable_folder(tmp_path: Path) -> None:
    out = tmp_path / "terminated"
    proc = pool_sweep_under_way(out)
    results = out / records.RESULTS
    try:
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # the CLI alone, as `kill` or a scheduler sends it
        _, stderr = proc.communicate(timeout=60)
        gone = time.monotonic() + 10
        while time.monotonic() < gone and any(alive(pid) for pid in workers):
            time.sleep(0.05)
        left = sorted(pid for pid in workers if alive(pid))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, so a failure leaves nothing
        proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert workers, "the sweep ended before its workers were seen"
    assert left == [], "pool workers outlived the sweep"
    assert "--resume" in stderr
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert 3 <= len(records.read(results).episodes) < EPISODES


def test_resuming_with_more_seeds_and_episodes_runs_only_the_new_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "grown"
    smaller = [*SMALL, "--seeds", "1", "--episodes", "1", "--workers", "1"]
    assert bench(capsys, *smaller, "--out", str(out))[0] == 0
    first = returns(out)
    assert len(first) == EPISODES // 4
    code, said, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert returns(out) == returns(straight)  # the same episodes as a sweep run at full size
    assert f"{EPISODES - len(first)} recorded in this session" in said
    lines = episode_lines(out)
    assert len(lines) == len(set(lines)) == EPISODES


def test_a_cut_last_line_is_reported_and_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "cut"
    out.mkdir()
    text = (straight / records.RESULTS).read_text()
    cut = text[: len(text) - 200]  # the last record loses its end
    (out / records.RESULTS).write_text(cut)
    code, _, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert "cut short" in err and "skipped" in err
    assert returns(out) == returns(straight)
    lines = episode_lines(out)
    assert len(lines) == len(set(lines)) == EPISODES
    # Resuming a finished sweep runs nothing and records nothing.
    before = (out / records.RESULTS).read_text()
    code, stdout, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert "0 recorded in this session" in stdout
    assert (out / records.RESULTS).read_text() == before


class _Crashing(BasePolicy):
    """infaas that fails on its tenth decision."""

    name = "infaas"

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.steps = 0

    def act(self, observation, mask):  # type: ignore[no-untyped-def]
        self.steps += 1
        if self.steps == 10:
            raise RuntimeError("boom: a policy that crashes")
        return int(mask.nonzero()[0][0])


def test_a_crashing_cell_is_recorded_and_the_sweep_goes_on(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    straight: Path,
) -> None:
    out = tmp_path / "crash"
    with monkeypatch.context() as mp:
        mp.setitem(POLICIES, "infaas", _Crashing)
        code, _, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out))
    assert code == 1
    found = records.read(out / records.RESULTS)
    failed = sorted(records.cell_of(f) for f in found.failures)
    assert failed == sorted(
        (s, "infaas", k) for s in ("quickstart", "edge_burst@2x") for k in (0, 1)
    )
    assert all("boom" in f["error"] and "Traceback" in f["traceback"] for f in found.failures)
    assert "boom" in err
    assert len(found.episodes) == EPISODES - 4 * 2  # every other cell finished
    assert "boom: a policy that crashes" in (out / "bench.log").read_text()
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"

    # Resumed with a working policy, the failed cells run again; nothing else does.
    resume_matches_straight(capsys, out, straight)


def resume_matches_straight(capsys: pytest.CaptureFixture[str], out: Path, straight: Path) -> None:
    """``--resume`` on ``out`` finishes the sweep with the straight run's results, each episode
    recorded once."""
    code, _, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert returns(out) == returns(straight)
    lines = episode_lines(out)
    assert len(lines) == len(set(lines)) == EPISODES


class _Interrupting(InfaasPolicy):
    """infaas, but Ctrl-C is pressed as its fifth episode starts."""

    episodes = 0

    def reset(self, seed: int | None = None) -> None:
        type(self).episodes += 1
        if type(self).episodes == 5:
            raise KeyboardInterrupt
        super().reset(seed)


def test_ctrl_c_leaves_a_resumable_folder(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    straight: Path,
) -> None:
    out = tmp_path / "ctrl-c"
    with monkeypatch.context() as mp:
        mp.setitem(POLICIES, "infaas", _Interrupting)
        code, _, err = bench(capsys, *SMALL, "--workers", "1", "--out", str(out))
    assert code == EXIT_INTERRUPTED
    assert "--resume" in err
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert 0 < len(records.read(out / records.RESULTS).episodes) < EPISODES
    resume_matches_straight(capsys, out, straight)


# --- backends ------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_RAY, reason="the ray extra is not installed")
def test_the_ray_backend_gives_the_local_results(tmp_path: Path, straight: Path) -> None:
    out = tmp_path / "ray"
    proc = cli_subprocess(
        *SMALL, "--backend", "ray", "--workers", "2", "--no-report", "--out", str(out)
    )
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert returns(out) == returns(straight)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resolved"]["backend"] == "ray"


def test_the_local_pool_gives_the_in_process_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "pool"
    code, _, err = bench(capsys, *SMALL, "--workers", "2", "--out", str(out))
    assert code == 0, err
    assert returns(out) == returns(straight)
    before = records.read(out / records.RESULTS).episodes
    after = records.read(straight / records.RESULTS).episodes
    key = lambda r: (*records.cell_of(r), r["episode"])  # noqa: E731
    assert {key(r): r["metrics"] for r in before} == {key(r): r["metrics"] for r in after}


def test_an_unreachable_ray_address_fails_having_written_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    out = tmp_path / "never"
    code, stdout, err = bench(capsys, *SMALL, "--backend", "ray", "--out", str(out))
    assert code != 0
    assert not out.exists()
    assert len(err.strip().splitlines()) == 1
    if HAS_RAY:
        assert "RAY_ADDRESS=127.0.0.1:1" in err


def test_a_missing_ray_extra_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    out = tmp_path / "never"
    code, _, err = bench(capsys, *SMALL, "--backend", "ray", "--out", str(out))
    assert code == EXIT_BAD_INPUT
    assert "'ray' extra" in err and 'pip install ".[ray]"' in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


# --- bad input -----------------------------------------------------------------------------------


BAD_INPUT = [
    ("--scenarios quickstrat --policies random", ["quickstrat", "quickstart", "edge_burst"]),
    ("--scenarios quickstart --policies random,randon", ["randon", "round-robin", "oracle"]),
    ("--scenarios quickstart@-2x --policies random", ["@<factor>x"]),
    ("--scenarios quickstart --policies q-learning", ["--train q-learning"]),
    ("--scenarios quickstart --train dqn=100", ["dqn", "maskable-ppo"]),
    ("--scenarios quickstart --policies random --reference infaas", ["infaas", "random"]),
    ("--suite v9", ["v9", "v0"]),
    ("--suite v0 --seeds 1", ["--seeds"]),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT)
def test_bad_input_exits_2_naming_the_known_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: str, expected: list[str]
) -> None:
    out = tmp_path / "never"
    code, _, err = bench(capsys, *argv.split(), "--out", str(out))
    assert code == EXIT_BAD_INPUT
    assert err.startswith("mtenv: error: ") and len(err.strip().splitlines()) == 1
    for text in expected:
        assert text in err
    assert not out.exists()


def test_a_used_folder_is_refused_without_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = bench(capsys, *SMALL, "--out", str(tmp_path))
    assert code == EXIT_BAD_INPUT
    assert "--resume" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.fixture(scope="module")
def q_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tabular Q-learning run on quickstart, trained by `mtenv train`."""
    out = tmp_path_factory.mktemp("q") / "run"
    argv = ["train", "--scenario", "quickstart", "--agent", "q-learning", "--steps", "600"]
    assert main([*argv, "--seed", "0", "--out", str(out), "--quiet"]) == 0
    return out


def test_a_run_folder_is_evaluated_on_its_own_scenario_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, q_run: Path
) -> None:
    out = tmp_path / "never"
    code, _, err = bench(
        capsys, "--scenarios", "edge_burst", "--policies", str(q_run), "--out", str(out)
    )
    assert code == EXIT_BAD_INPUT
    assert "'quickstart'" in err and "'edge_burst'" in err
    assert not out.exists()

    out = tmp_path / "ok"
    argv = ["--scenarios", "quickstart,quickstart@2x", "--policies", f"random,{q_run}"]
    argv += ["--seeds", "1", "--episodes", "1", "--episode-tasks", "20", "--workers", "1"]
    code, _, err = bench(capsys, *argv, "--out", str(out))
    assert code == 0, err
    trained = [r for r in records.read(out / records.RESULTS).episodes if r["policy"] == str(q_run)]
    assert len(trained) == 2
    assert trained[0]["train"]["run_dir"] == str(q_run.resolve())
    assert trained[0]["train"]["curve"] and trained[0]["train"]["cpu_s"] >= 0


# --- training inside the sweep -------------------------------------------------------------------


def test_train_runs_each_learner_once_per_scenario_and_seed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "train"
    argv = ["--scenarios", "quickstart,quickstart@2x", "--policies", "random"]
    argv += [
        "--train",
        "q-learning=600",
        "--seeds",
        "2",
        "--episodes",
        "1",
        "--episode-tasks",
        "20",
    ]
    code, _, err = bench(capsys, *argv, "--workers", "1", "--out", str(out))
    assert code == 0, err
    runs = sorted(p.relative_to(out).as_posix() for p in (out / "runs").glob("*/*/seed*"))
    assert runs == ["runs/quickstart/q-learning/seed0", "runs/quickstart/q-learning/seed1"]
    found = records.read(out / records.RESULTS).episodes
    learned = [r for r in found if r["policy"] == "q-learning"]
    assert sorted((r["scenario"], r["seed"]) for r in learned) == [
        ("quickstart", 0), ("quickstart", 1), ("quickstart@2x", 0), ("quickstart@2x", 1)
    ]  # fmt: skip
    for r in learned:
        train = r["train"]
        assert train["run_dir"] == f"runs/quickstart/q-learning/seed{r['seed']}"
        assert train["cpu_s"] > 0
        steps = [step for step, _ in train["curve"]]
        assert steps and steps == sorted(steps)
    # Resumed, the finished runs are kept and nothing is trained or recorded again.
    stamp = (out / runs[0] / "agent.npz").stat().st_mtime_ns
    code, stdout, err = bench(capsys, *argv, "--workers", "1", "--out", str(out), "--resume")
    assert code == 0, err
    assert "0 recorded" in stdout and "bench: train" not in err
    assert (out / runs[0] / "agent.npz").stat().st_mtime_ns == stamp


# --- manifests, suites, the report command -------------------------------------------------------


def test_from_manifest_runs_the_sweep_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path
) -> None:
    out = tmp_path / "again"
    manifest = str(straight / "manifest.json")
    code, _, err = bench(capsys, "--from-manifest", manifest, "--workers", "1", "--out", str(out))
    assert code == 0, err
    assert returns(out) == returns(straight)
    code, _, err = bench(capsys, "--from-manifest", manifest, "--seeds", "3", "--out", str(out))
    assert code == EXIT_BAD_INPUT and "--seeds" in err
    # Without --out it goes to the manifest's own folder, which is used: refused.
    code, _, err = bench(capsys, "--from-manifest", manifest)
    assert code == EXIT_BAD_INPUT and "not empty" in err


def test_suite_v0_is_every_scenario_baseline_and_learner() -> None:
    sweep = build_sweep(**suite_arguments("v0"))  # type: ignore[arg-type]
    from mtenv.io.scenario_files import shipped_scenarios

    names = [s.name for s in sweep.scenarios]
    assert len(names) == 3 * len(shipped_scenarios())
    assert {"quickstart", "quickstart@0.5x", "quickstart@2x"} <= set(names)
    assert [p.name for p in sweep.policies] == [
        *BASELINES, "oracle", "q-learning", "sarsa", "expected-sarsa", "maskable-ppo"
    ]  # fmt: skip
    assert all(t.budget is None for t in sweep.train)  # the hyperparameter files' budgets
    assert (sweep.seeds, sweep.episodes, sweep.reference) == (5, 2, None)


def test_bench_report_checks_its_folder_and_reference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, straight: Path, _no_report: list
) -> None:
    code, _, err = bench(capsys, "report", str(tmp_path))
    assert code == EXIT_BAD_INPUT and "results.jsonl" in err
    code, _, err = bench(capsys, "report", str(straight), "--reference", "nope")
    assert code == EXIT_BAD_INPUT and "infaas" in err
    code, _, err = bench(capsys, "report", str(straight), "--reference", "infaas")
    assert code == 0, err
    assert _no_report == [(straight, "infaas")]
