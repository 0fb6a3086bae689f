"""What the ``mtenv`` command modules share: the exit statuses, :class:`CliError`, and the
checks of the ``--policy`` and ``--out`` values."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A user error: printed as one message, exit status 2."""


def policy_arg(spec: str, env: Any, seed: int | None) -> Any:
    """A baseline by name or a trained agent by run folder, as a ``--policy`` value."""
    from mtenv.agents.saved import resolve_policy

    try:
        return resolve_policy(spec, env, seed)
    except ValueError as exc:
        raise CliError(f"--policy: {exc}") from None


def out_dir_arg(out: str | None) -> str | None:
    """``--out`` checked before any work: an existing path must be a folder."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise CliError(f"--out: expected a folder, got the file {out!r}")
    return out


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
