"""Scenario files and traces from someone else: every bad input is refused with one clear line
per problem (file, field, expectation), in bounded time and memory, without echoing the contents
of files that are not scenarios or traces; ``scenarios validate`` accepts exactly what the env can
be built from."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtenv.core import limits
from mtenv.core.arrivals import DiurnalArrivals, OnOffArrivals
from mtenv.core.schema import Scenario, ScenarioError
from mtenv.core.traces import TraceError, load_counts_csv, load_timestamps_csv
from mtenv.io.scenario_files import load_scenario, parse_scenario, shipped_scenarios

SHIPPED = shipped_scenarios()
SECRET = "hunter2-SECRET-token"


def quickstart_raw() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED["quickstart"].read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def error_of(path: Path | str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


def trace_scenario(tmp_path: Path, trace: str, fmt: str = "timestamps") -> Path:
    arrivals = {"process": "trace", "path": trace, "format": fmt}
    return write_yaml(
        tmp_path / "traced.yaml", {"extends": "quickstart", "workload": {"arrivals": arrivals}}
    )


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    cap = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with 3 GiB of address space and a time limit."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )


def validate_cli(*files: Path | str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``mtenv scenarios validate FILE...`` in a subprocess (bounded time and memory)."""
    script = shutil.which("mtenv", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "mtenv.tools.cli"]
    return subprocess.run(
        [*argv, "scenarios", "validate", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )


# --- 1. trace files: size, line length and row count are bounded --------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_trace_of_dev_zero_is_refused_in_bounded_memory_and_time() -> None:
    code = (
        "from mtenv.core.traces import load_timestamps_csv, TraceError\n"
        "try:\n    load_timestamps_csv('/dev/zero')\n"
        "except TraceError as e:\n    print(e)\n"
    )
    done = run_python(code, timeout=30)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.startswith("/dev/zero: ") and done.stdout.count("\n") == 1


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_scenario_with_a_dev_zero_trace_is_refused(tmp_path: Path) -> None:
    message = error_of(trace_scenario(tmp_path, "/dev/zero"))
    assert message.count("\n") == 0 and "workload.arrivals.path" in message


def test_a_huge_trace_file_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:  # sparse: no disk used
        f.write(b"timestamp\n")
        f.truncate(limits.MAX_TRACE_BYTES + 1)
    for load in (load_timestamps_csv, load_counts_csv):
        with pytest.raises(TraceError, match="larger than") as info:
            load(path)
        assert info.value.line is None


@pytest.mark.parametrize("load", [load_timestamps_csv, load_counts_csv])
def test_an_overlong_trace_line_is_refused_without_echoing_it(tmp_path: Path, load: Any) -> None:
    path = tmp_path / "long.csv"
    path.write_text("timestamp,count\n" + SECRET * (limits.MAX_TRACE_LINE_BYTES // 10) + "\n")
    with pytest.raises(TraceError) as info:
        load(path)
    assert info.value.line == 2 and "longer than" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_trace_with_too_many_rows_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_TRACE_ROWS", 10)
    path = tmp_path / "many.csv"
    path.write_text("timestamp\n" + "".join(f"{i}\n" for i in range(20)))
    with pytest.raises(TraceError, match="more than 10 rows") as info:
        load_timestamps_csv(path)
    assert info.value.line == 12


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_trace_that_is_a_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(TraceError, match="regular file"):
        load_timestamps_csv(fifo)
    assert time.monotonic() - started < 5


# --- 2. YAML: alias bombs, nesting and size -------------------------------------------------------

ALIAS_BOMB = """\
a: &a ["linear", "linear", "linear", "linear", "linear", "linear", "linear", "linear", "linear"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    raw = quickstart_raw()
    raw["devices"][0]["resident"] = "BOMB"
    text = ALIAS_BOMB + yaml.safe_dump(raw, sort_keys=False).replace("BOMB", "*i")
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    message = error_of(path)
    assert time.monotonic() - started < 5
    assert "alias" in message and message.count("\n") == 0


def test_validate_refuses_an_alias_bomb_in_a_list_field_within_a_time_bound(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.yaml"
    raw = quickstart_raw()
    raw["devices"][0]["resident"] = "BOMB"
    path.write_text(
        ALIAS_BOMB + yaml.safe_dump(raw, sort_keys=False).replace("BOMB", "*i"), encoding="utf-8"
    )
    done = validate_cli(path, timeout=40)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    raw = quickstart_raw()
    text = yaml.safe_dump(raw, sort_keys=False)
    text = text.replace("resident:\n", "resident: &res\n", 1)
    path = tmp_path / "aliases.yaml"
    path.write_text(text, encoding="utf-8")
    assert isinstance(load_scenario(path), Scenario)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    message = error_of(path)
    assert "nest" in message and message.count("\n") == 0


def test_a_huge_scenario_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(b"name: x\n")
        f.truncate(limits.MAX_SCENARIO_BYTES + 1)
    message = error_of(path)
    assert "larger than" in message and message.count("\n") == 0


# --- 3. strict types and an upper bound on episode_tasks -----------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("episode_tasks",), 10**12, "<= 10000000"),
        (("episode_tasks",), True, "expected an integer"),
        (("episode_tasks",), 300.0, "expected an integer"),
        (("episode_tasks",), "300", "expected an integer"),
        (("devices", 0, "count"), True, "expected an integer"),
        (("workload", "arrivals", "rate"), True, "expected a number"),
        (("workload", "arrivals", "rate"), "1200", "expected a number"),
        (("reward", "reject"), False, "expected a number"),
        (("name",), 42, "expected a string"),
    ],
)
def test_types_are_strict_and_sizes_bounded(path: tuple, value: Any, expected: str) -> None:
    raw = quickstart_raw()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    message = str(caught.value)
    assert message.count("\n") == 0, message
    assert expected in message


# --- 4. arrival processes whose simulation would never end ----------------------------------------


def test_an_on_off_process_with_a_near_zero_rate_is_refused() -> None:
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = {
        "process": "on_off",
        "rate_on": 1e-12,
        "rate_off": 0,
        "mean_on_s": 1,
        "mean_off_s": 1,
    }
    with pytest.raises(ScenarioError, match=r"workload\.arrivals") as caught:
        parse_scenario(raw, label="q.yaml")
    assert str(caught.value).count("\n") == 0


def test_the_on_off_class_refuses_parameters_it_cannot_simulate_in_bounded_time() -> None:
    with pytest.raises(ValueError, match="per on/off cycle"):
        OnOffArrivals(1e-12, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="per on/off cycle"):
        OnOffArrivals(1000.0, 0.0, 1e-300, 1.0)


@pytest.mark.parametrize(
    "arrivals",
    [
        {"process": "poisson", "rate": 1e-300},
        {"process": "gamma", "rate": 10, "cv": 1e-200},
        {"process": "diurnal", "mean_rate": 1e-300, "amplitude": 1, "period_s": 60},
        {"process": "diurnal", "mean_rate": 100, "amplitude": 0.5, "period_s": 1e-308},
        {
            "process": "diurnal",
            "mean_rate": 100,
            "amplitude": 0.5,
            "period_s": 60,
            "phase": math.nan,
        },
        {"process": "spike", "base_rate": 1e300, "spike_rate": 1, "start_s": 1},
    ],
)
def test_rates_and_times_outside_their_bounds_are_refused(arrivals: dict[str, Any]) -> None:
    raw = quickstart_raw()
    raw["workload"]["arrivals"] = arrivals
    with pytest.raises(ScenarioError, match=r"workload\.arrivals"):
        parse_scenario(raw, label="q.yaml")


def test_diurnal_arrivals_end_instead_of_spinning_once_time_overflows() -> None:
    import numpy as np

    # A cycle far shorter than float64 can resolve at the times reached: the phase is lost.
    process = DiurnalArrivals(1.0, 1.0, 1e-300)
    process.reset(np.random.default_rng(0))
    started = time.monotonic()
    times = [process.next_arrival() for _ in range(5000)]
    assert time.monotonic() - started < 10
    assert times[-1] == math.inf and all(t > 0 for t in times)


# --- 5. nothing of a file that is not a scenario or a trace is echoed ----------------------------


def test_a_trace_that_is_a_password_file_is_not_echoed(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text(f"root:x:0:0:{SECRET}:/root:/bin/bash\nbin:x:1:1:{SECRET}:/bin:\n")
    for fmt in ("timestamps", "minute_counts"):
        message = error_of(trace_scenario(tmp_path, str(passwd), fmt))
        assert SECRET not in message and "root:x" not in message
        assert message.count("\n") == 0 and f"{passwd}:1: " in message


def test_extending_a_yaml_file_that_is_not_a_scenario_echoes_none_of_it(tmp_path: Path) -> None:
    other = write_yaml(
        tmp_path / "credentials.yaml",
        {"password": SECRET, "episode_tasks": SECRET, "nested": {"api_key": SECRET}},
    )
    child = write_yaml(tmp_path / "child.yaml", {"extends": str(other), "name": "c"})
    message = error_of(child)
    for word in (SECRET, "password", "api_key", "nested"):
        assert word not in message, message
    assert message.count("\n") == 0
    assert "credentials.yaml" in message and "not a valid scenario" in message


def test_a_yaml_syntax_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text(f"token: [{SECRET}\nmore: {{\n", encoding="utf-8")
    message = error_of(path)
    assert SECRET not in message and message.count("\n") == 0
    assert "line" in message


def test_bad_values_are_quoted_as_short_excerpts() -> None:
    raw = quickstart_raw()
    raw["episode_tasks"] = SECRET * 20
    raw["models"] = [SECRET * 20]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    for line in str(caught.value).splitlines():
        assert SECRET * 2 not in line, line
        assert len(line) < 400, line


@pytest.mark.parametrize("other_error", [False, True])
def test_an_unknown_zoo_name_is_quoted_as_a_short_excerpt(other_error: bool) -> None:
    raw = {**quickstart_raw(), "zoo": SECRET * 5000}
    if other_error:  # field errors send the names through the part-by-part check
        raw["episode_tasks"] = -1
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    assert "unknown zoo" in str(caught.value)
    for line in str(caught.value).splitlines():
        assert SECRET * 2 not in line, line
        assert len(line) < 400, line


# --- 6. duplicate keys ---------------------------------------------------------------------------


def test_a_duplicate_key_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    text = SHIPPED["quickstart"].read_text(encoding="utf-8") + "episode_tasks: 50\n"
    path = tmp_path / "dup.yaml"
    path.write_text(text, encoding="utf-8")
    line = len(text.splitlines())
    message = error_of(path)
    assert f"line {line}" in message and "'episode_tasks'" in message and "duplicate" in message


# --- 7. devices: unique names, residents that fit, something that serves every task type ---------


def test_duplicate_device_names_are_refused() -> None:
    raw = quickstart_raw()
    raw["devices"][0]["name"] = "gpu"
    raw["devices"][1]["name"] = "gpu"
    with pytest.raises(ScenarioError, match=r"devices\[1\]\.name: .*'gpu'"):
        parse_scenario(raw, label="q.yaml")


def test_a_count_expanded_name_colliding_with_another_is_refused() -> None:
    raw = quickstart_raw()
    raw["devices"][0].update(name="gpu", count=2)
    raw["devices"][1]["name"] = "gpu.1"
    with pytest.raises(ScenarioError, match=r"'gpu\.1'"):
        parse_scenario(raw, label="q.yaml")


def test_resident_models_that_do_not_fit_are_refused_naming_device_model_and_bytes() -> None:
    raw = quickstart_raw()
    raw["devices"][0]["memory_gb"] = 0.001
    raw["devices"][0]["resident"] = ["cnn_wide"]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, label="q.yaml")
    message = str(caught.value)
    assert "devices[0].resident[0]" in message and "cnn_wide" in message
    assert "bytes" in message and message.count("\n") == 0


def test_a_scenario_where_no_model_fits_any_device_is_refused() -> None:
    raw = quickstart_raw()
    for dev in raw["devices"]:
        dev["memory_gb"] = 1e-6
        dev["resident"] = []
    with pytest.raises(ScenarioError, match="classify") as caught:
        parse_scenario(raw, label="q.yaml")
    assert "fits" in str(caught.value)


def test_too_many_devices_in_all_are_refused() -> None:
    raw = quickstart_raw()
    raw["devices"] = [{"kind": "t4", "count": 4096}] * 3
    with pytest.raises(ScenarioError, match="devices"):
        parse_scenario(raw, label="q.yaml")


# --- 8. validate accepts exactly what the env can be built from ----------------------------------


def test_validate_refuses_a_missing_trace(tmp_path: Path) -> None:
    message = error_of(trace_scenario(tmp_path, "nowhere.csv"))
    assert "workload.arrivals.path" in message and "nowhere.csv" in message


def test_validate_refuses_an_unknown_task_type() -> None:
    raw = quickstart_raw()
    raw["workload"]["task_types"]["segment"] = {"slo_ms": 20}
    with pytest.raises(ScenarioError, match=r"workload\.task_types.*'segment'"):
        parse_scenario(raw, label="q.yaml")


def test_validate_refuses_a_task_type_no_plan_serves() -> None:
    raw = quickstart_raw()
    raw["workload"]["task_types"]["localize"] = {"slo_ms": 20}
    with pytest.raises(ScenarioError, match="localize"):
        parse_scenario(raw, label="q.yaml")


def test_the_cli_says_what_is_wrong_in_one_line_per_file(tmp_path: Path) -> None:
    missing_trace = trace_scenario(tmp_path, "nowhere.csv")
    raw = quickstart_raw()
    raw["workload"]["task_types"]["segment"] = {"slo_ms": 20}
    unknown_type = write_yaml(tmp_path / "unknown_type.yaml", raw)
    done = validate_cli(missing_trace, unknown_type, SHIPPED["quickstart"])
    assert done.returncode == 2, done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(str(missing_trace)) and lines[1].startswith(str(unknown_type))
    assert done.stdout.strip() == f"ok {SHIPPED['quickstart']}"


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_scenario_builds_what_validate_checks(name: str) -> None:
    from mtenv.core.workload import make_arrivals

    scenario = load_scenario(name)
    base = Path(scenario.source).parent
    assert make_arrivals(scenario.workload.arrivals, base).mean_rate > 0


# --- 9. fuzzing: every field of a shipped scenario replaced with something hostile --------------

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 10**18, 2**64, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.sampled_from(["\u202e\u0000\n\r", "é" * 50, "💥" * 30, "a" * 5000, "", " "]),
    st.integers(min_value=1, max_value=60).map(lambda n: _nest(n)),
    st.lists(st.integers(), max_size=50),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=5),
)


def _nest(depth: int) -> Any:
    value: Any = 1
    for k in range(depth):
        value = [value] if k % 2 else {"k": value}
    return value


def _leaf_paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a value in ``node`` (containers included), the root excluded."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _leaf_paths(child, (*path, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _leaf_paths(child, (*path, i))
    return found


def _raw_of(name: str) -> dict[str, Any]:
    return yaml.safe_load(SHIPPED[name].read_text(encoding="utf-8"))


FUZZED = ["quickstart", "edge_burst", "collaboration", "cold_start"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(FUZZED))
    raw = _raw_of(name)
    path = draw(st.sampled_from(_leaf_paths(raw)))
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(HOSTILE)
    return name, raw


def _check_outcome(raw: dict[str, Any], label: str) -> None:
    started = time.monotonic()
    try:
        parse_scenario(raw, label=label, source=str(SHIPPED["quickstart"]))
    except ScenarioError as exc:
        lines = str(exc).splitlines()
        assert lines and len(lines) <= 12, lines
        for line in lines:
            assert line.startswith(f"{label}: "), line
            assert len(line) <= 600, line
    assert time.monotonic() - started < 5, "one case took too long"


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_fuzz_every_field_replaced_validates_or_fails_in_one_line_per_problem(
    case: tuple[str, dict[str, Any]],
) -> None:
    name, raw = case
    _check_outcome(raw, f"{name}.yaml")


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.sampled_from(FUZZED), HOSTILE)
def test_fuzz_whole_blocks_replaced(name: str, value: Any) -> None:
    raw = _raw_of(name)
    for key in list(raw):
        _check_outcome({**raw, key: value}, f"{name}.yaml")


CLI_CASES = [
    {"episode_tasks": math.nan},
    {"devices": [{"kind": "t4", "count": 10**30}]},
    {
        "workload": {
            "arrivals": {
                "process": "on_off",
                "rate_on": 0.001,
                "rate_off": 0,
                "mean_on_s": 1e-6,
                "mean_off_s": 1e9,
            }
        }
    },
    {"name": "é\u202e" * 100},
    {"summary": "fine"},
]


def test_fuzz_cases_through_the_cli_exit_0_or_2_with_one_line_per_file(tmp_path: Path) -> None:
    files = []
    for i, change in enumerate(CLI_CASES):
        raw = {**quickstart_raw(), **change}
        files.append(write_yaml(tmp_path / f"case{i}.yaml", raw))
    done = validate_cli(*files)
    assert done.returncode in (0, 2), done.stderr[-800:]
    assert "Traceback" not in done.stderr
    oks = done.stdout.splitlines()
    errors = done.stderr.splitlines()
    for file in files:
        said = [line for line in errors if line.startswith(f"{file}: ")]
        assert (f"ok {file}" in oks) != (len(said) == 1), (file, oks, errors)
    assert len(oks) + len(errors) == len(files), (oks, errors)
