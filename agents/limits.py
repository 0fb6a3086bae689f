"""Size caps on the files mtenv reads from run folders, checked before a byte is read, and
strict reading of their JSON.

A run folder may come from anyone: every file a load reads is first checked against a cap far
above what training writes (the largest shipped scenario's manifest is about 40 KB, its
agents' weights a few MB), so a huge or endless file is refused by its size alone.

=====================  =================================  ========
file                   what                               cap
=====================  =================================  ========
``manifest.json``      a run's manifest                   4 MiB
``agent.json``         a PPO agent's description          4 MiB
``agent.safetensors``  a PPO agent's weights              64 MiB
``agent.npz``          a tabular agent                    256 MiB
``agent.zip``          an SB3 zip (checkpoints, old runs) 256 MiB
=====================  =================================  ========
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtenv.agents.interfaces import AgentLoadError

MiB = 2**20
MAX_JSON_BYTES = 4 * MiB
MAX_WEIGHTS_BYTES = 64 * MiB
MAX_NPZ_BYTES = 256 * MiB
MAX_ZIP_BYTES = 256 * MiB


def check_size(path: Path, limit: int) -> int:
    """The size of the file at ``path``; :class:`AgentLoadError` naming the file when it is
    missing, not a regular file, or larger than ``limit`` bytes."""
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        raise AgentLoadError(f"{path}: no such file") from None
    except OSError as exc:
        raise AgentLoadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not Path(path).is_file():
        raise AgentLoadError(f"{path}: expected a file")
    if size > limit:
        raise AgentLoadError(
            f"{path}: {size:,} bytes, above the {limit // MiB} MiB mtenv reads for this file; "
            "refusing to read it"
        )
    return size


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in the file at ``path``, read only when it is at most ``limit`` bytes;
    ``NaN`` and ``Infinity`` are refused. Errors are one :class:`AgentLoadError` line naming
    the file."""
    check_size(path, limit)
    try:
        text = Path(path).read_bytes()[: limit + 1].decode("utf-8")
        return json.loads(text, parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise AgentLoadError(f"{path}: unreadable ({detail})") from None
