"""The ``mtenv`` command line: ``run`` prints a metrics table or one JSON object, bad input is
one ``mtenv: error:`` message with exit status 2, and ``zoo card`` regenerates the shipped card.

Commands run in-process through :func:`mtenv.tools.cli.main` (fast); one smoke test runs the
installed console script in a real subprocess to prove the entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from mtenv.io.scenario_files import shipped_scenarios
from mtenv.tools.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main

HEADLINE = ("effective_accuracy", "slo_attainment", "latency_p99_ms")
RUN = ["run", "--scenario", "quickstart", "--episodes", "2", "--seed", "0"]
RUN += ["--inference", "memoized"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``: its exit status, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# --- run -------------------------------------------------------------------------------------


def test_run_prints_a_metrics_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, *RUN, "--policy", "random")
    assert code == 0, err
    lines = out.splitlines()
    assert "quickstart" in lines[0]
    assert "random" in lines[0]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    for key in HEADLINE:
        assert key in rows, key
        float(rows[key][0])  # the mean is a number
    assert 0.0 <= float(rows["slo_attainment"][0]) <= 1.0
    # Progress goes to stderr, one line per episode; stdout holds only the table.
    progress = err.splitlines()
    assert len(progress) == 2
    assert progress[0].startswith("episode 1/2: ")
    assert progress[1].startswith("episode 2/2: ")


def test_run_json_is_one_object_with_the_headline_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = run_json(capsys, *RUN, "--policy", "random")
    assert payload["scenario"] == "quickstart"
    assert payload["policy"] == "random"
    assert payload["episodes"] == 2
    assert payload["seed"] == 0
    assert payload["inference"] == "memoized"
    for key in HEADLINE:
        assert isinstance(payload["metrics"][key], float), key
        assert key in payload["ci95"], key
    assert 0.0 <= payload["metrics"]["effective_accuracy"] <= 1.0
    assert payload["metrics"]["latency_p99_ms"] > 0.0


def test_run_json_is_deterministic_for_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, *RUN, "--policy", "random")
    second = run_json(capsys, *RUN, "--policy", "random")
    assert first == second
    other_seed = [a if a != "0" else "1" for a in RUN]
    assert run_json(capsys, *other_seed, "--policy", "random")["metrics"] != first["metrics"]


def test_round_robin_policy_runs_and_differs_from_random(
    capsys: pytest.CaptureFixture[str],
) -> None:
    round_robin = run_json(capsys, *RUN, "--policy", "round-robin")
    assert round_robin["policy"] == "round-robin"
    assert set(HEADLINE) <= set(round_robin["metrics"])
    random = run_json(capsys, *RUN, "--policy", "random")
    assert round_robin["metrics"] != random["metrics"]


def test_run_accepts_a_scenario_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = yaml.safe_load(shipped_scenarios()["quickstart"].read_text(encoding="utf-8"))
    raw.update(name="from-file", episode_tasks=20)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    payload = run_json(capsys, "run", "--scenario", str(path), "--episodes", "1")
    assert payload["scenario"] == "from-file"
    assert payload["metrics"]["tasks"] == 20


# --- bad input -------------------------------------------------------------------------------


def test_unknown_scenario_name_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "--scenario", "quikstart", "--episodes", "1")
    assert code == EXIT_BAD_INPUT == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mtenv: error: ")
    assert "'quikstart'" in err
    assert "did you mean 'quickstart'" in err


def test_bad_scenario_file_names_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = yaml.safe_load(shipped_scenarios()["quickstart"].read_text(encoding="utf-8"))
    raw["devices"][1]["memory_gb"] = -4
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, out, err = run_cli(capsys, "run", "--scenario", str(path), "--episodes", "1")
    assert code == 2
    assert out == ""
    assert err.startswith("mtenv: error: ")
    assert "bad.yaml" in err
    assert "devices[1].memory_gb: expected a number > 0, got -4" in err
    assert "Traceback" not in err


def test_missing_scenario_file_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "run", "--scenario", str(tmp_path / "gone.yaml"))
    assert code == 2
    assert err.startswith("mtenv: error: ")
    assert "gone.yaml" in err


def test_unknown_policy_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "--policy", "round_robin", "--episodes", "1")
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mtenv: error: --policy: ")
    assert "'round_robin'" in err
    assert "did you mean round-robin" in err


@pytest.mark.parametrize("episodes", ["0", "-3", "two"])
def test_episodes_must_be_a_positive_integer(
    capsys: pytest.CaptureFixture[str], episodes: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--episodes", episodes])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--episodes" in err
    assert "expected a positive integer" in err


def test_unknown_inference_mode_is_rejected_by_argparse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--inference", "cached"])
    assert caught.value.code == 2
    assert "--inference" in capsys.readouterr().err


def test_cuda_without_cuda_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, out, err = run_cli(capsys, "run", "--device", "cuda", "--episodes", "1")
    assert code == 2
    assert out == ""
    assert err.startswith("mtenv: error: ")
    assert "CUDA is not available" in err


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys)
    assert code == 2
    assert "run" in out
    assert "zoo" in out


def test_every_example_in_the_help_is_a_valid_command_line() -> None:
    from mtenv.tools.cli import _EXAMPLES, _parser

    examples = [line.strip().split("  ")[0].split() for line in _EXAMPLES.splitlines()[1:] if line]
    examples = [words[1:] for words in examples if words[0] == "mtenv"]
    assert len(examples) == 6
    parser = _parser()
    for words in examples:
        assert callable(parser.parse_args(words).handler), words


# --- zoo card --------------------------------------------------------------------------------


def test_zoo_card_regenerates_the_shipped_card(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(capsys, "zoo", "card", "--out", str(tmp_path))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CARD.md", "card.json"]
    assert {Path(line).name for line in out.splitlines()} == {"CARD.md", "card.json"}
    shipped = resources.files("mtenv.zoo")
    written = json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))
    assert written == json.loads(shipped.joinpath("card.json").read_text(encoding="utf-8"))
    assert (tmp_path / "CARD.md").read_text(encoding="utf-8") == shipped.joinpath(
        "CARD.md"
    ).read_text(encoding="utf-8")


def test_zoo_card_out_must_be_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_a_folder = tmp_path / "card.json"
    not_a_folder.write_text("keep me", encoding="utf-8")
    code, out, err = run_cli(capsys, "zoo", "card", "--out", str(not_a_folder))
    assert code == 2
    assert err.startswith("mtenv: error: --out: ")
    assert "card.json" in err
    assert not_a_folder.read_text(encoding="utf-8") == "keep me"


# --- the real entry point ----------------------------------------------------------------------


def test_console_script_runs_in_a_subprocess(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The installed ``mtenv`` script runs from another directory and prints the same JSON as
    the in-process call."""
    script = shutil.which("mtenv", path=str(Path(sys.executable).parent))
    assert script is not None, "the mtenv console script is installed next to the interpreter"
    argv = ["run", "--episodes", "1", "--seed", "3", "--inference", "memoized", "--json"]
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    done = subprocess.run(
        [script, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert set(HEADLINE) <= set(payload["metrics"])
    assert payload == run_json(capsys, *argv[:-1])


# --- scenarios ---------------------------------------------------------------------------------


def test_scenarios_list_has_one_row_per_shipped_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "scenarios", "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["name", "devices", "tasks", "task"]
    assert [row.split()[0] for row in rows] == list(shipped_scenarios())
    quick = next(row for row in rows if row.startswith("quickstart "))
    assert quick.split()[1:4] == ["3", "300", "classify"]
    assert "Three GPUs" in quick


def test_scenarios_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "scenarios", "list", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == set(shipped_scenarios())
    assert rows["quickstart"]["devices"] == 3
    assert rows["quickstart"]["episode_tasks"] == 300
    assert rows["quickstart"]["task_types"] == ["classify"]
    assert rows["quickstart"]["summary"].startswith("Three GPUs")


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_scenarios_show_loads_back_to_an_equal_scenario(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    from mtenv.io.scenario_files import load_scenario

    code, out, err = run_cli(capsys, "scenarios", "show", name)
    assert code == 0, err
    printed = tmp_path / f"{name}.yaml"
    printed.write_text(out, encoding="utf-8")
    original = load_scenario(name)
    if original.workload.arrivals.process == "trace":  # loading reads the trace: copy it along
        shutil.copytree(Path(original.source).parent / "traces", tmp_path / "traces")
    reloaded = load_scenario(printed)
    assert reloaded.model_copy(update={"source": None}) == original.model_copy(
        update={"source": None}
    )
    assert "reward" in yaml.safe_load(out), "defaults are written out"


def test_scenarios_show_resolves_extends(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: quickstart\nname: child\nepisode_tasks: 7\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "scenarios", "show", str(child))
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert "extends" not in shown
    assert (shown["name"], shown["episode_tasks"], len(shown["devices"])) == ("child", 7, 3)


def test_scenarios_show_unknown_name_is_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "scenarios", "show", "quickstrat")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert "did you mean 'quickstart'" in err


def test_scenarios_validate_reports_every_file_and_fails_on_a_bad_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = yaml.safe_load(shipped_scenarios()["quickstart"].read_text(encoding="utf-8"))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw), encoding="utf-8")
    raw["devices"][0]["max_batch"] = 0
    raw["reward"]["late_credit"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, out, err = run_cli(capsys, "scenarios", "validate", str(bad), str(good))
    assert code == 2
    assert out.splitlines() == [f"ok {good}"]
    assert sorted(err.splitlines()) == [
        f"{bad}: devices[0].max_batch: expected a number >= 1, got 0",
        f"{bad}: reward.late_credit: expected a number <= 1, got 2",
    ]


def test_scenarios_validate_all_good_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(path) for path in shipped_scenarios().values()]
    code, out, err = run_cli(capsys, "scenarios", "validate", *files)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"ok {file}" for file in files]


def test_scenarios_schema_prints_and_writes_the_reference(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mtenv.io.schema_reference import schema_reference

    code, out, _ = run_cli(capsys, "scenarios", "schema")
    assert (code, out) == (0, schema_reference())
    target = tmp_path / "schema.md"
    code, out, _ = run_cli(capsys, "scenarios", "schema", "--out", str(target))
    assert code == 0
    assert out.strip() == str(target)
    assert target.read_text(encoding="utf-8") == schema_reference()


@pytest.mark.parametrize("where", ["folder", "no-parent"])
def test_scenarios_schema_out_must_be_a_writable_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    out_path = tmp_path if where == "folder" else tmp_path / "nowhere" / "schema.md"
    code, out, err = run_cli(capsys, "scenarios", "schema", "--out", str(out_path))
    assert (code, out) == (2, "")
    assert err.startswith("mtenv: error: --out: ")


# --- optional extras -------------------------------------------------------------------------


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` unimportable, as if their extra were not installed."""
    import mtenv.agents.ppo

    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    for submodule in ("learner", "rollouts", "settings", "storage"):
        monkeypatch.delitem(sys.modules, f"mtenv.agents.ppo.{submodule}", raising=False)
        monkeypatch.delattr(mtenv.agents.ppo, submodule, raising=False)


@pytest.mark.parametrize(
    ("missing", "extra", "argv"),
    [
        (("pygame",), "render", ["render", "--steps", "2", "--out", "{tmp}/run.gif"]),
        (("matplotlib",), "render", ["plot", "{run}", "--out", "{tmp}/plots"]),
        (
            ("sb3_contrib", "stable_baselines3"),
            "train",
            ["train", "--scenario", "quickstart", "--agent", "maskable-ppo", "--out", "{tmp}/ppo"],
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_the_install_command(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    missing: tuple[str, ...],
    extra: str,
    argv: list[str],
) -> None:
    run = tmp_path / "recorded"
    if "plot" in argv:
        assert run_cli(capsys, *RUN, "--episodes", "1", "--out", str(run))[0] == 0
    _without(monkeypatch, *missing)
    argv = [a.format(tmp=tmp_path, run=run) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == EXIT_BAD_INPUT
    assert len(err.splitlines()) == 1, err
    assert f'pip install "mtenv-alloc[{extra}]"' in err
    assert f'in a source checkout: pip install ".[{extra}]"' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["recorded"] if run.exists() else [])


def test_explain_speaks_in_levels_and_priority_weights(capsys: pytest.CaptureFixture[str]) -> None:
    """Difficulty as the card's levels (L0 … L4) and priority as the scenario's weights, the
    scales of explain's own tables and of the viewer, never the observation's fractions."""
    argv = ["explain", "least-loaded", "--scenario", "high_stakes_triage", "--samples", "8"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    heads = [line for line in out.splitlines() if line.startswith("episode ")]
    assert len(heads) == 8
    weights = {f"{p['weight']:g}" for p in _priorities("high_stakes_triage")}
    for head in heads:
        level = head.split("difficulty ", 1)[1].split(",")[0]
        priority = head.split("priority ", 1)[1].split(";")[0]
        assert level in {f"L{i}" for i in range(5)}, head
        assert priority in weights, head


def _priorities(name: str) -> list[dict]:
    return yaml.safe_load(shipped_scenarios()[name].read_text())["workload"]["priorities"]


UNWRITABLE = Path("/proc/mtenv-cannot-write-here")  # no user, root included, creates files in /proc


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "argv",
    [
        [*RUN, "--out", str(UNWRITABLE / "run")],
        [*RUN, "--trace", "/proc/mtenv-trace.csv"],
        ["train", "--scenario", "quickstart", "--agent", "q-learning", "--out", str(UNWRITABLE)],
        ["scenarios", "schema", "--out", "/proc/mtenv-schema.md"],
        ["render", "--scenario", "quickstart", "--policy", "random", "--out", "/proc/x.gif"],
        ["plot", "runs", "--out", str(UNWRITABLE / "plots")],
        ["bench", "--scenarios", "quickstart", "--policies", "random", "--out", str(UNWRITABLE)],
    ],
    ids=["run-out", "run-trace", "train-out", "schema-out", "render-out", "plot-out", "bench-out"],
)
def test_an_unwritable_output_is_refused_before_any_work(capsys, monkeypatch, argv):
    import mtenv.agents.training as training
    import mtenv.tools.evaluation as evaluation

    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(evaluation, "evaluate_policy", must_not_run)
    monkeypatch.setattr(training, "train", must_not_run)
    code, out, err = run_cli(capsys, *argv)
    assert code == EXIT_BAD_INPUT
    assert "cannot write in '/proc'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_output_under_a_file_is_refused(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, *RUN, "--out", str(blocker / "run"))
    assert code == EXIT_BAD_INPUT and "is not a folder" in err
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("command", ["run", "eval", "explain", "render", "train"])
def test_a_negative_seed_is_reported_as_the_seed(capsys, command):
    argv = {
        "run": [*RUN[:-4], "--seed", "-3"],
        "eval": ["eval", "some-run", "--seed", "-3"],
        "explain": ["explain", "--policy", "random", "--seed", "-3"],
        "render": ["render", "--scenario", "quickstart", "--show", "--seed", "-3"],
        "train": ["train", "--scenario", "quickstart", "--agent", "q-learning", "--out", "x"],
    }[command]
    if command == "train":
        argv += ["--seed", "-3"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "argument --seed: expected an integer >= 0, got '-3'" in err
    assert "--policy" not in err.splitlines()[-1]


def test_sigterm_stops_a_command_as_ctrl_c_does(capsys, monkeypatch):
    """`kill` ends any command with the interrupted status and one line, not a traceback."""
    import signal

    def terminated(args):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr("mtenv.tools.cli.cmd_run", terminated)
    assert main(["run", "--scenario", "quickstart"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's alone
