"""The zoo's architectures and their profiles (parameters, FLOPs, weight bytes).

Four digit classifiers of clearly different capacity, all mapping ``[B, 1, 8, 8]`` to logits
``[B, 10]``. The profile of each (:class:`ModelStats`) is measured from the real module, never
typed, so it cannot drift from the architecture: the simulator turns FLOPs and weight bytes into
latency and load time.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mtenv.zoo.errors import ZooError

__all__ = ["INPUT_SHAPE", "MODEL_NAMES", "ModelStats", "build_model", "model_stats"]

INPUT_SHAPE = (1, 8, 8)
"""Shape of one input (channels, height, width)."""


def _linear() -> nn.Module:
    """Multinomial logistic regression on the 64 pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def _mlp() -> nn.Module:
    """One hidden layer of 64 ReLU units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _cnn_small() -> nn.Module:
    """Two narrow 3×3 conv layers (16 and 32 channels) with max pooling, then a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4×4
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 2×2
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


def _cnn_wide() -> nn.Module:
    """Three wide 3×3 conv layers (32, 64, 96 channels) and a two-layer head."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4×4
        nn.Conv2d(64, 96, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 2×2
        nn.Flatten(),
        nn.Linear(96 * 2 * 2, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "linear": _linear,
    "mlp": _mlp,
    "cnn_small": _cnn_small,
    "cnn_wide": _cnn_wide,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)
"""Every zoo model, smallest capacity first."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a zoo model, else raise :class:`ZooError` suggesting one."""
    if name in _BUILDERS:
        return name
    close = difflib.get_close_matches(str(name), MODEL_NAMES, n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ZooError(f"unknown model {name!r}: known models are {', '.join(MODEL_NAMES)}{hint}")


def build_model(name: str) -> nn.Module:
    """A freshly initialised (untrained) module for zoo model ``name``.

    Initialisation draws from torch's global RNG; seed it (or use ``torch.random.fork_rng``)
    for reproducible weights. Use :func:`mtenv.zoo.load_model` for the trained model.
    """
    return _BUILDERS[check_name(name)]()


@dataclass(frozen=True)
class ModelStats:
    """Static profile of one zoo model, measured from the module itself."""

    name: str
    """Zoo name, one of :data:`MODEL_NAMES`."""
    params: int
    """Number of parameters (sum of ``numel``)."""
    flops: int
    """FLOPs per sample: 2 × multiply-accumulates of every Linear and Conv2d layer."""
    weight_bytes: int
    """Bytes of all parameters and buffers (what a device must load and hold)."""
    layers: int
    """Number of Linear and Conv2d modules."""
    task_types: tuple[str, ...] = ("classify",)
    """Task types this model serves."""


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates per sample of one Linear / Conv2d call producing ``output``."""
    if isinstance(module, nn.Linear):
        return module.in_features * (output.numel() // output.shape[0])
    assert isinstance(module, nn.Conv2d)
    kh, kw = module.kernel_size
    per_output = (module.in_channels // module.groups) * kh * kw
    return per_output * (output.numel() // output.shape[0])


def count_flops(module: nn.Module) -> int:
    """FLOPs per sample of ``module`` (2 × MACs of Linear / Conv2d), by hooks on a dummy input."""
    total = 0

    def hook(mod: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * _macs(mod, output)

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    try:
        with torch.no_grad():
            module(torch.zeros((1, *INPUT_SHAPE)))
    finally:
        for handle in handles:
            handle.remove()
    return total


@functools.cache
def model_stats(name: str) -> ModelStats:
    """The :class:`ModelStats` of zoo model ``name``, measured on a fresh module. Cached.

    Building the module does not disturb torch's global RNG (it runs under ``fork_rng``).
    """
    with torch.random.fork_rng(devices=[]):
        module = build_model(name)
    tensors = [*module.parameters(), *module.buffers()]
    return ModelStats(
        name=name,
        params=sum(p.numel() for p in module.parameters()),
        flops=count_flops(module),
        weight_bytes=sum(t.numel() * t.element_size() for t in tensors),
        layers=sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in module.modules()),
    )
