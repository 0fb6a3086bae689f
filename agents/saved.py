"""Loading trained agents, and naming any policy (a baseline or a run folder) in one place."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

from mtenv.agents.interfaces import AgentLoadError, Learner, Policy, name_difference
from mtenv.agents.training import MANIFEST, learner_class, read_manifest


def load_agent(folder: str | Path, env: gym.Env, trust_pickle: bool = False) -> Learner:
    """The agent trained into ``folder`` (by ``mtenv train``), ready to act on ``env``.

    Checks the manifest's format, version and fields, that training finished, and that ``env``
    has the observation features and actions the agent was trained on; then the learner checks
    its own files. Any problem raises :class:`AgentLoadError` naming the file and the field.
    Saved agents load without pickle (``agent.npz``; ``agent.json`` + ``agent.safetensors``).
    A PPO run folder of an older mtenv holding only an SB3 ``agent.zip``, which runs code when
    loaded, is refused unless ``trust_pickle``.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = folder / MANIFEST
    if not manifest.get("complete", False):
        raise AgentLoadError(
            f"{path}: complete: training stopped at step {manifest.get('steps_done', 0)} of "
            f"{manifest.get('total_steps')}; finish it with `mtenv train ... --resume`"
        )
    unwrapped = env.unwrapped
    for key, expected in (
        ("feature_names", list(unwrapped.feature_names)),
        ("action_labels", list(unwrapped.action_labels)),
    ):
        _check_same(path, key, manifest.get(key), expected, unwrapped.scenario.name)
    try:
        cls = learner_class(manifest["agent"])
    except ValueError as exc:
        raise AgentLoadError(f"{path}: agent: {exc}") from None
    if manifest["agent"] in ("ppo", "maskable-ppo"):
        return cls.load(folder, env, trust_pickle=trust_pickle)  # type: ignore[call-arg]
    return cls.load(folder, env)


def _check_same(path: Path, key: str, saved: object, expected: list[str], scenario: str) -> None:
    if not isinstance(saved, list):
        raise AgentLoadError(f"{path}: {key}: expected a list of names")
    detail = name_difference(saved, expected)
    if detail is not None:
        raise AgentLoadError(
            f"{path}: {key}: the agent was trained on another scenario than {scenario!r} ({detail})"
        )


def refuse_pickled_agent(folder: str | Path) -> None:
    """:class:`AgentLoadError` when the run folder's agent is an SB3 ``agent.zip`` only (what
    :func:`load_agent` refuses without ``trust_pickle``): a check to make before any work."""
    from mtenv.agents.ppo.storage import zip_refusal

    refusal = zip_refusal(Path(folder))
    if refusal is not None:
        raise AgentLoadError(refusal)


def is_run_folder(spec: str | Path) -> bool:
    """Whether a ``--policy`` value names a training run folder rather than a baseline."""
    return Path(spec).is_dir()


def resolve_policy(
    spec: str, env: gym.Env, seed: int | None = None, trust_pickle: bool = False
) -> Policy:
    """A baseline by name (``"round-robin"``) or a trained agent by run folder (an SB3
    ``agent.zip`` only with ``trust_pickle``, see :func:`load_agent`)."""
    if is_run_folder(spec):
        return load_agent(spec, env, trust_pickle=trust_pickle)
    from mtenv.agents.policies import make_policy

    return make_policy(spec, env, seed)
