"""``manifest.json``: what a sweep folder was made by, enough to cite it and to run it again.

Written atomically (a temporary file renamed over it) when a sweep starts and again when it
ends, it holds:

* ``argv``: the exact arguments of ``mtenv bench`` and ``cwd``, the folder it ran in;
* ``resolved``: the sweep as checked (:meth:`~mtenv.tools.bench.sweep.Sweep.resolved`: every
  scenario, policy, learner and budget, seeds, episodes, reference, suite; files and run
  folders with their absolute paths), the backend and its workers, and ``out``;
* ``versions`` (Python and packages), ``git`` (the checkout's revision and whether it had
  uncommitted changes, when mtenv runs from a git checkout), ``scenario_hashes`` (each
  scenario's ``sha256:`` as its records carry it), ``seeds`` (0 … N−1) and ``eval_seeds`` (the
  rule giving each episode's env seed);
* ``machine``: platform, CPU model, cores;
* ``started`` / ``finished`` (UTC) and ``status`` (``running``, ``finished``, ``failed``,
  ``interrupted``).

``mtenv bench --from-manifest FILE`` runs the sweep of ``resolved`` again.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mtenv.tools.cli_common import CliError

MANIFEST = "manifest.json"
FORMAT = "mtenv-bench"
FORMAT_VERSION = 1


def build_manifest(
    argv: list[str],
    resolved: dict[str, Any],
    scenario_hashes: dict[str, str],
    eval_seed: int,
) -> dict[str, Any]:
    """A new manifest (``status`` ``running``)."""
    from mtenv.agents.training import package_versions

    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "argv": list(argv),
        "cwd": os.getcwd(),
        "resolved": resolved,
        "versions": package_versions(),
        "git": git_revision(),
        "scenario_hashes": scenario_hashes,
        "seeds": list(range(int(resolved["seeds"]))),
        "eval_seeds": f"{eval_seed} + 1000 * seed + episode",
        "machine": machine(),
        "started": _now(),
        "finished": None,
        "status": "running",
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """Write ``out/manifest.json`` through a temporary file and a rename."""
    path = Path(out) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def finish_manifest(out: Path, manifest: dict[str, Any], status: str) -> None:
    manifest.update(finished=_now(), status=status)
    write_manifest(out, manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    """A sweep manifest (a folder means its ``manifest.json``), checked for format."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path}: not found; expected a manifest.json of `mtenv bench`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CliError(f"{path}: format: expected {FORMAT!r} (a manifest of `mtenv bench`)")
    if manifest.get("version") != FORMAT_VERSION:
        raise CliError(
            f"{path}: version: expected {FORMAT_VERSION}, got {manifest.get('version')!r}"
        )
    if not isinstance(manifest.get("resolved"), dict):
        raise CliError(f"{path}: resolved: missing")
    return manifest


def git_revision() -> dict[str, Any] | None:
    """``{"revision", "dirty"}`` of the git checkout mtenv runs from; ``None`` elsewhere (an
    installed wheel) or without git."""
    import mtenv

    root = Path(mtenv.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": head, "dirty": bool(status.strip())}


def machine() -> dict[str, Any]:
    """Platform, CPU model and core count of this machine."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
