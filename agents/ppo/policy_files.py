"""The saved PPO agent without pickle: ``agent.json`` says what the network is, and
``agent.safetensors`` holds its weights.

``agent.json`` (plain JSON, :func:`describe`) records the format and version, the agent's kind
and algorithm, the policy class (``MlpPolicy`` or ``CandidatePolicy``) and its keyword
arguments, the observation shape and action count, the env's feature names and action labels,
the hyperparameters, the env steps trained, the package versions, and the size and SHA-256 of
the weights file. Loading (:func:`read_policy`) reads nothing but these two files, and
nothing in them is executed:

* every field is checked (type, range, known names only: the policy classes and activation
  functions are looked up in fixed tables, never imported by name), and each problem is one
  :class:`~mtenv.agents.interfaces.AgentLoadError` line naming the file, the field and what
  was expected;
* the spaces, names and candidate indices must be those of the env the agent will act on;
* the network the description implies is sized before it is built (at most
  :data:`MAX_PARAMETERS` numbers, :data:`MAX_WIDTH` units a layer, :data:`MAX_LAYERS` layers);
* the weights file must have the recorded size and hash and is read with
  ``safetensors.torch.load`` (no pickle), every tensor with the rebuilt network's name,
  shape and dtype, finite, none missing, none extra.

The rebuilt policy is the SB3 policy class the agent trained with, so it acts exactly as the
trained model did. Optimizer state is not saved: training continues from the run's checkpoints
(SB3 zips, which unpickle code: only ``mtenv train --resume`` reads them).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor

from mtenv.agents.interfaces import AgentLoadError, name_difference
from mtenv.agents.limits import MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, check_size, read_json
from mtenv.agents.ppo.candidates import (
    N_CANDIDATE,
    N_CONTEXT,
    CandidatePolicy,
    MaskableCandidatePolicy,
    layout_indices,
)
from mtenv.agents.ppo.settings import ACTIVATIONS
from mtenv.agents.ppo.storage import JSON_FILE, WEIGHTS_FILE
from mtenv.envs.observation import ObservationLayout
from mtenv.zoo.store import atomic_path

FORMAT = "mtenv-ppo-agent"
FORMAT_VERSION = 1
ALGORITHMS = {"ppo": "PPO", "maskable-ppo": "MaskablePPO"}
"""The algorithm each agent kind trains with."""
POLICY_CLASSES: dict[tuple[str, str], type[ActorCriticPolicy]] = {
    ("PPO", "MlpPolicy"): ActorCriticPolicy,
    ("MaskablePPO", "MlpPolicy"): MaskableActorCriticPolicy,
    ("PPO", "CandidatePolicy"): CandidatePolicy,
    ("MaskablePPO", "CandidatePolicy"): MaskableCandidatePolicy,
}
"""The only policy classes a saved agent may name, by (algorithm, policy)."""
MAX_WIDTH = 4096
MAX_LAYERS = 16
MAX_PARAMETERS = MAX_WEIGHTS_BYTES // 4
"""The most float32 numbers a network may have: a weights file at its size cap."""
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}
_INDEX_KEYS = ("est", "load", "cost", "accuracy", "device", "context")


# --- writing -----------------------------------------------------------------------------------


def policy_description(policy: ActorCriticPolicy) -> dict[str, Any]:
    """``{"class": ..., "kwargs": ...}`` of a policy built by the PPO learners."""
    if isinstance(policy, (CandidatePolicy, MaskableCandidatePolicy)):
        return {
            "class": "CandidatePolicy",
            "kwargs": {"hidden": int(policy._hidden), "indices": policy._indices},
        }
    if not isinstance(policy.features_extractor, FlattenExtractor):
        raise ValueError(f"cannot save a policy with {type(policy.features_extractor).__name__}")
    activation = _ACTIVATION_NAMES.get(policy.activation_fn)
    if activation is None:
        raise ValueError(f"cannot save a policy with activation {policy.activation_fn!r}")
    net_arch = policy.net_arch
    return {
        "class": "MlpPolicy",
        "kwargs": {
            "net_arch": dict(net_arch) if isinstance(net_arch, dict) else list(net_arch),
            "activation_fn": activation,
            "share_features_extractor": bool(policy.share_features_extractor),
        },
    }


def write_policy(folder: Path, policy: ActorCriticPolicy, description: dict[str, Any]) -> Path:
    """Write ``agent.safetensors`` then ``agent.json`` (``description`` plus the policy and the
    weights' size and hash), each atomically; returns the JSON's path. A reader finds the new
    weights only once the JSON naming their hash is in place."""
    folder = Path(folder)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in policy.state_dict().items()}
    data = save(tensors, metadata={"format": FORMAT})
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **description,
        "policy": policy_description(policy),
        "weights": {
            "file": WEIGHTS_FILE,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    text = json.dumps(record, indent=1, default=repr) + "\n"
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(data)
    with atomic_path(folder / JSON_FILE) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return folder / JSON_FILE


# --- checking fields ---------------------------------------------------------------------------


class _Fields:
    """The fields of one JSON object, each read with its expectation; a miss is one
    :class:`AgentLoadError` line ``FILE: field NAME: expected ..., got ...``."""

    def __init__(self, path: Path, data: Any, prefix: str = ""):
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            self.fail("", "a JSON object", data)
        self.data = data

    def fail(self, name: str, expected: str, got: Any) -> None:
        shown = repr(got)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        field = f"{self.prefix}{name}".rstrip(".") or "(top level)"
        raise AgentLoadError(f"{self.path}: field {field}: expected {expected}, got {shown}")

    def get(self, name: str) -> Any:
        if name not in self.data:
            field = f"{self.prefix}{name}"
            raise AgentLoadError(f"{self.path}: field {field}: missing")
        return self.data[name]

    def text(self, name: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.get(name)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            self.fail(name, "a string" if choices is None else f"one of {list(choices)}", value)
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(name, f"an integer in [{low}, {high:,}]", value)
        return value

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if not isinstance(value, bool):
            self.fail(name, "true or false", value)
        return value

    def names(self, name: str) -> list[str]:
        value = self.get(name)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.fail(name, "a list of strings", value)
        return value

    def ints(self, name: str, value: Any, high: int) -> list[int]:
        if (
            not isinstance(value, list)
            or len(value) > high
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        ):
            self.fail(name, f"a list of at most {high} integers", value)
        return value

    def object(self, name: str) -> _Fields:
        return _Fields(self.path, self.get(name), f"{self.prefix}{name}.")


# --- reading -----------------------------------------------------------------------------------


def read_description(folder: Path, kind: str, env: gym.Env) -> dict[str, Any]:
    """``agent.json`` checked field by field and against ``env``: its values, with
    ``policy`` resolved to ``(class, kwargs)`` ready to build."""
    path = Path(folder) / JSON_FILE
    fields = _Fields(path, read_json(path, MAX_JSON_BYTES))
    fmt = fields.get("format")
    if fmt != FORMAT:
        fields.fail("format", repr(FORMAT), fmt)
    fields.integer("format_version", FORMAT_VERSION, FORMAT_VERSION)
    saved_kind = fields.text("kind", tuple(ALGORITHMS))
    if saved_kind != kind:
        raise AgentLoadError(
            f"{path}: field kind: a {saved_kind!r} agent, expected {kind!r}: "
            f"load it as {saved_kind}"
        )
    algorithm = fields.text("algorithm", (ALGORITHMS[kind],))
    shape = tuple(fields.ints("observation_shape", fields.get("observation_shape"), 1))
    env_shape = tuple(env.observation_space.shape or ())
    if len(shape) != 1 or shape != env_shape:
        raise AgentLoadError(
            f"{path}: field observation_shape: {list(shape)} in the file, {list(env_shape)} in "
            "the env: trained for another scenario"
        )
    n_actions = fields.integer("n_actions", 1, 2**31)
    if n_actions != int(env.action_space.n):
        raise AgentLoadError(
            f"{path}: field n_actions: {n_actions} in the file, {int(env.action_space.n)} in "
            "the env: trained for another scenario"
        )
    for name, current in (
        ("feature_names", env.unwrapped.feature_names),
        ("action_labels", env.unwrapped.action_labels),
    ):
        _same_names(path, name, fields.names(name), list(current))
    hyperparameters = fields.get("hyperparameters")
    if not isinstance(hyperparameters, dict):
        fields.fail("hyperparameters", "a JSON object", hyperparameters)
    steps = fields.integer("num_timesteps", 0, 2**62)
    # the step of the validated weights the agent acts with (absent before mtenv kept them)
    selected = fields.integer("selected_step", 0, steps) if "selected_step" in fields.data else None
    versions = fields.get("versions")
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        fields.fail("versions", "an object of version strings", versions)
    policy = fields.object("policy")
    name = policy.text("class", ("MlpPolicy", "CandidatePolicy"))
    cls = POLICY_CLASSES[(algorithm, name)]
    kwargs = policy.object("kwargs")
    if name == "CandidatePolicy":
        built = _candidate_kwargs(kwargs, env)
        parameters = _candidate_parameters(built["hidden"])
    else:
        built = _mlp_kwargs(kwargs)
        parameters = _mlp_parameters(shape[0], n_actions, built["net_arch"])
    if parameters > MAX_PARAMETERS:
        raise AgentLoadError(
            f"{path}: field policy.kwargs: a network of {parameters:,} parameters, above the "
            f"{MAX_PARAMETERS:,} mtenv loads"
        )
    weights = fields.object("weights")
    weights.text("file", (WEIGHTS_FILE,))
    size = weights.integer("bytes", 8, MAX_WEIGHTS_BYTES)
    digest = weights.text("sha256")
    return {
        "kind": kind,
        "algorithm": algorithm,
        "policy_class": cls,
        "policy_kwargs": built,
        "parameters": parameters,
        "hyperparameters": hyperparameters,
        "num_timesteps": steps,
        "selected_step": selected,
        "weights_bytes": size,
        "weights_sha256": digest,
    }


def _same_names(path: Path, name: str, saved: list[str], current: list[str]) -> None:
    detail = name_difference(saved, current)
    if detail is not None:
        raise AgentLoadError(f"{path}: field {name}: {detail}: trained for another scenario")


def _mlp_kwargs(kwargs: _Fields) -> dict[str, Any]:
    unknown = sorted(set(kwargs.data) - {"net_arch", "activation_fn", "share_features_extractor"})
    if unknown:
        kwargs.fail(unknown[0], "no such key for MlpPolicy", kwargs.data[unknown[0]])
    arch = kwargs.get("net_arch")
    if isinstance(arch, dict):
        if set(arch) != {"pi", "vf"}:
            kwargs.fail("net_arch", 'a list of widths or {"pi": [...], "vf": [...]}', arch)
        arch = {key: _widths(kwargs, f"net_arch.{key}", arch[key]) for key in ("pi", "vf")}
    else:
        arch = _widths(kwargs, "net_arch", arch)
    return {
        "net_arch": arch,
        "activation_fn": ACTIVATIONS[kwargs.text("activation_fn", tuple(sorted(ACTIVATIONS)))],
        "share_features_extractor": kwargs.flag("share_features_extractor"),
    }


def _widths(kwargs: _Fields, name: str, value: Any) -> list[int]:
    widths = kwargs.ints(name, value, MAX_LAYERS)
    if not all(1 <= w <= MAX_WIDTH for w in widths):
        kwargs.fail(name, f"layer widths in [1, {MAX_WIDTH}]", value)
    return widths


def _candidate_kwargs(kwargs: _Fields, env: gym.Env) -> dict[str, Any]:
    unknown = sorted(set(kwargs.data) - {"hidden", "indices"})
    if unknown:
        kwargs.fail(unknown[0], "no such key for CandidatePolicy", kwargs.data[unknown[0]])
    hidden = kwargs.integer("hidden", 1, MAX_WIDTH)
    indices = kwargs.get("indices")
    expected = layout_indices(ObservationLayout.of(env))
    if not isinstance(indices, dict) or set(indices) != set(_INDEX_KEYS):
        kwargs.fail("indices", f"an object with keys {list(_INDEX_KEYS)}", indices)
    for key in _INDEX_KEYS:
        if indices[key] != expected[key]:
            raise AgentLoadError(
                f"{kwargs.path}: field {kwargs.prefix}indices.{key}: not where this env's "
                "observation holds them: trained for another scenario"
            )
    return {"hidden": hidden, "indices": expected}


def _linear(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _mlp_parameters(n_obs: int, n_actions: int, arch: list[int] | dict[str, list[int]]) -> int:
    """Parameters of SB3's actor-critic MLP: the two towers and the two heads."""
    pi, vf = (arch["pi"], arch["vf"]) if isinstance(arch, dict) else (arch, arch)
    pi_sizes, vf_sizes = [n_obs, *pi], [n_obs, *vf]
    return (
        _linear(pi_sizes)
        + _linear(vf_sizes)
        + _linear([pi_sizes[-1], n_actions])
        + _linear([vf_sizes[-1], 1])
    )


def _candidate_parameters(hidden: int) -> int:
    """Parameters of :class:`~mtenv.agents.ppo.candidates.CandidateNetwork` and SB3's value
    head: they do not depend on the scenario."""
    return (
        _linear([N_CANDIDATE + N_CONTEXT, hidden, hidden])
        + _linear([hidden, 1])
        + _linear([N_CONTEXT, hidden, 1])
        + _linear([N_CONTEXT + 2 * hidden, hidden])
        + _linear([hidden, 1])
    )


def read_policy(folder: Path, kind: str, env: gym.Env) -> tuple[ActorCriticPolicy, dict]:
    """The policy saved in ``folder`` for an agent of ``kind`` acting on ``env``, in eval mode
    on the CPU, and its checked description (:func:`read_description`)."""
    description = read_description(folder, kind, env)
    path = Path(folder) / WEIGHTS_FILE
    size = check_size(path, MAX_WEIGHTS_BYTES)
    if size != description["weights_bytes"]:
        raise AgentLoadError(
            f"{path}: {size:,} bytes, {JSON_FILE} says {description['weights_bytes']:,}: "
            "not the weights saved with it"
        )
    data = path.read_bytes()[: MAX_WEIGHTS_BYTES + 1]
    if hashlib.sha256(data).hexdigest() != description["weights_sha256"]:
        raise AgentLoadError(
            f"{path}: its SHA-256 differs from the one in {JSON_FILE}: not the weights saved "
            "with it, or damaged"
        )
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: not the caller's
        policy = description["policy_class"](
            env.observation_space,
            env.action_space,
            lambda _: 0.0,
            ortho_init=False,
            **description["policy_kwargs"],
        )
    tensors = _read_tensors(path, data, policy.state_dict())
    policy.load_state_dict(tensors, strict=True)
    policy.set_training_mode(False)
    return policy, description


def _read_tensors(path: Path, data: bytes, expected: dict[str, torch.Tensor]) -> dict:
    """The tensors of the safetensors file ``data``, its header checked name by name against
    ``expected`` before any tensor is read."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8:
            raise ValueError(f"a header of {n:,} bytes in a file of {len(data):,}")
        header = json.loads(data[8 : 8 + n].decode("utf-8"), parse_constant=float)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        shapes = {
            name: (tuple(entry["shape"]), entry["dtype"])
            for name, entry in header.items()
            if name != "__metadata__"
        }
    except (struct.error, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise AgentLoadError(f"{path}: not a readable safetensors file ({exc})") from None
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing or extra:
        what = f"tensor {missing[0]} is missing" if missing else f"unexpected tensor {extra[0]}"
        raise AgentLoadError(f"{path}: {what}: not the network {JSON_FILE} describes")
    for name, tensor in expected.items():
        shape, dtype = shapes[name]
        if shape != tuple(tensor.shape) or dtype != "F32":
            raise AgentLoadError(
                f"{path}: tensor {name}: expected F32 {list(tensor.shape)}, got {dtype} "
                f"{list(shape)}"
            )
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise AgentLoadError(f"{path}: not a readable safetensors file ({exc})") from None
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise AgentLoadError(f"{path}: tensor {name}: expected finite numbers (NaN or inf)")
    return tensors
