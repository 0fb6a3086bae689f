"""Scenario loading and validation: shipped scenarios load by name from anywhere, and every bad
input gets one clear message naming the file, the field path, what was expected and what was
found, as a :class:`ScenarioError` and never as any other exception."""

from __future__ import annotations

import copy
import importlib.util
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtenv.agents.policies import BASELINES
from mtenv.core.schema import Scenario, ScenarioError
from mtenv.io.scenario_files import (
    load_scenario,
    parse_scenario,
    resolve_scenario_path,
    shipped_scenarios,
)
from mtenv.io.schema_reference import schema_reference
from mtenv.zoo import MODEL_NAMES

SHIPPED = shipped_scenarios()


def quickstart_raw() -> dict[str, Any]:
    """The shipped quickstart scenario as the plain mapping its YAML holds."""
    return yaml.safe_load(SHIPPED["quickstart"].read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    """The message of the ScenarioError that loading ``path`` raises."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


# --- shipped scenarios ---------------------------------------------------------------------


def test_quickstart_is_shipped() -> None:
    assert "quickstart" in SHIPPED
    assert SHIPPED["quickstart"].name == "quickstart.yaml"
    assert SHIPPED["quickstart"].is_file()


HEADROOM_LINE = re.compile(
    r"# Headroom \(benchmarks/headroom\.py, (?P<seeds>\d+) seeds × (?P<episodes>\d+) episodes\): "
    r"oracle (?P<oracle>-?[\d.]+) vs (?P<best>[\w-]+) (?P<best_mean>-?[\d.]+),\n"
    r"# \+(?P<headroom>[\d.]+) ± (?P<half_width>[\d.]+) \(95 % CI over seeds\), "
    r"(?P<pct>[\d.]+) % of the best baseline's return\."
)
"""The two header lines in which a shipped scenario states its headroom (oracle − best baseline),
as ``benchmarks/headroom.py`` prints it."""


def stated_headroom(name: str) -> dict[str, str]:
    found = HEADROOM_LINE.search(SHIPPED[name].read_text(encoding="utf-8"))
    assert found, f"{name}.yaml states no headroom in its header (benchmarks/headroom.py)"
    return found.groupdict()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_scenario_states_room_to_learn(name: str) -> None:
    """The scenario design asks for a headroom whose 95 % interval excludes 0 and which is at
    least 5 % of the best baseline's return."""
    stated = stated_headroom(name)
    headroom, best_mean = float(stated["headroom"]), float(stated["best_mean"])
    assert stated["best"] in BASELINES
    assert float(stated["half_width"]) < headroom
    assert float(stated["pct"]) >= 5.0
    assert float(stated["oracle"]) - best_mean == pytest.approx(headroom, abs=0.11)
    assert 100 * headroom / abs(best_mean) == pytest.approx(float(stated["pct"]), abs=0.06)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_stated_headroom_is_what_benchmarks_headroom_measures(name: str) -> None:
    """Each header's figures, measured again (every baseline and the oracle; large_cluster
    takes minutes). Memoized answers follow the CPU's kernels, so figures may move by a hair on
    another CPU."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "headroom.py"
    spec = importlib.util.spec_from_file_location("headroom_script", script)
    assert spec is not None and spec.loader is not None
    headroom_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headroom_script)
    stated = stated_headroom(name)
    seeds, episodes = int(stated["seeds"]), int(stated["episodes"])
    policies = [*BASELINES, headroom_script.ORACLE]
    returns = {p: headroom_script.per_seed_returns(name, p, seeds, episodes) for p in policies}
    measured = headroom_script.headroom(returns)
    assert measured["passes"]
    assert measured["best_baseline"] == stated["best"]
    assert measured["headroom"]["mean"] == pytest.approx(float(stated["headroom"]), abs=0.5)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_scenario_loads(name: str) -> None:
    scenario = load_scenario(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name, "a shipped scenario names itself"
    assert scenario.plan_list(), "a shipped scenario offers at least one plan"
    assert len(scenario.device_names()) == len(set(scenario.device_names()))
    # Loading by path gives the same scenario as loading by name.
    assert load_scenario(SHIPPED[name]) == scenario


def test_load_by_name_works_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("quickstart")
    assert scenario.name == "quickstart"
    assert Path(scenario.source).resolve() == SHIPPED["quickstart"].resolve()


@pytest.mark.parametrize("name", ["quickstart", "quickstart.yaml"])
def test_quickstart_resolves_by_name_and_file_name_next_to_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(SHIPPED["quickstart"].parent)
    assert resolve_scenario_path(name).resolve() == SHIPPED["quickstart"].resolve()


@pytest.mark.parametrize("shipped_as", ["edge_burst", "edge-burst"])
@pytest.mark.parametrize("asked", ["edge_burst", "edge-burst"])
def test_names_resolve_whether_written_with_hyphens_or_underscores(
    shipped_as: str, asked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shipped file may use either separator; users may type either one.
    fake = {"quickstart": SHIPPED["quickstart"], shipped_as: tmp_path / f"{shipped_as}.yaml"}
    monkeypatch.setattr("mtenv.io.scenario_files.shipped_scenarios", lambda: fake)
    monkeypatch.chdir(tmp_path)
    assert resolve_scenario_path(asked) == fake[shipped_as]


def test_unknown_scenario_name_suggests_close_names() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("quickstrat")
    message = str(caught.value)
    assert "quickstrat" in message
    assert "did you mean 'quickstart'" in message
    assert "\n" not in message


def test_missing_scenario_file_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in message
    assert "no such scenario file" in message


# --- one clear message per problem -----------------------------------------------------------


def test_negative_memory_names_file_field_expectation_and_value(tmp_path: Path) -> None:
    raw = quickstart_raw()
    raw["devices"][1]["memory_gb"] = -4
    message = error_of(write_yaml(tmp_path / "broken.yaml", raw))
    assert message.count("\n") == 0, message
    assert "broken.yaml" in message
    assert "devices[1].memory_gb" in message
    assert "expected a number > 0" in message
    assert "-4" in message


def test_each_problem_gets_its_own_line(tmp_path: Path) -> None:
    raw = quickstart_raw()
    raw["devices"][0]["max_batch"] = 0
    raw["reward"]["late_credit"] = 2
    lines = error_of(write_yaml(tmp_path / "two.yaml", raw)).splitlines()
    assert len(lines) == 2, lines
    assert all(line.startswith(f"{tmp_path / 'two.yaml'}: ") for line in lines)
    assert any("devices[0].max_batch: expected a number >= 1, got 0" in ln for ln in lines)
    assert any("reward.late_credit: expected a number <= 1, got 2" in ln for ln in lines)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda r: r.update(unknwon_field=3), "unknwon_field: unknown field", id="top-level"
        ),
        pytest.param(
            lambda r: r["devices"][2].update(colour="red"),
            "devices[2].colour: unknown field",
            id="nested",
        ),
        pytest.param(
            lambda r: r["workload"]["arrivals"].update(cv=2),
            "workload.arrivals.cv: unknown field",
            id="field-of-another-arrival-process",
        ),
    ],
)
def test_unknown_keys_are_errors(mutate, expected: str) -> None:
    raw = quickstart_raw()
    mutate(raw)
    with pytest.raises(ScenarioError, match=r"^q\.yaml: ") as caught:
        parse_scenario(raw, label="q.yaml")
    assert expected in str(caught.value)


def test_unknown_device_kind_suggests_the_closest() -> None:
    raw = quickstart_raw()
    raw["devices"][0]["kind"] = "t44"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    message = str(caught.value)
    assert "devices[0].kind" in message
    assert "'t44'" in message
    assert "did you mean 't4'" in message


def test_unknown_model_suggests_the_closest() -> None:
    raw = quickstart_raw()
    raw["models"][3] = "cnn_wdie"
    raw["devices"][2]["resident"] = []
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    assert str(caught.value).startswith(
        f"q.yaml: models[3]: unknown model 'cnn_wdie' (known: {', '.join(MODEL_NAMES)});"
        " did you mean 'cnn_wide'"
    )


def test_resident_model_must_be_one_of_the_scenarios_models() -> None:
    raw = quickstart_raw()
    raw["devices"][1]["resident"] = ["cnn_small", "cnn_wide", "linear", "mlp", "vit"]
    with pytest.raises(ScenarioError, match=r"devices\[1\]\.resident\[4\]: .*got 'vit'"):
        parse_scenario(raw, label="q.yaml")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("name",), "name"),
        (("episode_tasks",), "episode_tasks"),
        (("models",), "models"),
        (("devices",), "devices"),
        (("workload",), "workload"),
        (("workload", "arrivals", "rate"), "workload.arrivals.rate"),
        (("workload", "task_types", "classify", "slo_ms"), "workload.task_types.classify.slo_ms"),
        (("devices", 0, "kind"), "devices[0].kind"),
    ],
)
def test_missing_required_field_is_named(path: tuple, field: str) -> None:
    raw = quickstart_raw()
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    assert f"q.yaml: {field}: required field is missing" in str(caught.value).splitlines()


def test_bad_arrival_process_names_the_field_and_the_choices(tmp_path: Path) -> None:
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = {"process": "poison", "rate": 400}
    message = error_of(write_yaml(tmp_path / "arrivals.yaml", raw))
    assert "arrivals.yaml" in message
    assert "workload.arrivals.process" in message
    assert "'poison'" in message
    for process in ("poisson", "gamma", "on_off", "diurnal", "spike", "trace"):
        assert f"'{process}'" in message


def test_arrivals_without_a_process_say_so() -> None:
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = {"rate": 400}
    with pytest.raises(ScenarioError, match=r"workload\.arrivals: expected a 'process' field"):
        parse_scenario(raw, label="q.yaml")


def test_wrong_types_name_expectation_and_value() -> None:
    raw = quickstart_raw()
    raw["episode_tasks"] = "many"
    raw["devices"][0]["resident"] = "linear"
    raw["workload"]["arrivals"] = 5
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    lines = str(caught.value).splitlines()
    assert "q.yaml: episode_tasks: expected an integer, got 'many'" in lines
    assert "q.yaml: devices[0].resident: expected a list, got 'linear'" in lines
    assert "q.yaml: workload.arrivals: expected a mapping, got 5" in lines


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    raw = quickstart_raw()
    raw["reward"]["slo_miss"] = value
    with pytest.raises(ScenarioError, match=r"reward\.slo_miss: expected a finite number"):
        parse_scenario(raw, label="q.yaml")


def test_difficulty_needs_a_positive_probability() -> None:
    raw = quickstart_raw()
    raw["workload"]["difficulty"] = [0, 0, 0]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    assert str(caught.value) == (
        "q.yaml: workload.difficulty: expected at least one positive probability, "
        "got [0.0, 0.0, 0.0]"
    )


def test_difficulty_has_at_most_one_probability_per_level() -> None:
    # More entries than the zoo has difficulty levels used to validate and then be cut off,
    # leaving all-zero probabilities (NaN in the task generator) for this input.
    from mtenv.zoo import N_LEVELS

    raw = quickstart_raw()
    raw["workload"]["difficulty"] = [0.0] * N_LEVELS + [1.0]
    with pytest.raises(ScenarioError, match=rf"workload\.difficulty: expected at most {N_LEVELS}"):
        parse_scenario(raw, label="q.yaml")


def test_duplicate_plan_names_are_rejected() -> None:
    raw = quickstart_raw()
    raw["plans"] = [{"model": "linear", "name": "fast"}, {"model": "mlp", "name": "fast"}]
    with pytest.raises(ScenarioError, match=r"plans: expected unique plan names.*'fast'"):
        parse_scenario(raw, label="q.yaml")


def test_non_string_keys_are_named() -> None:
    raw = quickstart_raw()
    raw["workload"]["task_types"][3] = {"slo_ms": 10}
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    assert str(caught.value) == (
        "q.yaml: workload.task_types: expected field names to be strings, got 3"
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [("- a\n- b\n", "list"), ("just words\n", "str"), ("42\n", "int"), ("", "NoneType")],
)
def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str, found: str) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(text, encoding="utf-8")
    assert error_of(path) == f"{path}: expected a mapping of fields, got {found}"


def test_invalid_yaml_syntax_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\ndevices: [t4, {kind: l4\nmodels: [linear]\n", encoding="utf-8")
    message = error_of(path)
    assert message.startswith(f"{path}: not valid YAML")
    assert "line" in message


def test_undecodable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\x00bad\n")
    assert error_of(path).startswith(f"{path}: ")


def test_shipped_files_are_labelled_by_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Messages about a shipped scenario name its file, not an install path.
    raw = quickstart_raw()
    raw["episode_tasks"] = 0
    bad = write_yaml(tmp_path / "quickstart.yaml", raw)
    monkeypatch.setattr("mtenv.io.scenario_files._is_shipped", lambda path: True)
    assert error_of(bad) == "quickstart.yaml: episode_tasks: expected a number >= 1, got 0"


# --- fuzzing: any mutation validates or raises ScenarioError ----------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["poisson", "gamma", "t4", "a100", "linear", "cnn_wide", "single", "live", "cuda"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=8,
)


def _containers(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (path, dict or list) in ``node``, itself included."""
    found = []
    if isinstance(node, dict | list):
        found.append((path, node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found += _containers(child, (*path, key))
    return found


@st.composite
def mutated_quickstart(draw: st.DrawFn) -> dict[str, Any]:
    raw = quickstart_raw()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        containers = _containers(raw)
        _, node = draw(st.sampled_from(containers))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = draw(st.sampled_from(["drop", "replace", "add"] if keys else ["add"]))
        if action == "add":
            if isinstance(node, dict):
                node[draw(st.text(min_size=1, max_size=10))] = draw(values)
            else:
                node.append(draw(values))
        else:
            key = draw(st.sampled_from(keys))
            if action == "drop":
                del node[key]
            else:
                node[key] = draw(values)
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_quickstart())
def test_mutated_scenarios_validate_or_raise_scenario_error(raw: dict[str, Any]) -> None:
    snapshot = copy.deepcopy(raw)
    try:
        scenario = parse_scenario(raw, label="fuzz.yaml")
    except ScenarioError as exc:
        lines = str(exc).splitlines()
        assert lines, "an error says what is wrong"
        assert all(line.startswith("fuzz.yaml: ") for line in lines), lines
    else:
        # What validates is usable: plans, devices and names can be listed.
        assert scenario.plan_list()
        assert scenario.device_names()
    assert raw == snapshot or _has_nan(raw), "validation does not modify its input"


@settings(max_examples=100, deadline=None)
@given(values)
def test_any_yaml_document_loads_or_raises_scenario_error(tmp_path_factory, document) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "doc.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ScenarioError):
        load_scenario(path)


def _has_nan(node: Any) -> bool:
    """NaN != NaN, so a snapshot holding one never compares equal to itself."""
    if isinstance(node, float):
        return math.isnan(node)
    if isinstance(node, dict):
        return any(_has_nan(k) or _has_nan(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_nan(v) for v in node)
    return False


# --- extends: a scenario built on another --------------------------------------------------


def test_extends_merges_mappings_and_replaces_lists_and_scalars(tmp_path: Path) -> None:
    child = write_yaml(
        tmp_path / "child.yaml",
        {
            "extends": "quickstart",
            "name": "child",
            "episode_tasks": 40,
            "models": ["linear", "mlp"],
            "devices": [{"kind": "t4", "resident": ["linear"]}],
            "reward": {"slo_miss": 2.0},
            "workload": {"task_types": {"classify": {"slo_ms": 40}}},
        },
    )
    scenario = load_scenario(child)
    base = load_scenario("quickstart")
    assert scenario.name == "child"
    assert scenario.episode_tasks == 40
    assert scenario.models == ["linear", "mlp"]  # a list replaces the base's whole
    assert [d.kind for d in scenario.devices] == ["t4"]
    assert scenario.reward.slo_miss == 2.0  # a mapping merges: one field changes...
    assert scenario.reward.reject == base.reward.reject  # ...the others are the base's
    assert scenario.workload.task_types["classify"].slo_ms == 40
    assert scenario.workload.priorities == base.workload.priorities
    assert scenario.workload.arrivals == base.workload.arrivals


def test_extends_replaces_an_arrivals_block_whole(tmp_path: Path) -> None:
    # A merge would keep the base's Poisson fields beside Gamma's and fail as a bad mix.
    arrivals = {"process": "gamma", "rate": 500, "cv": 3}
    child = write_yaml(
        tmp_path / "bursty.yaml", {"extends": "quickstart", "workload": {"arrivals": arrivals}}
    )
    scenario = load_scenario(child)
    assert scenario.workload.arrivals.model_dump() == arrivals
    assert scenario.name == "bursty", "without its own name a child is named after its file"


def test_extends_chains_through_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    write_yaml(tmp_path / "bases" / "base.yaml", {"extends": "quickstart", "episode_tasks": 11})
    write_yaml(
        tmp_path / "bases" / "middle.yaml", {"extends": "./base.yaml", "reward": {"reject": 0.9}}
    )
    leaf = write_yaml(tmp_path / "leaf.yaml", {"extends": "bases/middle.yaml", "name": "leaf"})
    scenario = load_scenario(leaf)
    assert (scenario.name, scenario.episode_tasks, scenario.reward.reject) == ("leaf", 11, 0.9)
    assert scenario.devices == load_scenario("quickstart").devices


def test_extends_cycle_is_an_error_naming_the_files(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", {"extends": "./b.yaml", "name": "a"})
    write_yaml(tmp_path / "b.yaml", {"extends": "./a.yaml", "name": "b"})
    message = error_of(tmp_path / "a.yaml")
    assert "\n" not in message
    assert "extends: cycle" in message
    assert "a.yaml" in message and "b.yaml" in message


def test_extends_errors_name_the_child_file_and_field(tmp_path: Path) -> None:
    child = write_yaml(
        tmp_path / "child.yaml", {"extends": "quickstart", "devices": [{"kind": "t4", "count": 0}]}
    )
    assert error_of(child) == (f"{child}: devices[0].count: expected a number >= 1, got 0")


def test_extends_an_unknown_name_suggests_close_names(tmp_path: Path) -> None:
    child = write_yaml(tmp_path / "child.yaml", {"extends": "quickstrat", "name": "c"})
    message = error_of(child)
    assert message.startswith(f"{child}: extends: unknown scenario 'quickstrat'")
    assert "did you mean 'quickstart'" in message


@pytest.mark.parametrize("ref", ["./missing.yaml", 3, ""])
def test_extends_a_missing_file_or_non_name_is_an_error(tmp_path: Path, ref: Any) -> None:
    child = write_yaml(tmp_path / "child.yaml", {"extends": ref, "name": "c"})
    assert error_of(child).startswith(f"{child}: extends: ")


def test_extends_an_inherited_trace_still_finds_its_file(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = {"process": "trace", "path": "trace.csv"}
    write_yaml(tmp_path / "base" / "base.yaml", raw)
    (tmp_path / "base" / "trace.csv").write_text("timestamp\n0\n1\n", encoding="utf-8")
    child = write_yaml(tmp_path / "child.yaml", {"extends": "base/base.yaml"})
    path = load_scenario(child).workload.arrivals.path
    assert (tmp_path / path).resolve() == (tmp_path / "base" / "trace.csv").resolve()


# --- the schema reference ------------------------------------------------------------------


def _models_of_the_schema() -> list[type]:
    from mtenv.io.schema_reference import _schema_blocks

    return [model for _, model, _ in _schema_blocks(Scenario, "")]


def test_committed_schema_reference_is_in_sync() -> None:
    from mtenv.io.schema_reference import schema_reference

    committed = Path(__file__).parents[1] / "docs" / "scenario-schema.md"
    assert committed.read_text(encoding="utf-8") == schema_reference(), (
        "regenerate with: mtenv scenarios schema --out docs/scenario-schema.md"
    )


def test_schema_reference_documents_every_field_of_every_block() -> None:
    from mtenv.io.schema_reference import schema_reference

    text = schema_reference()
    models = _models_of_the_schema()
    assert {m.__name__ for m in models} >= {
        "Scenario", "WorkloadConfig", "DeviceConfig", "PoissonConfig", "TraceConfig",
        "CascadePlanConfig", "ProfileOverride", "RewardConfig", "ObservationConfig",
    }  # fmt: skip
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for model in models:
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            assert field.description, f"{model.__name__}.{name} has no description"
            assert any(f".{name}` |" in row or row.startswith(f"| `{name}` |") for row in rows), (
                f"{model.__name__}.{name} missing from the reference"
            )
            assert field.description in text


def test_minute_counts_traces_replay_and_bad_rows_name_the_line(tmp_path) -> None:
    """The Azure-2019-shaped per-minute counts trace drives arrivals; a bad row is one error
    naming the trace file and its line."""
    from mtenv.envs.task_allocation import TaskAllocationEnv

    shipped = resources.files("mtenv.scenarios") / "traces" / "azure2019_minute_counts.csv"
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = {
        "process": "trace", "path": str(shipped), "format": "minute_counts", "rate_scale": 50.0,
    }  # fmt: skip
    env = TaskAllocationEnv(parse_scenario(raw, label="q.yaml"), inference="memoized")
    env.reset(seed=0)
    times = [env.sim.now]
    for _ in range(20):
        env.step(env.reject_action)
        times.append(env.sim.now)
    assert times == sorted(times) and times[-1] > times[0]

    bad = tmp_path / "counts.csv"
    bad.write_text("count\n3\nlots\n")
    raw["workload"]["arrivals"]["path"] = str(bad)
    with pytest.raises(ScenarioError, match=r"counts\.csv:3:"):
        TaskAllocationEnv(parse_scenario(raw, label="q.yaml"), inference="memoized")


def test_one_run_reports_schema_errors_and_unresolved_names_together(tmp_path: Path) -> None:
    """A file with both kinds of problem lists all of them at once, one line each."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        "episode_tasks: -5\n"
        "models: [linear, cnn_wdie]\n"
        "devices:\n"
        "  - {kind: t5, resident: [mlp]}\n"
        "  - {kind: a100, max_batch: 0}\n"
        "plans: [{model: linear}, {model: mlp}]\n"
        "workload: {arrivals: {process: poisson, rate: 10}, task_types: {classify: {slo_ms: 9}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    lines = str(error.value).splitlines()
    wanted = [
        "episode_tasks: expected a number >= 1, got -5",
        "devices[1].max_batch: expected a number >= 1, got 0",
        "models[1]: unknown model 'cnn_wdie'",
        "plans[1]: expected models among the scenario's (linear, cnn_wdie), got 'mlp'",
        "devices[0].kind: unknown device kind 't5'",
        "devices[0].resident[0]: expected one of the scenario's models",
    ]
    assert len(lines) == len(wanted)
    for want in wanted:
        assert sum(line.startswith(f"{path}: {want}") for line in lines) == 1, want


def test_schema_reference_lists_every_device_kind() -> None:
    from mtenv.core.devices import DEVICE_KINDS

    row = next(line for line in schema_reference().splitlines() if "`devices[].kind`" in line)
    assert all(kind in row for kind in DEVICE_KINDS)
    assert {"jetson", "cpu"} <= set(DEVICE_KINDS)
