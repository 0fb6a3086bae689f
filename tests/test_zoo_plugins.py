"""Zoos as plug-ins (``mtenv.zoo.registry``): a tiny zoo defined here runs end to end, broken
zoos are refused with what is wrong, entry points load lazily, the worked-example ``triage``
package works installed, and every code block of ``docs/zoo-plugins.md`` runs."""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import shlex
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from conftest import first_valid, play
from gymnasium.utils.env_checker import check_env, data_equivalence
from torch import nn

import mtenv.zoo.registry as registry
from mtenv.agents import POLICIES, make_policy
from mtenv.core.reward import TaskReward
from mtenv.core.schema import RewardConfig, ScenarioError
from mtenv.core.tasks import Task, TaskStatus
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.io.scenario_files import parse_scenario
from mtenv.tools.cli import main
from mtenv.tools.evaluation import evaluate_policy
from mtenv.tools.plan_card import evaluate_plans
from mtenv.zoo import (
    MultiTaskNet,
    Pool,
    TaskType,
    Zoo,
    ZooError,
    ZooModel,
    get_zoo,
    register_zoo,
    save_weights,
    unregister_zoo,
    zoo_names,
    zoo_source,
)
from mtenv.zoo.card import any_zoo_card, render_any_zoo_card

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = ROOT / "examples" / "triage"
TUTORIAL = ROOT / "docs" / "zoo-plugins.md"

# --- a tiny zoo: two nn.Linear models and a shared-trunk model on random data ------------------

N_PER_LEVEL = 60
N_LEVELS = 2


def _tiny_pool(task_type: str, split: str) -> Pool:
    """Random inputs; the label of ``sign`` is whether the first feature is positive, of
    ``bucket`` which third of [-1.5, 1.5] the second falls in. Level 1 adds noise."""
    rng = np.random.default_rng(
        (("sign", "bucket").index(task_type), ("serving", "validation").index(split))
    )
    base = rng.normal(size=(N_PER_LEVEL, 4)).astype(np.float32)
    if task_type == "sign":
        labels = (base[:, 0] > 0).astype(np.int64)
    else:
        labels = np.digitize(base[:, 1], [-0.5, 0.5]).astype(np.int64)
    noisy = base + rng.normal(scale=1.0, size=base.shape).astype(np.float32)
    inputs = torch.from_numpy(np.concatenate([base, noisy]))
    levels = np.repeat(np.arange(N_LEVELS), N_PER_LEVEL)
    return Pool(inputs, np.tile(labels, N_LEVELS), levels, N_PER_LEVEL, task_type)


def _exact() -> nn.Module:
    return nn.Linear(4, 2)


def _shared() -> nn.Module:
    return MultiTaskNet(
        nn.Sequential(nn.Linear(4, 8), nn.ReLU()),
        {"sign": nn.Linear(8, 2), "bucket": nn.Linear(8, 3)},
    )


def _tiny_weights(folder: Path) -> dict[str, Path]:
    """``guess``: random weights; ``exact``: reads the sign of the first feature; ``shared``:
    random. Written once per test session."""
    paths = {}
    torch.manual_seed(0)
    modules = {"guess": nn.Linear(4, 2), "exact": _exact(), "shared": _shared()}
    with torch.no_grad():
        modules["exact"].weight.zero_()
        modules["exact"].bias.zero_()
        modules["exact"].weight[1, 0] = 8.0
        modules["exact"].weight[0, 0] = -8.0
    for name, module in modules.items():
        paths[name] = save_weights(module, folder / f"{name}.safetensors", {"architecture": name})
    return paths


def tiny_zoo(folder: Path, name: str = "tiny", **changes) -> Zoo:
    weights = _tiny_weights(folder)
    zoo = Zoo(
        name=name,
        task_types=(TaskType("sign", 2, (4,), "is x0 positive"), TaskType("bucket", 3, (4,))),
        models=(
            ZooModel("guess", lambda: nn.Linear(4, 2), ("sign",), weights["guess"]),
            ZooModel("exact", _exact, ("sign",), weights["exact"]),
            ZooModel("shared", _shared, ("sign", "bucket"), weights["shared"]),
        ),
        pool=_tiny_pool,
        n_levels=N_LEVELS,
        description="two linear models and a shared trunk on random data",
    )
    return dataclasses.replace(zoo, **changes) if changes else zoo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    zoo = register_zoo(tiny_zoo(tmp_path_factory.mktemp("tiny-zoo")))
    yield zoo
    unregister_zoo(zoo.name)


TINY_SCENARIO = {
    "name": "tiny_plugin",
    "zoo": "tiny",
    "episode_tasks": 120,
    "models": ["guess", "exact", "shared"],
    "plans": [
        {"model": "guess"},
        {"model": "exact"},
        {"kind": "ensemble", "members": ["guess", "exact"], "weighting": "fitted"},
        {"kind": "ensemble", "members": ["guess", "exact"], "weighting": "online"},
        {"kind": "cascade", "first": "guess", "second": "exact", "threshold": 0.9},
        {"kind": "multitask", "model": "shared"},
    ],
    "devices": [
        {"kind": "t4", "resident": ["guess", "exact", "shared"]},
        {"kind": "a100", "resident": ["guess", "exact", "shared"]},
    ],
    "workload": {
        "arrivals": {"process": "poisson", "rate": 3000},
        "task_types": {"sign": {"slo_ms": 5, "share": 3}, "bucket": {"slo_ms": 5, "share": 1}},
    },
    "inference": {"mode": "memoized"},
}


def tiny_env(**kwargs) -> TaskAllocationEnv:
    return TaskAllocationEnv(parse_scenario(TINY_SCENARIO, label="tiny"), **kwargs)


def test_a_registered_zoo_is_listed_and_found(tiny: Zoo) -> None:
    assert "tiny" in zoo_names() and zoo_names()[0] == "digits"
    assert get_zoo("tiny") is tiny
    assert zoo_source("tiny") == registry.REGISTERED_AT_RUN_TIME
    assert zoo_source("digits") == "built in"


def test_profiles_come_from_the_modules(tiny: Zoo) -> None:
    # nn.Linear(4, 2): 8 multiply-adds, 16 FLOPs; 10 float32 parameters.
    stats = tiny.stats("exact")
    assert stats.flops_for("sign") == 16
    assert stats.weight_bytes == 40
    shared = tiny.stats("shared")
    assert shared.trunk_flops == 2 * 4 * 8
    assert shared.head_flops == {"sign": 2 * 8 * 2, "bucket": 2 * 8 * 3}


def test_the_tiny_zoo_env_passes_gymnasium_checks(tiny: Zoo) -> None:
    scenario = parse_scenario(TINY_SCENARIO, label="tiny")
    env = gym.make("mtenv/TaskAllocation-v0", scenario=scenario, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert [str(w.message) for w in caught if "infinity" not in str(w.message)] == []
    env.close()


@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_policy_plays_the_tiny_zoo(tiny: Zoo, policy: str) -> None:
    env = tiny_env()
    [metrics] = evaluate_policy(env, make_policy(policy, env, seed=0), episodes=1)
    assert metrics["tasks"] == TINY_SCENARIO["episode_tasks"]
    assert set(metrics["accuracy_by_type"]) == {"sign", "bucket"}
    env.close()


def test_the_catalog_and_the_oracle_see_which_model_is_right(tiny: Zoo) -> None:
    env = tiny_env()
    runs = {
        name: evaluate_policy(env, make_policy(name, env, seed=0), episodes=2)
        for name in ("random", "most-accurate", "oracle")
    }
    returns = {name: np.mean([m["episode_return"] for m in r]) for name, r in runs.items()}
    assert returns["oracle"] >= returns["most-accurate"] > returns["random"]
    # most-accurate sends every sign task to `exact`, right on every clean input.
    assert runs["most-accurate"][0]["accuracy_by_type"]["sign"] > 0.85
    env.close()


def test_live_and_memoized_trajectories_are_identical(tiny: Zoo) -> None:
    memoized = play(tiny_env(), first_valid, seed=3)
    live = play(tiny_env(inference="live"), first_valid, seed=3)
    assert live.rewards == memoized.rewards
    assert live.metrics == memoized.metrics


def test_an_env_on_a_plugin_zoo_pickles(tiny: Zoo) -> None:
    env = tiny_env()
    obs, info = env.reset(seed=5)
    for _ in range(10):
        obs, *_, info = env.step(first_valid(obs, info["action_mask"], env))
    clone = pickle.loads(pickle.dumps(env))
    assert clone.sim.zoo is tiny
    for _ in range(20):
        action = first_valid(obs, info["action_mask"], env)
        step = env.step(action)
        assert data_equivalence(step, clone.step(action))
        obs, info = step[0], step[4]


def test_plans_and_card_on_the_tiny_zoo(tiny: Zoo) -> None:
    rows = evaluate_plans(zoo=tiny, task_type="sign")["plans"]
    # Level 0 is noise-free: `exact` reads the sign exactly; level 1 adds noise.
    assert rows["exact"]["accuracy_by_level"][0] == 1.0
    assert rows["exact"]["accuracy_by_level"][1] < 1.0
    # A random `guess` is never 95 % sure, so that cascade always escalates; at 0.8 it stops
    # early on some inputs and costs less than running both models.
    assert rows["guess>exact@0.95"]["escalation_rate"] == 1.0
    cascade = rows["guess>exact@0.8"]
    assert 0 < cascade["escalation_rate"] < 1
    assert (
        rows["guess"]["flops_per_task"]
        < cascade["flops_per_task"]
        < rows["mean(guess+exact)/uniform"]["flops_per_task"]
    )
    card = any_zoo_card(tiny)
    assert card["models"]["exact"]["tasks"]["sign"]["accuracy_per_level"][0] == 1.0
    text = render_any_zoo_card(card)
    assert "## Task `bucket`" in text and "`shared`" in text


def test_the_viewer_draws_a_plugin_zoo(tiny: Zoo) -> None:
    pytest.importorskip("pygame")
    env = tiny_env(render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    env.step(first_valid(obs, info["action_mask"], env))
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    env.close()


def test_a_scenario_names_only_what_its_zoo_has(tiny: Zoo) -> None:
    bad = {
        **TINY_SCENARIO,
        "models": ["guess", "cnn_wide"],
        "plans": [{"model": "guess"}],
        "devices": [{"kind": "t4", "resident": ["guess"]}],
        "workload": {
            "arrivals": {"process": "poisson", "rate": 100},
            "task_types": {"classify": {"slo_ms": 5}},
            "difficulty": [0.2, 0.2, 0.6],
        },
    }
    with pytest.raises(ScenarioError) as err:
        parse_scenario(bad, label="bad.yaml")
    message = str(err.value)
    assert "cnn_wide" in message
    assert "workload.task_types: unknown task type 'classify' (known: sign, bucket)" in message
    assert "serves" not in message  # no second complaint about the same unknown task type


def test_a_scenario_mixes_no_more_levels_than_its_zoo_has(tiny: Zoo) -> None:
    workload = {**TINY_SCENARIO["workload"], "difficulty": [0.2, 0.2, 0.6]}
    with pytest.raises(ScenarioError) as err:
        parse_scenario({**TINY_SCENARIO, "workload": workload}, label="bad.yaml")
    assert "expected at most 2 probabilities (levels 0..1 of zoo 'tiny')" in str(err.value)


def _timed(folder: Path, latency_ms: dict) -> Zoo:
    """The tiny zoo with ``exact`` measured on the given device kinds."""
    zoo = tiny_zoo(folder, name="tiny-timed")
    models = tuple(
        dataclasses.replace(m, latency_ms=latency_ms) if m.name == "exact" else m
        for m in zoo.models
    )
    return register_zoo(dataclasses.replace(zoo, models=models))


def test_measured_latency_replaces_the_derived_profile(tmp_path: Path, tiny: Zoo) -> None:
    _timed(tmp_path, {"t4": (2.0, 0.5)})
    try:
        derived = tiny_env().sim
        timed = TaskAllocationEnv(
            parse_scenario({**TINY_SCENARIO, "zoo": "tiny-timed"}, label="timed")
        ).sim
        exact, t4, a100 = timed.models.index("exact"), 0, 1
        assert timed.model_profiles[exact][t4].alpha_s == pytest.approx(0.002)
        assert timed.model_profiles[exact][t4].beta_s == pytest.approx(0.0005)
        assert timed.model_profiles[exact][a100] == derived.model_profiles[exact][a100]
        override = {"model": "exact", "device": "t4", "alpha_ms": 1.0, "beta_ms": 0.1}
        scenario = {**TINY_SCENARIO, "zoo": "tiny-timed", "profile": {"overrides": [override]}}
        overridden = TaskAllocationEnv(parse_scenario(scenario, label="timed")).sim
        assert overridden.model_profiles[exact][t4].alpha_s == pytest.approx(0.001)
    finally:
        unregister_zoo("tiny-timed")


def test_a_model_measured_on_an_unknown_device_kind_is_refused(tmp_path: Path) -> None:
    _timed(tmp_path, {"t5": (2.0, 0.5)})
    try:
        with pytest.raises(ScenarioError, match=r"measured 'exact' on unknown device kind 't5'"):
            parse_scenario({**TINY_SCENARIO, "zoo": "tiny-timed"}, label="timed")
    finally:
        unregister_zoo("tiny-timed")


def test_an_unknown_zoo_is_named_with_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"zoo.*'tiney'.*digits"):
        parse_scenario({**TINY_SCENARIO, "zoo": "tiney"}, label="x.yaml")


# --- checking a zoo ----------------------------------------------------------------------------


def _broken(tmp_path: Path, what: str) -> tuple[Zoo, str]:
    zoo = tiny_zoo(tmp_path, name="broken")
    models = list(zoo.models)
    if what == "outputs":
        models[0] = dataclasses.replace(models[0], build=lambda: nn.Linear(4, 3))
        save_weights(nn.Linear(4, 3), tmp_path / "guess.safetensors", {})
        return dataclasses.replace(
            zoo, models=tuple(models)
        ), "model 'guess': outputs [2, 3] on 'sign', expected [2, 2] (2 classes)"
    if what == "weights":
        models[1] = dataclasses.replace(
            models[1], weights=models[0].weights, build=lambda: nn.Linear(4, 2, bias=False)
        )
        return dataclasses.replace(zoo, models=tuple(models)), "holds architecture 'guess'"
    if what == "missing weights":
        models[1] = dataclasses.replace(models[1], weights=tmp_path / "nowhere.safetensors")
        return dataclasses.replace(zoo, models=tuple(models)), "nowhere.safetensors"
    if what == "no levels":

        def flat(task_type: str, split: str) -> Pool:
            pool = _tiny_pool(task_type, split)
            return dataclasses.replace(pool, levels=np.zeros_like(pool.levels))

        return dataclasses.replace(zoo, pool=flat), "difficulty levels must be laid out by level"
    if what == "labels":

        def wrong(task_type: str, split: str) -> Pool:
            pool = _tiny_pool(task_type, split)
            return dataclasses.replace(pool, labels=pool.labels + 5)

        return dataclasses.replace(zoo, pool=wrong), "labels must be in 0..1"
    if what == "pool fails":

        def failing(task_type: str, split: str) -> Pool:
            raise FileNotFoundError("data.csv")

        return dataclasses.replace(
            zoo, pool=failing
        ), "could not be loaded: FileNotFoundError: data.csv"
    if what == "latency":
        models[1] = dataclasses.replace(models[1], latency_ms={"t4": (1.0,)})
        return dataclasses.replace(zoo, models=tuple(models)), "latency_ms['t4'] must be"
    if what == "task type":
        models[0] = dataclasses.replace(models[0], task_types=("sing",))
        return dataclasses.replace(zoo, models=tuple(models)), "unknown task type 'sing'"
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "outputs",
        "weights",
        "missing weights",
        "no levels",
        "labels",
        "pool fails",
        "task type",
        "latency",
    ],
)
def test_check_says_what_is_wrong(tmp_path: Path, what: str) -> None:
    zoo, expected = _broken(tmp_path, what)
    with pytest.raises(ZooError) as err:
        register_zoo(zoo)
    assert expected in str(err.value)
    assert str(err.value).startswith("zoo 'broken': ")
    assert "broken" not in zoo_names()


def test_register_refuses_the_builtin_name_and_a_taken_one(tmp_path: Path, tiny: Zoo) -> None:
    with pytest.raises(ZooError, match="built-in"):
        register_zoo(tiny_zoo(tmp_path, name="digits"))
    with pytest.raises(ZooError, match="already registered"):
        register_zoo(tiny_zoo(tmp_path, name="tiny"))
    with pytest.raises(ZooError, match=r"expects an mtenv\.zoo\.Zoo"):
        register_zoo("tiny")  # type: ignore[arg-type]


# --- entry points ------------------------------------------------------------------------------

_ENTRY_FOLDER: list[Path] = []


def entry_zoo() -> Zoo:
    """What the fake entry points below load (a function returning a zoo, as packages do)."""
    return tiny_zoo(_ENTRY_FOLDER[0], name="plugged")


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    points = {
        name: metadata.EntryPoint(name, value, registry.ENTRY_POINT_GROUP)
        for name, value in values.items()
    }
    monkeypatch.setattr(registry, "_entry_points", lambda: points)


@pytest.fixture
def entry_folder(tmp_path: Path):
    _ENTRY_FOLDER[:] = [tmp_path]
    yield tmp_path
    for name in ("plugged", "renamed", "broken_ep", "not_a_zoo"):
        registry._REGISTERED.pop(name, None)
        registry._SOURCES.pop(name, None)


def test_an_entry_point_is_listed_without_loading_and_loaded_when_asked(
    monkeypatch: pytest.MonkeyPatch, entry_folder: Path
) -> None:
    _fake_entry_points(monkeypatch, plugged="test_zoo_plugins:entry_zoo")
    assert "plugged" in zoo_names()
    assert "plugged" not in registry._REGISTERED  # listing imports nothing
    zoo = get_zoo("plugged")
    assert zoo.name == "plugged" and get_zoo("plugged") is zoo
    assert "test_zoo_plugins:entry_zoo" in zoo_source("plugged")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "renamed",
            "test_zoo_plugins:entry_zoo",
            "gave a zoo named 'plugged'; the names must match",
        ),
        ("broken_ep", "no_such_module_here:zoo", "failed to load: ModuleNotFoundError"),
        ("not_a_zoo", "test_zoo_plugins:N_LEVELS", "gave a int, expected an mtenv.zoo.Zoo"),
    ],
)
def test_a_bad_entry_point_says_which(
    monkeypatch: pytest.MonkeyPatch, entry_folder: Path, name: str, value: str, expected: str
) -> None:
    _fake_entry_points(monkeypatch, **{name: value})
    with pytest.raises(ZooError) as err:
        get_zoo(name)
    assert f"entry point {name!r}" in str(err.value) and expected in str(err.value)


def test_zoo_list_shows_a_broken_plugin_without_failing(
    monkeypatch: pytest.MonkeyPatch, entry_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_entry_points(monkeypatch, broken_ep="no_such_module_here:zoo")
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "broken_ep" in out and "ModuleNotFoundError" in out


def test_zoo_card_of_an_unknown_zoo_is_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "card", "--zoo", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown zoo 'nope'" in err and "digits" in err


def test_bench_refuses_a_run_time_zoo_with_workers(
    tiny: Zoo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SCENARIO))
    argv = ["bench", "--scenarios", str(path), "--policies", "random", "--seeds", "1"]
    assert main([*argv, "--episodes", "1", "--workers", "2", "--out", str(tmp_path / "b")]) == 2
    assert "registered at run time" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# --- reward.miss_penalty -----------------------------------------------------------------------


def _task(
    label: int, answer: int, status: TaskStatus = TaskStatus.COMPLETED, priority: float = 2.0
) -> Task:
    task = Task(
        id=0,
        type=0,
        input_id=0,
        label=label,
        difficulty=0,
        priority=priority,
        priority_class=0,
        arrival=0.0,
        deadline=1.0,
        status=status,
    )
    task.answer, task.finished = answer, 0.5
    return task


@pytest.mark.parametrize(
    ("label", "answer", "status", "expected"),
    [
        (1, 1, TaskStatus.COMPLETED, 2.0),  # right: the correct reward, no penalty
        (1, 0, TaskStatus.COMPLETED, -8.0),  # a missed positive: 4 × priority 2
        (0, 1, TaskStatus.COMPLETED, 0.0),  # a false alarm: no penalty on class 0
        (1, -1, TaskStatus.REJECTED, -0.6 - 8.0),  # rejected positive: reject and miss
        (1, -1, TaskStatus.DROPPED, -0.5 - 8.0),  # dropped positive: SLO miss and miss
    ],
)
def test_miss_penalty_charges_unanswered_positives(label, answer, status, expected) -> None:
    weights = RewardConfig(reject=0.3, miss_penalty={"diagnose": {1: 4.0}})
    reward = TaskReward(weights, ("diagnose",))
    assert math.isclose(reward(_task(label, answer, status)), expected)
    assert math.isclose(TaskReward(weights, ("other",))(_task(1, 0)), 0.0)


def test_miss_penalty_is_checked_against_task_types_and_classes(tiny: Zoo) -> None:
    raw = {**TINY_SCENARIO, "reward": {"miss_penalty": {"sign": {2: 1.0}, "nope": {0: 1.0}}}}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(raw, label="p.yaml")
    assert "reward.miss_penalty.sign: expected classes 0..1, got 2" in str(err.value)
    assert (
        "reward.miss_penalty: expected one of the workload's task types (sign, bucket), got 'nope'"
        in str(err.value)
    )


# --- the worked example: examples/triage ---------------------------------------------------------


@pytest.fixture(scope="module")
def triage():
    sys.path.insert(0, str(TRIAGE))
    try:
        import mtenv_triage

        zoo = register_zoo(mtenv_triage.triage_zoo(), replace=True)
        yield zoo, mtenv_triage.scenario_path()
    finally:
        unregister_zoo("triage")
        sys.path.remove(str(TRIAGE))


def _noisy(zoo: Zoo, name: str) -> Zoo:
    """``zoo`` with every model's output replaced by Gaussian noise (a forward hook)."""
    generator = torch.Generator().manual_seed(0)

    def noisy_build(build):
        def built() -> nn.Module:
            module = build()
            module.register_forward_hook(
                lambda m, i, out: torch.randn(out.shape, generator=generator)
            )
            return module

        return built

    models = tuple(dataclasses.replace(m, build=noisy_build(m.build)) for m in zoo.models)
    return dataclasses.replace(zoo, name=name, models=models)


def test_triage_accuracy_collapses_when_outputs_are_noise(triage) -> None:
    zoo, path = triage
    raw = yaml.safe_load(Path(path).read_text())
    raw["episode_tasks"] = 400
    accuracy = {}
    for name in ("triage", "triage-noise"):
        if name != "triage":
            register_zoo(_noisy(zoo, name))
        env = TaskAllocationEnv(parse_scenario({**raw, "zoo": name}, label=name))
        [metrics] = evaluate_policy(env, make_policy("most-accurate", env, seed=0), episodes=1)
        accuracy[name] = metrics["accuracy"]
        env.close()
    unregister_zoo("triage-noise")
    assert accuracy["triage"] > 0.85
    assert accuracy["triage-noise"] < 0.65  # two classes: chance is 0.5


def test_triage_card_matches_its_readme(triage) -> None:
    zoo, _ = triage
    card = any_zoo_card(zoo)
    readme = (TRIAGE / "README.md").read_text()
    for name, model in card["models"].items():
        row = model["tasks"]["diagnose"]
        levels = " | ".join(f"{a:.3f}" for a in row["accuracy_per_level"])
        flops = model["flops_per_task"]["diagnose"]
        assert f"| `{name}` | {flops:,} | {levels} | {row['accuracy']:.3f} |" in readme


@pytest.mark.slow
def test_triage_weights_retrain_byte_identical(tmp_path: Path, triage) -> None:
    # Training's floating point follows the CPU's kernels: bytes match on the machine that
    # made the weights, so this is opt-in (-m slow).
    subprocess.run(
        [sys.executable, "-m", "mtenv_triage.train", "--out", str(tmp_path)],
        check=True,
        cwd=TRIAGE,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(TRIAGE)},
    )
    for shipped in (TRIAGE / "mtenv_triage" / "weights").glob("*.safetensors"):
        assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes(), shipped.name


# --- installed: pip install examples/triage, then the tutorial's commands -----------------------


def _tutorial_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TUTORIAL.read_text(), re.S)


@pytest.fixture(scope="module")
def installed_triage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``examples/triage`` installed into a folder of its own (offline, no dependencies): the
    environment of a process that ran ``pip install examples/triage``."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(TRIAGE),
        ],
        check=True,
        capture_output=True,
    )
    return {**os.environ, "PYTHONPATH": str(target), "MTENV_TORCH_THREADS": "1"}


def test_the_installed_package_works_with_every_command(installed_triage, tmp_path: Path) -> None:
    [shell] = _tutorial_blocks("bash")
    commands = [line for line in shell.splitlines() if line.startswith("mtenv ")]
    assert len(commands) == 6  # list, card, validate, run, train, bench
    for line in commands:
        argv = [arg.replace("examples/", f"{ROOT}/examples/") for arg in shlex.split(line)]
        done = subprocess.run(
            [sys.executable, "-m", "mtenv.tools.cli", *argv[1:]],
            cwd=tmp_path,
            env=installed_triage,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        if argv[1:3] == ["zoo", "list"]:
            assert "triage  (mtenv-triage (mtenv_triage:triage_zoo))" in done.stdout
        if argv[1:3] == ["zoo", "card"]:
            assert "| `deep` |" in done.stdout and "`screen>deep@0.8`" in done.stdout
    summary = (tmp_path / "bench-triage" / "summary.md").read_text()
    assert "runs/triage-q" in summary and "oracle" in summary


# --- the tutorial ------------------------------------------------------------------------------


def test_the_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    [scenario] = _tutorial_blocks("yaml")
    name = scenario.splitlines()[0].removeprefix("# ").strip()
    (tmp_path / name).write_text(scenario)
    namespace: dict = {"__name__": "tutorial"}
    try:
        for block in _tutorial_blocks("python"):
            exec(compile(block, str(TUTORIAL), "exec"), namespace)
    finally:
        unregister_zoo("toy")
    summary = (tmp_path / "bench-toy" / "summary.md").read_text()
    assert "| toy.yaml | " in summary
    assert (tmp_path / "runs" / "toy-q" / "manifest.json").is_file()
