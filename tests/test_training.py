"""Training runs end to end: ``mtenv train`` writes a complete, loadable run folder; bad input
writes nothing; a killed run resumes without losing or repeating work; ``eval``, ``run --policy
DIR`` and ``explain`` use what training wrote; a saved agent that does not fit is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BASE_SCENARIO, merge

import mtenv
from mtenv.agents.hyperparams import FILES, hyperparameters_for, parse_override
from mtenv.agents.interfaces import AgentLoadError
from mtenv.agents.saved import load_agent
from mtenv.agents.training import (
    MANIFEST,
    TrainingError,
    TrainingRequest,
    _RunCallback,
    train,
)
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.tools.cli import EXIT_BAD_INPUT, main

TABULAR_STEPS = 1_500  # 30 episodes of the 50-task scenario below


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    """One T4 with two single-model plans: a cheap weak model and a strong one."""
    raw = merge(BASE_SCENARIO, {"devices": [{"kind": "t4", "resident": ["linear", "cnn_wide"]}]})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def request(scenario: Path, out: Path, **changes) -> TrainingRequest:
    fields = dict(scenario=str(scenario), agent="q-learning", out=out, seed=3, steps=TABULAR_STEPS)
    return TrainingRequest(**{**fields, "progress": False, **changes})


def curve(folder: Path) -> list[dict[str, str]]:
    with open(folder / "learning_curve.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- hyperparameter files ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FILES))
@pytest.mark.parametrize("env_id", [*sorted(mtenv.ENV_IDS), "mtenv/TaskAllocation-v0"])
def test_every_learner_has_a_budget_for_every_registered_id(kind: str, env_id: str) -> None:
    steps, kwargs = hyperparameters_for(kind, env_id)
    assert steps > 0
    assert "n_timesteps" not in kwargs


def test_overrides_are_read_as_yaml() -> None:
    assert parse_override("gamma=0.95") == ("gamma", 0.95)
    assert parse_override("policy_kwargs={net_arch: [8, 8]}") == (
        "policy_kwargs",
        {"net_arch": [8, 8]},
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("gamma")


# --- a run folder --------------------------------------------------------------------------------


def test_train_writes_a_complete_run_folder(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(request(scenario_file, out))

    names = {p.name for p in out.iterdir()}
    assert {MANIFEST, "agent.npz", "scenario.yaml", "hyperparameters.yml"} <= names
    assert {"learning_curve.csv", "learning_curve.png", "checkpoints"} <= names
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is True
    assert manifest["agent"] == "q-learning" and manifest["seed"] == 3
    assert manifest["steps_done"] == result.steps >= TABULAR_STEPS
    assert manifest["cpu_time_s"] > 0
    assert {"numpy", "gymnasium", "python"} <= set(manifest["versions"])
    hyper = yaml.safe_load((out / "hyperparameters.yml").read_text())
    assert hyper["n_timesteps"] == TABULAR_STEPS
    rows = curve(out)
    assert len(rows) == result.episodes
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == result.steps


def test_a_used_folder_is_refused_without_resume_and_left_alone(
    scenario_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="new or empty folder"):
        train(request(scenario_file, out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_bad_hyperparameters_fail_before_anything_is_written(
    scenario_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="hyperparameters"):
        train(request(scenario_file, out, overrides={"no_such_knob": 1}))
    assert not out.exists()


def test_a_killed_run_resumes_to_the_same_result(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = tmp_path / "straight"
    train(request(scenario_file, straight))

    killed = tmp_path / "killed"
    original = _RunCallback.on_checkpoint
    seen = {"n": 0}

    def dies_at_the_tenth_checkpoint(self: _RunCallback, step: int) -> None:
        original(self, step)
        seen["n"] += 1
        if seen["n"] == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(_RunCallback, "on_checkpoint", dies_at_the_tenth_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(request(scenario_file, killed))
    manifest = json.loads((killed / MANIFEST).read_text())
    assert manifest["complete"] is False and 0 < manifest["steps_done"] < TABULAR_STEPS
    with pytest.raises(AgentLoadError, match="--resume"):
        load_agent(killed, TaskAllocationEnv(str(scenario_file)))
    monkeypatch.setattr(_RunCallback, "on_checkpoint", original)

    train(request(scenario_file, killed, resume=True))
    assert curve(killed) == curve(straight)
    with np.load(killed / "agent.npz") as a, np.load(straight / "agent.npz") as b:
        assert set(a.files) == set(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_refuses_another_agent_or_seed(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(request(scenario_file, out))
    with pytest.raises(TrainingError, match="agent"):
        train(request(scenario_file, out, agent="sarsa", resume=True))
    with pytest.raises(TrainingError, match="seed"):
        train(request(scenario_file, out, seed=4, resume=True))


# --- loading -------------------------------------------------------------------------------------


@pytest.fixture
def trained(scenario_file: Path, tmp_path: Path) -> Path:
    out = tmp_path / "trained"
    train(request(scenario_file, out))
    return out


def test_a_loaded_agent_acts_like_the_trained_one(trained: Path, scenario_file: Path) -> None:
    env = TaskAllocationEnv(str(scenario_file))
    a, b = load_agent(trained, env), load_agent(trained, env)
    obs, info = env.reset(seed=0)
    for _ in range(30):
        action = a.act(obs, info["action_mask"])
        assert action == b.act(obs, info["action_mask"])
        assert info["action_mask"][action]
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break


def test_an_agent_is_refused_on_another_scenario(trained: Path) -> None:
    with pytest.raises(AgentLoadError, match=r"manifest\.json: feature_names: .*another scenario"):
        load_agent(trained, TaskAllocationEnv("quickstart", inference="memoized"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / MANIFEST).unlink(), "manifest.json: not found"),
        (lambda d: (d / MANIFEST).write_text("{not json"), "manifest.json: unreadable"),
        (
            lambda d: (d / MANIFEST).write_text(json.dumps({"format": "other"})),
            "manifest.json: format",
        ),
        (lambda d: (d / "agent.npz").write_bytes(b"garbage"), "agent.npz"),
    ],
    ids=["missing-manifest", "corrupt-manifest", "foreign-manifest", "corrupt-agent"],
)
def test_a_damaged_run_folder_is_one_clear_error(
    trained: Path, scenario_file: Path, damage, message: str, capsys
) -> None:
    damage(trained)
    with pytest.raises(AgentLoadError, match=message):
        load_agent(trained, TaskAllocationEnv(str(scenario_file)))
    code = main(["eval", str(trained), "--scenario", str(scenario_file), "--episodes", "1"])
    _, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert err.startswith("mtenv: error: ") and message.split(":")[0] in err
    assert len(err.strip().splitlines()) == 1


# --- the command line ----------------------------------------------------------------------------


def test_cli_train_eval_run_and_explain(
    scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-run"
    argv = ["train", "--scenario", str(scenario_file), "--agent", "sarsa"]
    argv += ["--steps", "500", "--seed", "1", "--out", str(out)]
    assert main(argv) == 0
    stdout, stderr = capsys.readouterr()
    assert "trained sarsa" in stdout and "train sarsa on tiny" in stderr  # the progress bar

    assert main([*argv]) == EXIT_BAD_INPUT  # the folder is taken
    assert "--resume" in capsys.readouterr().err

    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["episodes"] == 2 and "effective_accuracy" in evaluated["metrics"]

    run = ["run", "--scenario", str(scenario_file), "--policy", str(out), "--episodes", "2"]
    assert main([*run, "--seed", str(evaluated["seed"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == evaluated["metrics"]

    trace = tmp_path / "trace.csv"
    assert main(["explain", str(out), "--samples", "3", "--trace", str(trace)]) == 0
    text = capsys.readouterr().out
    assert "plan by difficulty" in text and "device by load" in text
    assert text.count("valid actions:") == 3 and "Q " in text
    with open(trace, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == BASE_SCENARIO["episode_tasks"]
    assert all(r["value"] != "" for r in rows)


def test_cli_train_rejects_bad_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["train", "--scenario", "quickstart", "--out", str(tmp_path / "x")]
    assert main([*base, "--hp", "gamma"]) == EXIT_BAD_INPUT
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "--resume"]) == EXIT_BAD_INPUT
    assert "manifest.json: not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main([*base, "--agent", "dqn"])


# --- the progress bar ----------------------------------------------------------------------------


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.text, self.tty = "", tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty


def test_progress_in_a_log_is_one_line_per_tenth() -> None:
    from mtenv.progress import ProgressBar

    stream = _Stream(tty=False)
    bar = ProgressBar(1000, "train", stream)
    for done in range(0, 1001, 7):
        bar.update(done, "return 1.0")
    bar.update(1000, "return 2.0")
    bar.close()
    lines = stream.text.splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ..., 100 %
    assert lines[-1].startswith("train [########################] 100% 1,000/1,000")
    assert "return 2.0" in lines[-1] and "\r" not in stream.text


def test_progress_on_a_terminal_redraws_one_line() -> None:
    from mtenv.progress import ProgressBar

    stream = _Stream(tty=True)
    bar = ProgressBar(10, "train", stream)
    bar.update(10, "done")
    bar.close()
    assert stream.text.startswith("\rtrain [") and stream.text.endswith("\n")
    assert stream.text.count("\n") == 1


def test_progress_says_what_a_stage_without_progress_is_doing() -> None:
    from mtenv.progress import ProgressBar

    log, terminal = _Stream(tty=False), _Stream(tty=True)
    for stream in (log, terminal):
        bar = ProgressBar(10, "train", stream)
        bar.update(0)
        bar.say("cloning: round 1/2")
        bar.update(10)
        bar.close()
    assert log.text.splitlines()[1] == "train · cloning: round 1/2"
    assert "\rtrain · cloning: round 1/2" in terminal.text
    assert terminal.text.rsplit("\r", 1)[1].startswith("train [####")  # the bar draws over it


def test_progress_eta_leaves_out_the_start_up(monkeypatch) -> None:
    from mtenv import progress

    clock = iter([0.0, 0.0, 60.0, 61.0])  # built, 0 done, start-up took a minute, 1 s per 10
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    stream = _Stream(tty=False)
    bar = progress.ProgressBar(100, "train", stream)
    bar.update(0)
    bar.update(10)  # the first progress: rates count from here
    bar.update(20)
    assert stream.text.splitlines()[-1].endswith("· 10/s · eta 8s")


def test_eval_puts_the_agent_beside_the_baselines_on_the_same_seeds(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(trained), "--episodes", "3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    from mtenv.agents.policies import BASELINES

    assert set(payload["baselines"]) == {*BASELINES, "oracle"}
    assert payload["baselines"]["oracle"]["upper_bound"] is True
    # The paired difference is the agent's return minus the baseline's on each seed.
    ours = payload["metrics"]["episode_return"]
    ll = payload["baselines"]["least-loaded"]
    assert ll["paired_difference"] == pytest.approx(ours - ll["episode_return"])
    run = ["run", "--policy", "least-loaded", "--episodes", "3", "--seed", str(payload["seed"])]
    assert main([*run, "--scenario", payload_scenario(trained), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["episode_return"] == pytest.approx(
        ll["episode_return"]
    )

    assert main(["eval", str(trained), "--episodes", "2"]) == 0
    table = capsys.readouterr().out.split("beside the baselines", 1)[1].splitlines()
    assert table[2].startswith("» this policy")
    assert table[3].startswith("oracle (upper bound)")
    assert sum("(best baseline)" in line for line in table) == 1
    assert any(line.startswith("least-loaded") for line in table)

    assert main(["eval", str(trained), "--episodes", "1", "--baselines", "none"]) == 0
    assert "beside the baselines" not in capsys.readouterr().out
    assert main(["eval", str(trained), "--baselines", "least-loded"]) == EXIT_BAD_INPUT
    assert "--baselines" in capsys.readouterr().err


def payload_scenario(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["scenario_arg"]
