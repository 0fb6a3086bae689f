"""Saved agents are data, not code: a PPO agent is saved as ``agent.json`` + ``agent.safetensors``
and loaded back without pickle, acting exactly as the trained model did; every tampered field is
one clear error; an SB3 zip loads only when trusted; the manifest is checked field by field;
oversized files are refused unread; and the commands use a fresh run folder without any flag.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import BASE_SCENARIO, merge
from safetensors.torch import save
from test_ppo import MIXED_TYPES, TINY_PPO, Recorder, episode_observations, scenario_config

from mtenv.agents.interfaces import AgentLoadError
from mtenv.agents.limits import MAX_JSON_BYTES
from mtenv.agents.ppo import policy_files
from mtenv.agents.ppo.learner import MaskablePPOAgent, PPOAgent
from mtenv.agents.ppo.policy_files import JSON_FILE, WEIGHTS_FILE
from mtenv.agents.ppo.storage import ZIP_FILE, write_zip
from mtenv.agents.saved import load_agent
from mtenv.agents.training import MANIFEST
from mtenv.envs.task_allocation import TaskAllocationEnv
from mtenv.tools.cli import EXIT_BAD_INPUT, main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLASSES = {"maskable-ppo": MaskablePPOAgent, "ppo": PPOAgent}
VARIANTS = [(kind, policy) for kind in CLASSES for policy in ("CandidatePolicy", "MlpPolicy")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """MaskablePPO and PPO, each with both policies, trained one rollout on a scenario whose
    masks vary; each saved into its own folder."""
    folder = tmp_path_factory.mktemp("saved_agents")
    config = scenario_config(folder, MIXED_TYPES)
    env = config.make()
    agents = {}
    for kind, policy in VARIANTS:
        agent = CLASSES[kind](env, **{**TINY_PPO, "policy": policy})
        agent.learn(
            config, 128, seed=1, run_dir=folder / f"run-{kind}-{policy}", callback=Recorder()
        )
        agents[kind, policy] = (agent, agent.save(folder / f"{kind}-{policy}").parent)
    yield agents, env
    env.close()


def never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a saved agent was unpickled")


@pytest.mark.parametrize(("kind", "policy"), VARIANTS)
def test_a_saved_agent_acts_exactly_like_the_trained_model(trained, kind, policy, monkeypatch):
    agents, env = trained
    agent, folder = agents[kind, policy]
    assert sorted(p.name for p in folder.iterdir()) == [JSON_FILE, WEIGHTS_FILE]
    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, never)
    monkeypatch.setattr(torch, "load", never)
    rng = torch.random.get_rng_state()
    loaded = CLASSES[kind].load(folder, env)
    assert torch.equal(torch.random.get_rng_state(), rng)  # loading draws nothing
    assert loaded.model is None and loaded.hyperparameters == agent.hyperparameters
    model = agent.model
    for obs, mask in episode_observations(env, agent, seed=2):
        narrowed = mask.copy()
        narrowed[agent.act(obs, mask)] = 0
        narrowed[-1] = 1
        for m in (mask, narrowed, np.ones_like(mask)):
            assert loaded.act(obs, m) == agent.act(obs, m)
            np.testing.assert_array_equal(loaded.action_values(obs, m), agent.action_values(obs, m))
        # What SB3's own predict does with the trained model, the rebuilt policy does too.
        masks = {"action_masks": mask.astype(bool)} if kind == "maskable-ppo" else {}
        expected, _ = model.predict(obs, deterministic=True, **masks)
        got, _ = loaded._policy().predict(obs, deterministic=True, **masks)
        assert int(got) == int(expected)


def test_a_loaded_agent_saves_again_to_the_same_files(trained, tmp_path):
    agents, env = trained
    _, folder = agents["maskable-ppo", "CandidatePolicy"]
    MaskablePPOAgent.load(folder, env).save(tmp_path)
    for name in (WEIGHTS_FILE, JSON_FILE):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()
    with pytest.raises(RuntimeError, match="holds no training state"):
        MaskablePPOAgent.load(folder, env).write_checkpoint(tmp_path / "checkpoints")


def test_the_parameter_count_is_known_before_building(trained):
    agents, _ = trained
    for agent, _ in agents.values():
        policy = agent.model.policy
        kwargs = policy_files.policy_description(policy)["kwargs"]
        if "hidden" in kwargs:
            expected = policy_files._candidate_parameters(kwargs["hidden"])
        else:
            n_obs, n_actions = policy.observation_space.shape[0], policy.action_space.n
            expected = policy_files._mlp_parameters(n_obs, n_actions, kwargs["net_arch"])
        assert expected == sum(t.numel() for t in policy.state_dict().values())


# --- tampered files ------------------------------------------------------------------------------


def copy_of(trained, tmp_path: Path, kind: str, policy: str) -> Path:
    agents, _ = trained
    target = tmp_path / "copy"
    shutil.copytree(agents[kind, policy][1], target)
    return target


def edit_json(folder: Path, change) -> None:
    path = folder / JSON_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def assert_one_line_error(folder: Path, env, kind: str, pattern: str, file: str = JSON_FILE):
    with pytest.raises(AgentLoadError, match=pattern) as caught:
        CLASSES[kind].load(folder, env)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(folder / file))


def _set(*keys_value):
    *keys, value = keys_value

    def change(data: dict) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


CANDIDATE_TAMPERING = {
    "unknown-class": (
        _set("policy", "class", "CnnPolicy"),
        r"field policy\.class: expected one of",
    ),
    "module-path-class": (
        _set("policy", "class", "os.system"),
        r"field policy\.class: expected one of",
    ),
    "extra-kwarg": (
        _set("policy", "kwargs", "features_extractor_class", "os.system"),
        r"policy\.kwargs\.features_extractor_class: expected no such key",
    ),
    "huge-hidden": (_set("policy", "kwargs", "hidden", 10**9), r"hidden: expected an integer in"),
    "too-many-parameters": (
        _set("policy", "kwargs", "hidden", 4096),
        r"policy\.kwargs: a network of [\d,]+ parameters, above",
    ),
    "hidden-as-string": (_set("policy", "kwargs", "hidden", "64"), r"hidden: expected an integer"),
    "indices": (
        _set("policy", "kwargs", "indices", "est", [[0]]),
        r"indices\.est: not where this env's observation holds them",
    ),
    "observation-shape": (_set("observation_shape", [3]), r"observation_shape: \[3\] in the file"),
    "action-count-type": (_set("n_actions", "5"), r"n_actions: expected an integer"),
    "action-count": (_set("n_actions", 7), r"n_actions: 7 in the file, 5 in the env"),
    "feature-names": (
        lambda d: d["feature_names"].__setitem__(0, "other"),
        r"feature_names: entry 0 is 'other' in the file",
    ),
    "kind": (_set("kind", "ppo"), r"field kind: a 'ppo' agent, expected 'maskable-ppo'"),
    "algorithm": (_set("algorithm", "DQN"), r"field algorithm: expected one of \['MaskablePPO'\]"),
    "format-version": (_set("format_version", 2), r"format_version: expected an integer in \[1, 1"),
    "missing-field": (lambda d: d.pop("num_timesteps"), r"field num_timesteps: missing"),
    "selected-after-the-end": (
        _set("selected_step", 10**6),
        r"field selected_step: expected an integer in \[0, ",
    ),
    "hyperparameters-type": (_set("hyperparameters", []), r"hyperparameters: expected a JSON obj"),
    "bad-hyperparameters": (
        _set("hyperparameters", "n_envs", 0),
        r"field hyperparameters: not valid \(n_envs",
    ),
    "top-level": (lambda d: d.clear(), r"field format: missing"),
    "weights-size": (_set("weights", "bytes", 10**12), r"weights\.bytes: expected an integer"),
}


@pytest.mark.parametrize("case", sorted(CANDIDATE_TAMPERING))
def test_a_tampered_description_is_one_clear_error(trained, tmp_path, case):
    change, pattern = CANDIDATE_TAMPERING[case]
    folder = copy_of(trained, tmp_path, "maskable-ppo", "CandidatePolicy")
    edit_json(folder, change)
    assert_one_line_error(folder, trained[1], "maskable-ppo", pattern)


MLP_TAMPERING = {
    "activation-by-import": (
        _set("policy", "kwargs", "activation_fn", "torch.nn.modules.activation.Tanh"),
        r"activation_fn: expected one of \['elu', 'leaky_relu', 'relu', 'tanh'\]",
    ),
    "huge-layer": (_set("policy", "kwargs", "net_arch", [10**9]), r"net_arch: expected layer"),
    "deep": (_set("policy", "kwargs", "net_arch", [8] * 1000), r"net_arch: expected a list of"),
    "wide-and-deep": (
        _set("policy", "kwargs", "net_arch", [4096] * 16),
        r"a network of [\d,]+ parameters, above",
    ),
    "arch-keys": (
        _set("policy", "kwargs", "net_arch", {"pi": [8], "qf": [8]}),
        r"net_arch: expected a list of widths or",
    ),
    "other-arch": (
        _set("policy", "kwargs", "net_arch", [16]),
        r"agent\.safetensors: tensor .*: expected F32 \[16, \d+\], got F32 \[32, \d+\]",
    ),
    "share-type": (_set("policy", "kwargs", "share_features_extractor", 1), r"true or false"),
}


@pytest.mark.parametrize("case", sorted(MLP_TAMPERING))
def test_a_tampered_mlp_description_is_one_clear_error(trained, tmp_path, case):
    change, pattern = MLP_TAMPERING[case]
    folder = copy_of(trained, tmp_path, "ppo", "MlpPolicy")
    edit_json(folder, change)
    file = WEIGHTS_FILE if case == "other-arch" else JSON_FILE
    assert_one_line_error(folder, trained[1], "ppo", pattern, file)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (lambda t: t.replace('"num_timesteps": 128', '"num_timesteps": NaN'), "NaN is not a"),
        (lambda t: "[" * 100_000, "unreadable"),
        (lambda t: t[: len(t) // 2], "unreadable"),
        (lambda t: t + " " * (MAX_JSON_BYTES + 1), r"bytes, above the 4 MiB"),
    ],
    ids=["nan", "deep-nesting", "truncated", "oversized"],
)
def test_an_unreadable_description_is_one_clear_error(trained, tmp_path, text, pattern):
    folder = copy_of(trained, tmp_path, "maskable-ppo", "CandidatePolicy")
    path = folder / JSON_FILE
    path.write_text(text(path.read_text()))
    assert_one_line_error(folder, trained[1], "maskable-ppo", pattern)


def rewrite_weights(
    folder: Path, tensors: dict[str, torch.Tensor] | None, raw: bytes | None = None
):
    """New weights, and their size and hash in agent.json, as a careful forger would."""
    data = raw if raw is not None else save(tensors)
    (folder / WEIGHTS_FILE).write_bytes(data)
    edit_json(folder, _set("weights", "bytes", len(data)))
    edit_json(folder, _set("weights", "sha256", hashlib.sha256(data).hexdigest()))


def saved_tensors(trained, kind="maskable-ppo", policy="CandidatePolicy") -> dict:
    agent = trained[0][kind, policy][0]
    return {k: v.detach().clone().contiguous() for k, v in agent.model.policy.state_dict().items()}


def test_weights_that_are_not_the_saved_ones_are_refused(trained, tmp_path):
    env = trained[1]
    folder = copy_of(trained, tmp_path, "maskable-ppo", "CandidatePolicy")
    path = folder / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_one_line_error(folder, env, "maskable-ppo", "SHA-256 differs", WEIGHTS_FILE)
    path.write_bytes(bytes(data[:-4]))
    assert_one_line_error(folder, env, "maskable-ppo", "bytes, agent.json says", WEIGHTS_FILE)


@pytest.mark.parametrize(
    ("forge", "pattern"),
    [
        (lambda t: t.__setitem__("value_net.bias", torch.tensor([float("nan")])), "finite"),
        (lambda t: t.__setitem__("extra", torch.zeros(1)), "unexpected tensor extra"),
        (lambda t: t.pop("value_net.bias"), "tensor value_net.bias is missing"),
        (lambda t: t.__setitem__("value_net.bias", torch.zeros(2)), r"expected F32 \[1\]"),
        (
            lambda t: t.__setitem__("value_net.bias", torch.zeros(1, dtype=torch.float64)),
            "got F64",
        ),
    ],
    ids=["nan", "extra", "missing", "shape", "dtype"],
)
def test_forged_weights_are_refused(trained, tmp_path, forge, pattern):
    folder = copy_of(trained, tmp_path, "maskable-ppo", "CandidatePolicy")
    tensors = saved_tensors(trained)
    forge(tensors)
    rewrite_weights(folder, tensors)
    assert_one_line_error(folder, trained[1], "maskable-ppo", pattern, WEIGHTS_FILE)


def test_a_forged_safetensors_header_is_refused(trained, tmp_path):
    folder = copy_of(trained, tmp_path, "maskable-ppo", "CandidatePolicy")
    data = (folder / WEIGHTS_FILE).read_bytes()
    rewrite_weights(folder, None, struct.pack("<Q", 2**60) + data[8:])
    assert_one_line_error(folder, trained[1], "maskable-ppo", "not a readable", WEIGHTS_FILE)


# --- SB3 zips ------------------------------------------------------------------------------------


def test_a_zip_loads_only_when_trusted(trained, tmp_path, monkeypatch):
    agents, env = trained
    agent, _ = agents["maskable-ppo", "CandidatePolicy"]
    folder = tmp_path / "old"
    write_zip(agent.model, agent._meta(), folder / ZIP_FILE)
    monkeypatch.setattr(torch, "load", never)  # refused before anything is read
    with pytest.raises(AgentLoadError, match=r"agent\.zip: .*runs code.*--trust-pickle") as caught:
        MaskablePPOAgent.load(folder, env)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    loaded = MaskablePPOAgent.load(folder, env, trust_pickle=True)
    for obs, mask in episode_observations(env, agent, seed=4):
        assert loaded.act(obs, mask) == agent.act(obs, mask)


# --- run folders and the command line ------------------------------------------------------------


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    """A PPO run folder written by ``mtenv train`` on a tiny budget, and its scenario file."""
    folder = tmp_path_factory.mktemp("ppo_run")
    scenario = folder / "tiny.yaml"
    raw = merge(BASE_SCENARIO, {"devices": [{"kind": "t4", "resident": ["linear", "cnn_wide"]}]})
    scenario.write_text(yaml.safe_dump(raw))
    hp = ["n_envs=1", "n_steps=64", "batch_size=64", "n_epochs=1", "teacher=null"]
    argv = ["train", "--scenario", str(scenario), "--agent", "maskable-ppo", "--steps", "64"]
    argv += ["--seed", "0", "--out", str(folder / "run"), "--quiet"]
    argv += [x for h in hp for x in ("--hp", h)]
    assert main(argv) == 0
    return folder / "run", scenario, argv


def test_commands_use_a_fresh_ppo_run_without_any_flag(ppo_run, tmp_path, capsys):
    run, scenario, _ = ppo_run
    names = {p.name for p in run.iterdir()}
    assert {JSON_FILE, WEIGHTS_FILE, MANIFEST} <= names and ZIP_FILE not in names
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--baselines", "none", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    argv = ["run", "--scenario", str(scenario), "--policy", str(run), "--episodes", "1"]
    assert main([*argv, "--seed", str(evaluated["seed"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == evaluated["metrics"]
    assert main(["explain", str(run), "--samples", "2"]) == 0
    assert "valid actions:" in capsys.readouterr().out


def old_run(ppo_run, tmp_path: Path) -> Path:
    """The run as an older mtenv wrote it: an SB3 agent.zip and no agent.json."""
    run, scenario, _ = ppo_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    env = TaskAllocationEnv(str(scenario), inference="memoized")
    agent = MaskablePPOAgent.load(old, env)
    agent.resume(old)  # the final checkpoint: the trained model
    write_zip(agent.model, agent._meta(), old / ZIP_FILE)
    (old / JSON_FILE).unlink()
    (old / WEIGHTS_FILE).unlink()
    return old


def test_an_old_run_folder_is_refused_without_trust_pickle(ppo_run, tmp_path, capsys):
    old = old_run(ppo_run, tmp_path)
    _, scenario, train_argv = ppo_run
    capsys.readouterr()
    commands = [
        ["eval", str(old), "--episodes", "1", "--baselines", "none"],
        ["run", "--scenario", str(scenario), "--policy", str(old), "--episodes", "1"],
        ["explain", str(old), "--samples", "1"],
    ]
    for argv in commands:
        assert main(argv) == EXIT_BAD_INPUT, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert f"{old / ZIP_FILE}: a stable-baselines3 zip" in err and "--trust-pickle" in err
    with pytest.raises(AgentLoadError, match="trust_pickle=True"):
        load_agent(old, TaskAllocationEnv(str(scenario), inference="memoized"))
    for argv in commands:
        assert main([*argv, "--trust-pickle"]) == 0, argv
    capsys.readouterr()
    # Resuming the finished run re-saves its agent without pickle.
    out = train_argv.index("--out") + 1
    assert main([*train_argv[:out], str(old), "--resume", "--quiet"]) == 0
    assert (old / JSON_FILE).exists()
    assert main(commands[0]) == 0


def damaged_manifest(ppo_run, tmp_path: Path, change) -> Path:
    run, _, _ = ppo_run
    copy = tmp_path / "damaged"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    change(manifest)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("scenario_arg"), "manifest.json: scenario_arg: missing"),
        (lambda m: m.pop("complete"), "manifest.json: complete: missing"),
        (_set("seed", "0"), "manifest.json: seed: expected an integer, got '0'"),
        (_set("complete", "yes"), "manifest.json: complete: expected true or false"),
        (_set("total_steps", -1), "manifest.json: total_steps: expected an integer >= 1"),
        (_set("hyperparameters", [1]), "manifest.json: hyperparameters: expected a JSON object"),
        (_set("action_labels", [1, 2]), "manifest.json: action_labels: expected a list of names"),
        (_set("cpu_time_s", None), "manifest.json: cpu_time_s: expected a number of seconds"),
    ],
    ids=["no-scenario-arg", "no-complete", "seed", "complete", "steps", "hp", "labels", "cpu"],
)
def test_a_bad_manifest_field_is_one_clear_error(ppo_run, tmp_path, capsys, change, message):
    folder = damaged_manifest(ppo_run, tmp_path, change)
    capsys.readouterr()
    assert main(["eval", str(folder), "--episodes", "1", "--baselines", "none"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_oversized_manifest_is_refused_unread(ppo_run, tmp_path, monkeypatch, capsys):
    run, _, _ = ppo_run
    folder = tmp_path / "big"
    shutil.copytree(run, folder)
    with open(folder / MANIFEST, "a") as f:
        f.write(" " * MAX_JSON_BYTES)
    read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: never() if p.name == MANIFEST else read(p))
    capsys.readouterr()
    assert main(["eval", str(folder), "--episodes", "1"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "manifest.json: " in err and "above the 4 MiB" in err


def test_a_sweep_refuses_an_old_run_folder_before_any_work(ppo_run, tmp_path, capsys):
    old = old_run(ppo_run, tmp_path)
    run, scenario, _ = ppo_run
    base = ["bench", "--scenarios", str(scenario), "--seeds", "1", "--episodes", "1"]
    base += ["--episode-tasks", "20", "--workers", "1"]
    capsys.readouterr()
    assert main([*base, "--policies", str(old), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "--policies: " in err and f"{old / ZIP_FILE}: a stable-baselines3 zip" in err
    assert not (tmp_path / "never").exists()
    assert main([*base, "--policies", str(run), "--out", str(tmp_path / "ok")]) == 0
