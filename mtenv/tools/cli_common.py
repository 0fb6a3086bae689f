"""What the ``mtenv`` command modules share: the exit statuses, :class:`CliError`, SIGTERM
handled as Ctrl-C, and the checks of the ``--policy``, ``--seed`` and output path values, made
before any work starts."""

from __future__ import annotations

import argparse
import contextlib
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A user error: printed as one message, exit status 2."""


@contextlib.contextmanager
def terminate_like_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM (``kill``, ``timeout``, a batch scheduler's preemption) raises
    :class:`KeyboardInterrupt` in the main thread, so a command stops as it does on Ctrl-C: its
    worker processes ended, its finished work kept, the ``--resume`` hint printed. Killed
    outright instead, a sweep would leave its pool workers running, still writing into the
    folder a resumed sweep then shares with them."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def policy_arg(spec: str, env: Any, seed: int | None, trust_pickle: bool = False) -> Any:
    """A baseline by name or a trained agent by run folder, as a ``--policy`` value; an SB3
    ``agent.zip`` (which runs code when loaded) only with ``trust_pickle`` (``--trust-pickle``)."""
    from mtenv.agents.saved import resolve_policy

    try:
        return resolve_policy(spec, env, seed, trust_pickle=trust_pickle)
    except ValueError as exc:
        raise CliError(f"--policy: {exc}") from None


def out_dir_arg(out: str | None, flag: str = "--out") -> str | None:
    """An output folder checked before any work: an existing path must be a folder, and the
    folder (or the nearest one above it that exists, where it will be created) must take new
    files."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise CliError(f"{flag}: expected a folder, got the file {out!r}")
        existing = next(p for p in (path, *path.parents) if p.exists())
        _check_writable(existing, flag, out)
    return out


def out_file_arg(out: str, flag: str = "--out") -> Path:
    """An output file checked before any work: not a folder, in an existing folder that takes
    new files."""
    path = Path(out)
    if path.is_dir():
        raise CliError(f"{flag}: expected a file, got the folder {out!r}")
    if not path.parent.is_dir():
        raise CliError(f"{flag}: no such folder {str(path.parent)!r} for {out!r}")
    _check_writable(path.parent, flag, out)
    return path


def _check_writable(folder: Path, flag: str, shown: str) -> None:
    """Create and remove a file in ``folder``: the one test that holds for every user
    (permissions, read-only and virtual file systems alike)."""
    if not folder.is_dir():
        raise CliError(f"{flag}: {str(folder)!r} is not a folder, so {shown!r} cannot be written")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CliError(f"{flag}: cannot write in {str(folder)!r} ({reason})") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (seeds)."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
