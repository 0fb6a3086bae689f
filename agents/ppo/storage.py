"""The stable-baselines3 zips of the PPO learners: the run's checkpoints
(``checkpoints/step_<n>.zip``) and the ``agent.zip`` that run folders of older mtenv versions
hold instead of ``agent.json`` + ``agent.safetensors`` (:mod:`mtenv.agents.ppo.policy_files`).
Each is an SB3 zip with one member added, ``mtenv-agent.json``.

SB3 zips hold cloudpickled Python objects: **loading one runs code from the file.** mtenv
loads them only to resume training (``mtenv train --resume``) and, for an ``agent.zip``, when
asked to trust it (``--trust-pickle``, ``trust_pickle=True``). ``mtenv-agent.json`` is plain
JSON (:class:`AgentMeta`): the agent's kind, the spaces and the env descriptions it was trained
for, its hyperparameters and its env steps, so that a file of another kind, or one trained for
an env with different spaces, is refused before anything in it is unpickled. A zip above
:data:`~mtenv.agents.limits.MAX_ZIP_BYTES` is refused unread.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from mtenv.agents.interfaces import AgentLoadError
from mtenv.agents.limits import MAX_ZIP_BYTES, check_size

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

ZIP_FILE = "agent.zip"
"""The saved agent of run folders written before agents were saved without pickle."""
JSON_FILE = "agent.json"
WEIGHTS_FILE = "agent.safetensors"
"""The saved agent now: its description and its weights (:mod:`mtenv.agents.ppo.policy_files`)."""
META_MEMBER = "mtenv-agent.json"
"""The zip member with the agent's kind and the spaces it was trained for (plain JSON)."""
FORMAT = "mtenv-sb3-agent"
FORMAT_VERSION = 1
CHECKPOINT_PREFIX = "step_"
KEEP_CHECKPOINTS = 3


@dataclass(frozen=True)
class AgentMeta:
    """What ``mtenv-agent.json`` records: enough to refuse a file before unpickling it."""

    kind: str
    observation_shape: tuple[int, ...]
    n_actions: int
    feature_names: list[str] | None
    action_labels: list[str] | None
    hyperparameters: dict[str, Any]
    num_timesteps: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "observation_shape": list(self.observation_shape),
                "n_actions": self.n_actions,
                "feature_names": self.feature_names,
                "action_labels": self.action_labels,
                "hyperparameters": self.hyperparameters,
                "num_timesteps": self.num_timesteps,
            },
            indent=1,
            default=repr,
        )

    @classmethod
    def read(cls, path: Path) -> AgentMeta:
        """The metadata of the zip at ``path``; :class:`AgentLoadError` naming the file when it
        is missing, not a zip, or not an mtenv agent."""
        if not path.is_file():
            raise AgentLoadError(f"{path}: no such file (expected a saved agent, {ZIP_FILE})")
        check_size(path, MAX_ZIP_BYTES)
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                broken = archive.testzip()
                raw = archive.read(META_MEMBER) if META_MEMBER in names else None
        except (zipfile.BadZipFile, EOFError) as error:
            raise AgentLoadError(f"{path}: not a zip file, or a corrupted one ({error})") from None
        except (OSError, zipfile.LargeZipFile, RuntimeError) as error:
            raise AgentLoadError(f"{path}: cannot read it ({error})") from None
        if broken is not None:
            raise AgentLoadError(f"{path}: corrupted ({broken} fails its checksum)")
        if raw is None:
            if "data" in names:
                raise AgentLoadError(
                    f"{path}: a stable-baselines3 zip without {META_MEMBER}: not saved by mtenv"
                )
            # A truncated SB3 zip can read as the torch archive stored inside it.
            raise AgentLoadError(
                f"{path}: not a saved agent, or a corrupted one (no {META_MEMBER}, no SB3 data)"
            )
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}"
                )
            return cls(
                kind=str(data["kind"]),
                observation_shape=tuple(int(n) for n in data["observation_shape"]),
                n_actions=int(data["n_actions"]),
                feature_names=data.get("feature_names"),
                action_labels=data.get("action_labels"),
                hyperparameters=dict(data["hyperparameters"]),
                num_timesteps=int(data["num_timesteps"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise AgentLoadError(f"{path}: {META_MEMBER} is not valid ({error})") from None


def zip_refusal(folder: Path) -> str | None:
    """Why ``folder``'s agent is not loaded without ``trust_pickle``: it is an SB3 zip only
    (``None`` when the folder has an ``agent.json``, or no ``agent.zip``)."""
    folder = Path(folder)
    if (folder / JSON_FILE).exists() or not (folder / ZIP_FILE).exists():
        return None
    return (
        f"{folder / ZIP_FILE}: a stable-baselines3 zip, which runs code when loaded, and no "
        f"{JSON_FILE}: load it only if you trust it, with --trust-pickle (trust_pickle=True); "
        "`mtenv train ... --resume` on the run re-saves it without pickle"
    )


def env_descriptions(env: gym.Env) -> tuple[list[str] | None, list[str] | None]:
    """The env's feature names and action labels, where it has them."""
    base = env.unwrapped
    names = getattr(base, "feature_names", None)
    labels = getattr(base, "action_labels", None)
    return (None if names is None else list(names), None if labels is None else list(labels))


def check_compatible(meta: AgentMeta, env: gym.Env, path: Path) -> None:
    """:class:`AgentLoadError` naming the field and both values if ``env`` is not the kind of
    env the agent was trained on."""
    shape = tuple(env.observation_space.shape or ())
    if meta.observation_shape != shape:
        raise AgentLoadError(
            f"{path}: observation shape {meta.observation_shape} in the file, {shape} in the env: "
            "trained for another scenario"
        )
    n_actions = int(env.action_space.n)
    if meta.n_actions != n_actions:
        raise AgentLoadError(
            f"{path}: action count {meta.n_actions} in the file, {n_actions} in the env: "
            "trained for another scenario"
        )
    names, labels = env_descriptions(env)
    for field_name, saved, current in (
        ("feature_names", meta.feature_names, names),
        ("action_labels", meta.action_labels, labels),
    ):
        if saved is None or current is None or saved == current:
            continue
        at = next(i for i, (a, b) in enumerate(zip(saved, current, strict=False)) if a != b)
        raise AgentLoadError(
            f"{path}: {field_name}[{at}] is {saved[at]!r} in the file, {current[at]!r} in the "
            "env: trained for another scenario"
        )


def write_zip(model: BaseAlgorithm, meta: AgentMeta, path: Path) -> None:
    """The SB3 zip plus ``mtenv-agent.json``, written to a temporary name and renamed into
    place, so that a kill never leaves a half-written file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        model.save(out)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(META_MEMBER, meta.to_json())
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the finished checkpoints in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob(f"{CHECKPOINT_PREFIX}*.zip"):
        step = path.stem[len(CHECKPOINT_PREFIX) :]
        if step.isdigit():
            found.append((int(step), path))
    return sorted(found)
