"""The zoo's architectures and their profiles (parameters, FLOPs, weight bytes, task types).

* Four digit classifiers of clearly different capacity (``linear``, ``mlp``, ``cnn_small``,
  ``cnn_wide``), mapping ``[B, 1, 8, 8]`` to logits ``[B, 10]``.
* Two distilled students (``mlp_kd``, ``mlp_mse``): the ``mlp`` architecture trained from the
  softened outputs of ``cnn_wide`` (see :mod:`mtenv.zoo.train`).
* Two localizers (``loc_linear``, ``loc_cnn``), mapping canvases ``[B, 1, 16, 16]`` to logits
  over the 9 grid cells ``[B, 9]``.
* One shared-trunk multi-task model (``multitask``, a :class:`MultiTaskNet`): the trunk runs
  once on a canvas, then a cheap head per task type.
* A second strong classifier of another design (``cnn_deep``): circular padding at full
  resolution and global pooling make it blind to the wrap-around shifts of the corruption, so
  its mistakes differ from ``cnn_wide``'s and the mean of the two beats either on the hardest
  inputs.

The profile of each (:class:`ModelStats`) is measured from the real module, never typed, so it
cannot drift from the architecture: the simulator turns FLOPs and weight bytes into latency and
load time, and for a multi-task model prices the trunk and each head separately.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mtenv.messages import unknown_name
from mtenv.zoo.data import CANVAS_SIZE, to_canvas
from mtenv.zoo.errors import ZooError
from mtenv.zoo.task_types import INPUT_SHAPES, N_CLASSES, TASK_TYPES

__all__ = [
    "INPUT_SHAPE",
    "MODEL_NAMES",
    "ModelStats",
    "MultiTaskNet",
    "architecture_of",
    "build_model",
    "count_flops",
    "measure_stats",
    "model_stats",
    "task_logits",
]

INPUT_SHAPE = INPUT_SHAPES["classify"]
"""Shape of one classify input (channels, height, width); other task types: ``INPUT_SHAPES``."""


def _linear() -> nn.Module:
    """Multinomial logistic regression on the 64 pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def _mlp() -> nn.Module:
    """One hidden layer of 64 ReLU units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _narrow_convs() -> list[nn.Module]:
    """Two narrow 3×3 conv layers (16 and 32 channels), each followed by 2×2 max pooling."""
    return [
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]


def _cnn_small() -> nn.Module:
    """Two narrow 3×3 conv layers (16 and 32 channels) with max pooling, then a linear head."""
    return nn.Sequential(
        *_narrow_convs(),  # 8×8 → 2×2
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


class _GlobalMaxMeanPool(nn.Module):
    """``[B, C, H, W]`` → ``[B, 2C]``: each channel's maximum over the map, then its mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


def _circular_conv(
    in_channels: int, out_channels: int, kernel: int = 3, dilation: int = 1
) -> nn.Conv2d:
    """A same-size conv whose padding wraps around the borders (the map is a torus)."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel,
        padding=dilation * (kernel // 2),
        dilation=dilation,
        padding_mode="circular",
    )


def _cnn_deep() -> nn.Module:
    """Four conv layers (a 5×5 with 32 channels, 3×3s with 32 and 48, a 3×3 dilated by 2 with 64)
    on the full 8×8 map with circular padding, then global max and mean pooling and a linear head.

    The corruption shifts digits by rolling them (wrapping around, see
    :class:`~mtenv.zoo.data.Corruption`). Circular convolutions commute with a roll and global
    pooling forgets where a feature is, so this model's output is the same for every roll of an
    image: the shifts that make ``cnn_wide`` (zero padding, max pooling, a head over a 2×2 map)
    fail cost it nothing, while its receptive field (the whole 8×8 torus) still sees the digit's
    shape. Different inductive biases give different mistakes, which is what ensembles need.
    """
    return nn.Sequential(
        _circular_conv(1, 32, kernel=5),
        nn.ReLU(),
        _circular_conv(32, 32),
        nn.ReLU(),
        _circular_conv(32, 48),
        nn.ReLU(),
        _circular_conv(48, 64, dilation=2),
        nn.ReLU(),
        _GlobalMaxMeanPool(),
        nn.Linear(2 * 64, 10),
    )


def _loc_linear() -> nn.Module:
    """Multinomial logistic regression from the 256 canvas pixels to the 9 grid cells."""
    return nn.Sequential(nn.Flatten(), nn.Linear(CANVAS_SIZE * CANVAS_SIZE, N_CLASSES["localize"]))


def _loc_cnn() -> nn.Module:
    """Two narrow 3×3 conv layers (16 and 32 channels) with max pooling on the canvas, then a
    linear head over the 4×4 map (position survives pooling as the map's layout)."""
    return nn.Sequential(
        *_narrow_convs(),  # 16×16 → 4×4
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, N_CLASSES["localize"]),
    )


class MultiTaskNet(nn.Module):
    """A shared trunk and one head per task type.

    The trunk runs once per input whatever the task; each head maps the trunk's features to the
    logits of its task type. A simulator (or a plan serving a mixed batch) can run
    :meth:`trunk` once and :meth:`forward_heads` per task type, and price them separately
    (:attr:`ModelStats.trunk_flops`, :attr:`ModelStats.head_flops`).

    Args:
        backbone: the trunk's layers, mapping a batch of inputs to features ``[B, F]``.
        heads: task type → head mapping features to logits ``[B, n_classes]``.
        prepare: maps a batch of any task type's inputs to the trunk's input shape (so that a
            batch mixing task types can be stacked); ``None`` when all take the same inputs.
            Called by :meth:`trunk`; a plain function (not a module: it holds no weights).
    """

    def __init__(
        self,
        backbone: nn.Module,
        heads: Mapping[str, nn.Module],
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        self.prepare = prepare if prepare is not None else _same

    @property
    def task_types(self) -> tuple[str, ...]:
        """The task types this model has a head for, in head order."""
        return tuple(self.heads)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F]`` of inputs ``x`` (of any task type: :attr:`prepare` maps them to
        the trunk's input first)."""
        return self.backbone(self.prepare(x))

    def forward_heads(self, features: torch.Tensor, task_type: str) -> torch.Tensor:
        """Logits of head ``task_type`` on trunk ``features``."""
        if task_type not in self.heads:
            raise no_such_head(task_type, self.task_types)
        return self.heads[task_type](features)

    def forward(self, x: torch.Tensor, task_type: str) -> torch.Tensor:
        """Logits for ``task_type``: ``forward_heads(trunk(x), task_type)``."""
        return self.forward_heads(self.trunk(x), task_type)


def no_such_head(task_type: str, heads: Iterable[str]) -> ZooError:
    """The error for a multi-task model asked for a task type it has no head for."""
    return ZooError(f"this MultiTaskNet has no {task_type!r} head: it has {tuple(heads)}")


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def _digit_canvas(x: torch.Tensor) -> torch.Tensor:
    """The digits multi-task trunk's input: canvases ``[B, 1, 16, 16]`` as they are, classify
    inputs ``[B, 1, 8, 8]`` placed at the canvas centre by :func:`to_canvas` (so every task
    type's pool can be fed as is)."""
    if x.ndim == 4 and tuple(x.shape[-2:]) == INPUT_SHAPES["classify"][1:]:
        x = to_canvas(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != INPUT_SHAPES["localize"]:
        raise ZooError(
            f"MultiTaskNet expects inputs [B, 1, 8, 8] or [B, 1, 16, 16], got {list(x.shape)}"
        )
    return x


def _multitask() -> nn.Module:
    """Trunk: three 3×3 conv layers (16, 32, 64 channels), pooling to a 4×4 map that keeps the
    layout (localize needs it), flattened to 1024 features. Heads: a 64-unit MLP for the digit,
    a linear layer for the cell."""
    backbone = nn.Sequential(
        *_narrow_convs(),  # 16×16 → 4×4
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    features = 64 * 4 * 4
    heads = {
        "classify": nn.Sequential(
            nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, N_CLASSES["classify"])
        ),
        "localize": nn.Sequential(nn.Linear(features, N_CLASSES["localize"])),
    }
    return MultiTaskNet(backbone, heads, prepare=_digit_canvas)


@dataclass(frozen=True)
class _Entry:
    """How to build one zoo model and what it serves."""

    build: Callable[[], nn.Module]
    task_types: tuple[str, ...]
    architecture: str
    """Name of the architecture (models sharing it have identical modules, e.g. students)."""


_ZOO: dict[str, _Entry] = {
    "linear": _Entry(_linear, ("classify",), "linear"),
    "mlp": _Entry(_mlp, ("classify",), "mlp"),
    "cnn_small": _Entry(_cnn_small, ("classify",), "cnn_small"),
    "cnn_wide": _Entry(_cnn_wide, ("classify",), "cnn_wide"),
    "mlp_kd": _Entry(_mlp, ("classify",), "mlp"),
    "mlp_mse": _Entry(_mlp, ("classify",), "mlp"),
    "loc_linear": _Entry(_loc_linear, ("localize",), "loc_linear"),
    "loc_cnn": _Entry(_loc_cnn, ("localize",), "loc_cnn"),
    "multitask": _Entry(_multitask, TASK_TYPES, "multitask"),
    "cnn_deep": _Entry(_cnn_deep, ("classify",), "cnn_deep"),
}

MODEL_NAMES: tuple[str, ...] = tuple(_ZOO)
"""Every zoo model: the four classifiers smallest capacity first, then the distilled students,
the localizers, the multi-task model and ``cnn_deep`` (added last, so the older models keep
their places)."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a zoo model, else raise :class:`ZooError` suggesting one."""
    if name in _ZOO:
        return name
    raise ZooError(unknown_name("model", name, MODEL_NAMES))


def build_model(name: str) -> nn.Module:
    """A freshly initialised (untrained) module for zoo model ``name``.

    Initialisation draws from torch's global RNG; seed it (or use ``torch.random.fork_rng``)
    for reproducible weights. Use :func:`mtenv.zoo.load_model` for the trained model.
    """
    return _ZOO[check_name(name)].build()


def architecture_of(name: str) -> str:
    """The architecture zoo model ``name`` is built with (``"mlp"`` for ``mlp``, ``mlp_kd`` and
    ``mlp_mse``: same modules, different training)."""
    return _ZOO[check_name(name)].architecture


def task_logits(model: nn.Module, inputs: torch.Tensor, task_type: str) -> torch.Tensor:
    """Logits of ``model`` on a batch of ``task_type`` inputs.

    A :class:`MultiTaskNet` runs its trunk and the head of ``task_type``; any other zoo model
    serves one task type and is simply called. (Which models serve which task types is in
    :attr:`ModelStats.task_types`.)
    """
    if isinstance(model, MultiTaskNet):
        return model(inputs, task_type)
    return model(inputs)


@dataclass(frozen=True)
class ModelStats:
    """Static profile of one zoo model, measured from the module itself."""

    name: str
    """Zoo name, one of :data:`MODEL_NAMES`."""
    params: int
    """Number of parameters (sum of ``numel``)."""
    flops: int
    """FLOPs per sample: 2 × multiply-accumulates of every Linear and Conv2d layer. For a
    multi-task model, the trunk once plus every head (what serving one task of *each* type on
    the same input would cost); one task of one type costs :meth:`flops_for`."""
    weight_bytes: int
    """Bytes of all parameters and buffers (what a device must load and hold)."""
    layers: int
    """Number of Linear and Conv2d modules."""
    task_types: tuple[str, ...] = ("classify",)
    """Task types this model serves (a subset of :data:`mtenv.zoo.task_types.TASK_TYPES`)."""
    trunk_flops: int | None = None
    """Multi-task models only: FLOPs per sample of the shared trunk (runs once per input)."""
    head_flops: dict[str, int] = field(default_factory=dict, hash=False)
    """Multi-task models only: FLOPs per sample of each head, by task type (empty otherwise).
    ``trunk_flops + sum(head_flops.values()) == flops``. Shared by the cache: read-only."""
    trunk_layers: int | None = None
    """Multi-task models only: Linear and Conv2d modules in the trunk."""
    head_layers: dict[str, int] = field(default_factory=dict, hash=False)
    """Multi-task models only: Linear and Conv2d modules per head (empty otherwise)."""

    def flops_for(self, task_type: str) -> int:
        """FLOPs per sample of one ``task_type`` task: trunk + that head for a multi-task model,
        :attr:`flops` otherwise. Raises :class:`ZooError` for a task type the model does not
        serve."""
        if task_type not in self.task_types:
            raise ZooError(f"model {self.name!r} does not serve {task_type!r}: {self.task_types}")
        if self.trunk_flops is None:
            return self.flops
        return self.trunk_flops + self.head_flops[task_type]

    def layers_for(self, task_type: str) -> int:
        """Linear and Conv2d modules one ``task_type`` task runs through (see :meth:`flops_for`)."""
        if task_type not in self.task_types:
            raise ZooError(f"model {self.name!r} does not serve {task_type!r}: {self.task_types}")
        if self.trunk_layers is None:
            return self.layers
        return self.trunk_layers + self.head_layers[task_type]


def _layers(module: nn.Module, prefix: str = "") -> int:
    """Number of Linear and Conv2d modules of ``module`` whose qualified name starts with
    ``prefix``."""
    return sum(
        isinstance(m, (nn.Linear, nn.Conv2d)) and n.startswith(prefix)
        for n, m in module.named_modules()
    )


def _flops(call: Callable[[], object]) -> int:
    """FLOPs of one call, counted by PyTorch's own counter (``torch.utils.flop_counter``:
    2 × multiply-accumulates of every matmul and convolution; elementwise ops cost nothing)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def count_flops(
    module: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE, task_type: str | None = None
) -> int:
    """FLOPs per sample of ``module`` on one zero input of ``input_shape`` (default: a classify
    input), counted by PyTorch's flop counter.

    For a :class:`MultiTaskNet`, ``task_type`` counts the trunk and that head only; ``None``
    counts the trunk once and every head.
    """
    x = torch.zeros((1, *input_shape))
    if not isinstance(module, MultiTaskNet):
        return _flops(lambda: module(x))
    heads = (task_type,) if task_type is not None else module.task_types

    def trunk_once_then_heads() -> None:
        features = module.trunk(x)
        for t in heads:
            module.forward_heads(features, t)

    return _flops(trunk_once_then_heads)


def measure_stats(
    name: str, module: nn.Module, input_shape: tuple[int, ...], task_types: tuple[str, ...]
) -> ModelStats:
    """The :class:`ModelStats` of ``module`` (a model called ``name`` serving ``task_types``),
    measured on one zero input of ``input_shape``, its first task type's. A
    :class:`MultiTaskNet`'s trunk and each head are counted apart (``backbone.*``,
    ``heads.<type>.*``)."""
    tensors = [*module.parameters(), *module.buffers()]
    x = torch.zeros((1, *input_shape))
    trunk_flops = trunk_layers = None
    head_flops: dict[str, int] = {}
    head_layers: dict[str, int] = {}
    if isinstance(module, MultiTaskNet):
        with torch.no_grad():
            features = module.trunk(x)
        trunk_flops = _flops(lambda: module.trunk(x))
        trunk_layers = _layers(module, "backbone.")
        for t in module.task_types:
            head_flops[t] = _flops(lambda t=t: module.forward_heads(features, t))
            head_layers[t] = _layers(module, f"heads.{t}.")
        flops = trunk_flops + sum(head_flops.values())
    else:
        flops = _flops(lambda: module(x))
    return ModelStats(
        name=name,
        params=sum(p.numel() for p in module.parameters()),
        flops=flops,
        weight_bytes=sum(t.numel() * t.element_size() for t in tensors),
        layers=_layers(module),
        task_types=tuple(task_types),
        trunk_flops=trunk_flops,
        head_flops=head_flops,
        trunk_layers=trunk_layers,
        head_layers=head_layers,
    )


def model_stats(name: str) -> ModelStats:
    """The :class:`ModelStats` of digits model ``name``: the built-in zoo's
    :meth:`mtenv.zoo.Zoo.stats`, measured once per process on a fresh module (torch's global
    RNG left untouched)."""
    from mtenv.zoo.registry import get_zoo

    return get_zoo().stats(check_name(name))
