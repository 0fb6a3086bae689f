"""Saving and loading zoo weights as safetensors (never pickle).

Each model's weights live in ``mtenv/zoo/weights/<name>.safetensors`` together with string
metadata: ``architecture`` (the zoo name), ``recipe`` (the training recipe as JSON) and
``format_version``. Loading checks the file against the architecture tensor by tensor, so a
missing, damaged or stale file fails with one message that names the file and the fix.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from mtenv.zoo.errors import ZooError
from mtenv.zoo.models import build_model, check_name

__all__ = [
    "FORMAT_VERSION",
    "RETRAIN_HINT",
    "ZooError",
    "atomic_path",
    "load_model",
    "load_weights",
    "read_metadata",
    "resolve_device",
    "save_weights",
    "weights_dir",
    "weights_path",
]

FORMAT_VERSION = "1"
"""Version of the weights file layout, stored as ``format_version`` metadata."""

RETRAIN_HINT = "run `mtenv zoo train` to regenerate the zoo weights"


def weights_dir() -> Path:
    """The package folder holding the shipped weights (``mtenv/zoo/weights``)."""
    return Path(str(files("mtenv.zoo").joinpath("weights")))


def weights_path(name: str) -> Path:
    """Path of the shipped weights file of zoo model ``name``."""
    return weights_dir() / f"{check_name(name)}.safetensors"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path`` atomically.

    On any error the temporary file is removed and ``path`` is left as it was, so a crash
    never leaves a half-written file. The result is made world-readable (``0o644``) like a
    normally created file, since package data must be readable by every user.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _canonical(data: bytes) -> bytes:
    """Rewrite a serialized safetensors file's header with sorted keys (same tensors, same data).

    safetensors writes the metadata in hash-map order, which changes from run to run; sorting
    makes a retrained file byte-identical to the shipped one, so retraining leaves git clean and
    a test can compare files. Offsets are untouched; the header stays padded to 8 bytes.
    """
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    ordered = {}
    if "__metadata__" in header:
        ordered["__metadata__"] = dict(sorted(header.pop("__metadata__").items()))
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


def save_weights(
    module: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str]
) -> Path:
    """Write ``module``'s state dict to ``path`` as safetensors with string ``metadata``.

    ``format_version`` is added. The bytes depend only on the tensors and the metadata. The
    file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a crash never leaves a half-written file.
    """
    path = Path(path)
    meta = {str(k): str(v) for k, v in metadata.items()}
    meta["format_version"] = FORMAT_VERSION
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical(save(tensors, metadata=meta)))
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (empty if it has none)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc}); {RETRAIN_HINT}") from exc


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse ``device``; raise :class:`ZooError` when CUDA is asked for but not available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ZooError(f"invalid device {device!r}: expected 'cpu' or 'cuda[:index]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {device!r} was asked for but CUDA is not available; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ZooError(f"unsupported device {device!r}: expected 'cpu' or 'cuda[:index]'")
    return dev


def load_model(
    name: str,
    device: str | torch.device = "cpu",
    path: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Digits model ``name`` with its trained weights, in eval mode, on ``device``.

    Weights come from ``path`` (default :func:`weights_path`), checked by :func:`load_weights`.
    Other zoos: :meth:`mtenv.zoo.Zoo.load`.
    """
    check_name(name)
    file = Path(path) if path is not None else weights_path(name)
    with torch.random.fork_rng(devices=[]):
        module = build_model(name)
    return load_weights(module, file, name, device=device, fix=RETRAIN_HINT)


def load_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    name: str,
    device: str | torch.device,
    fix: str,
) -> nn.Module:
    """``module`` (model ``name``) with the weights of safetensors file ``path``, in eval mode,
    on ``device``.

    Read with ``safetensors.torch.load_file`` (never pickle). Every tensor of the module's state
    dict must be present with the same shape and dtype, the file must hold no other tensor,
    and its ``architecture`` metadata, where present, must be ``name``; otherwise, or when the
    file is missing or unreadable, raise :class:`ZooError` naming the file and ``fix``.
    """
    dev = resolve_device(device)
    file = Path(path)
    if not file.is_file():
        raise ZooError(f"weights file {file} for model {name!r} does not exist; {fix}")
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        tensors = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"{file}: could not read weights for {name!r} ({exc}); {fix}") from exc
    arch = meta.get("architecture", name)
    if arch != name:
        raise ZooError(f"{file}: holds architecture {arch!r}, expected {name!r}; {fix}")
    expected = module.state_dict()
    for key, ref in expected.items():
        if key not in tensors:
            raise ZooError(f"{file} has no tensor {key!r} expected by {name!r}; {fix}")
        got = tensors[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise ZooError(
                f"{file}: tensor {key!r} is {got.dtype} {list(got.shape)}, expected "
                f"{ref.dtype} {list(ref.shape)} for {name!r}; {fix}"
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ZooError(f"{file}: unexpected tensors {extra} for {name!r}; {fix}")
    module.load_state_dict(tensors, strict=True)
    return module.to(dev).eval()
