"""The ``.npz`` files of the tabular learners: the saved agent (``agent.npz``) and the run's
checkpoint (``checkpoints/tabular.npz``), their fields and checks, and writing them atomically.

An agent file holds, without pickle (numbers, strings and JSON strings only), a format marker
and version, the kind, Q, visit counts, the discretiser's configuration, the hyperparameters,
the env's feature names and action labels, and the steps trained. A checkpoint holds the same
fields plus the run's seed and the exploration generator's state. Reading checks every field
and raises :class:`~mtenv.agents.interfaces.AgentLoadError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtenv.agents.interfaces import AgentLoadError, name_difference
from mtenv.agents.limits import MAX_NPZ_BYTES, check_size

FORMAT = "mtenv-tabular"
FORMAT_VERSION = 1
AGENT_FILE = "agent.npz"
CHECKPOINT_FILE = "tabular.npz"


# field -> (dtype kind(s), ndim): "U" unicode, "i" signed integer, "f" float
AGENT_FIELDS: dict[str, tuple[str, int]] = {
    "format": ("U", 0),
    "version": ("i", 0),
    "kind": ("U", 0),
    "q": ("f", 2),
    "visits": ("i", 2),
    "discretiser": ("U", 0),
    "hyperparameters": ("U", 0),
    "feature_names": ("U", 1),
    "action_labels": ("U", 1),
    "steps": ("i", 0),
    "episodes": ("i", 0),
}
CHECKPOINT_FIELDS = {**AGENT_FIELDS, "run_seed": ("i", 0), "rng_state": ("U", 0)}
_DTYPE_WORDS = {"U": "a string", "i": "an integer", "f": "a float"}


def write_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    """Write an ``.npz`` through a temporary file in the same folder and ``os.replace``, so that
    a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            (np.savez_compressed if compress else np.savez)(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_fields(path: Path, expected: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """Every expected field of an ``.npz`` (read without pickle), with its dtype and rank
    checked, and the format marker and version; a file above
    :data:`~mtenv.agents.limits.MAX_NPZ_BYTES` is refused unread."""
    if not path.is_file():
        raise AgentLoadError(f"{path}: no such file; expected a saved tabular agent")
    check_size(path, MAX_NPZ_BYTES)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise AgentLoadError(f"{path}: expected an .npz archive, got a single .npy array")
        with archive:
            _check_expanded_size(path, archive.zip)
            fields = {name: archive[name] for name in archive.files if name in expected}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise AgentLoadError(f"{path}: not a readable .npz archive ({exc})") from None
    if "format" in fields and str(fields["format"]) != FORMAT:
        raise AgentLoadError(
            f"{path}: field 'format': expected {FORMAT!r}, got {str(fields['format'])!r}"
        )
    for name, (kind, ndim) in expected.items():
        if name not in fields:
            raise AgentLoadError(
                f"{path}: field '{name}' is missing; expected a tabular agent saved by mtenv"
            )
        array = fields[name]
        if array.dtype.kind != kind or array.ndim != ndim:
            shape = "a scalar" if ndim == 0 else f"a {ndim}-d array"
            raise AgentLoadError(
                f"{path}: field '{name}': expected {shape} of {_DTYPE_WORDS[kind]}s, "
                f"got dtype {array.dtype} with shape {array.shape}"
            )
    if int(fields["version"]) != FORMAT_VERSION:
        raise AgentLoadError(
            f"{path}: field 'version': expected {FORMAT_VERSION}, got {int(fields['version'])}"
        )
    return fields


def _check_expanded_size(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse an archive whose members would expand past the file cap once decompressed (a
    small file can hold a huge, highly compressible array), before any member is read. Zip
    readers stop at the size a member declares, so the declared sizes bound what is read."""
    expanded = sum(info.file_size for info in archive.infolist())
    if expanded > MAX_NPZ_BYTES:
        raise AgentLoadError(
            f"{path}: its arrays would take {expanded:,} bytes once decompressed; expected at "
            f"most {MAX_NPZ_BYTES:,} (mtenv.agents.limits.MAX_NPZ_BYTES)"
        )


def json_field(path: Path, fields: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    """The JSON object stored in the string field ``name``."""
    try:
        value = json.loads(str(fields[name]))
    except ValueError as exc:
        raise AgentLoadError(f"{path}: field '{name}': expected a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise AgentLoadError(f"{path}: field '{name}': expected a JSON object, got {value!r}")
    return value


def check_kind(
    path: Path, fields: dict[str, np.ndarray], kind: str, known: Mapping[str, type]
) -> None:
    """The file's ``kind`` is ``kind``; else the error names the class in ``known`` that reads
    it."""
    saved = str(fields["kind"])
    if saved != kind:
        hint = ""
        if saved in known:
            hint = f"; load it with {known[saved].__name__}"
        raise AgentLoadError(f"{path}: field 'kind': expected {kind!r}, got {saved!r}{hint}")


def check_names(
    path: Path, fields: dict[str, np.ndarray], name: str, expected: list[str], what: str
) -> None:
    """The names stored in field ``name`` are ``expected`` (the env's ``what``)."""
    detail = name_difference([str(x) for x in fields[name]], expected)
    if detail is None:
        return
    raise AgentLoadError(
        f"{path}: field '{name}': the agent was trained on an env with other {what} ({detail})"
    )
