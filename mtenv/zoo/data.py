"""The zoo's data: the bundled 8×8 digits, a fixed split, difficulty levels and input pools.

Tasks in mtenv carry real inputs. They come from the 8×8 handwritten digits that ship with the
package (see ``data/README.md``), made harder by seeded corruptions: difficulty level 0 is the
clean image and level ``N_LEVELS - 1`` the most corrupted. Small models fail on hard inputs where
big ones still succeed, which is what makes choosing a model per task worth learning.

The images are split once, by a fixed seed, into a train pool (used only by ``mtenv.zoo.train``),
a validation pool (for tuning policies or thresholds) and a serving pool (what the simulator
sends to the models). A :class:`Pool` lays out every base image at every level, so input id
``i = level * n_per_level + j`` is base image ``j`` at ``level``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

import numpy as np
import torch

from mtenv.zoo.errors import ZooError

__all__ = [
    "LEVELS",
    "N_CLASSES",
    "N_LEVELS",
    "SPLIT_SEED",
    "Corruption",
    "Pool",
    "Splits",
    "corrupt",
    "load_digits",
    "make_pool",
    "serving_pool",
    "split_indices",
    "validation_pool",
]

N_CLASSES = 10
"""Digits 0..9."""

SPLIT_SEED = 20240601
"""Seed of the train / validation / serving split. Changing it changes every shipped artefact."""

_POOL_SEEDS = {"validation": 1101, "serving": 2202}
"""Corruption seed per pool; level ``l`` of a pool uses ``default_rng((seed, l))``."""

_IMAGE_SIZE = 8
_MAX_PIXEL = 16.0  # the raw digits take values 0..16


@dataclass(frozen=True)
class Corruption:
    """How strongly each corruption is applied at one difficulty level.

    Every image at a level gets all four, in this order: shift, blur, occlusion, noise; the
    result is clipped to [0, 1].
    """

    shift_prob: float
    """Probability that an image is shifted at all."""
    max_shift: int
    """A shifted image rolls (wraps) each axis by a uniform integer in ``[-max_shift, max_shift]``.

    Rolling keeps every pixel (a digit fills its 8×8 frame, so a zero-filled shift would cut
    strokes off); convolutions with pooling tolerate it far better than a linear model.
    """
    blur: float
    """Weight of a 3×3 box blur mixed into the image: 0 = sharp, 1 = fully blurred."""
    occlusion: int
    """Side in pixels of a square patch, placed uniformly inside the image, set to 0."""
    noise_std: float
    """Standard deviation of added Gaussian pixel noise (pixels are in [0, 1])."""


LEVELS: tuple[Corruption, ...] = (
    Corruption(shift_prob=0.0, max_shift=0, blur=0.0, occlusion=0, noise_std=0.0),
    Corruption(shift_prob=0.25, max_shift=1, blur=0.1, occlusion=0, noise_std=0.05),
    Corruption(shift_prob=0.5, max_shift=1, blur=0.2, occlusion=2, noise_std=0.10),
    Corruption(shift_prob=0.75, max_shift=1, blur=0.3, occlusion=2, noise_std=0.15),
    Corruption(shift_prob=1.0, max_shift=2, blur=0.3, occlusion=2, noise_std=0.15),
)
"""Corruption per difficulty level; level 0 is the identity."""

N_LEVELS = len(LEVELS)
"""Number of difficulty levels: 0 = clean, ``N_LEVELS - 1`` = hardest."""


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load the bundled digits.

    Returns ``(images, labels)``: images float32 ``[N, 8, 8]`` scaled to [0, 1], labels int64
    ``[N]``. The file is read through ``importlib.resources`` so an installed copy works from
    any directory, and without pickle.
    """
    resource = files("mtenv.zoo").joinpath("data").joinpath("digits.npz")
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        images = npz["images"].astype(np.float32) / np.float32(_MAX_PIXEL)
        labels = npz["labels"].astype(np.int64)
    return images, labels


@dataclass(frozen=True, eq=False)
class Splits:
    """Indices into :func:`load_digits` of the three disjoint pools."""

    train: np.ndarray
    """About 60 % of the images; only training sees them."""
    validation: np.ndarray
    """About 20 %; for tuning anything (thresholds, policies) without touching serving data."""
    serving: np.ndarray
    """About 20 %; the inputs of tasks in the environments and of the model card."""


@functools.cache
def split_indices() -> Splits:
    """The fixed, stratified 60 / 20 / 20 split of the digits.

    A seeded permutation orders the images; within each class the first 60 % go to train, the
    next 20 % to validation and the rest to serving, so every pool holds every class in the
    dataset's proportions. Each pool keeps the permutation order (classes interleaved).
    """
    _, labels = load_digits()
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    pool_of = np.empty(len(labels), dtype=np.int64)
    for cls in range(N_CLASSES):
        members = perm[labels[perm] == cls]
        n_train = round(0.6 * len(members))
        n_val = round(0.2 * len(members))
        pool_of[members[:n_train]] = 0
        pool_of[members[n_train : n_train + n_val]] = 1
        pool_of[members[n_train + n_val :]] = 2
    parts = [perm[pool_of[perm] == k] for k in range(3)]
    for part in parts:
        part.setflags(write=False)
    return Splits(train=parts[0], validation=parts[1], serving=parts[2])


def _box_blur(x: np.ndarray) -> np.ndarray:
    """3×3 mean filter with zero padding over the last two axes of ``x`` ``[N, H, W]``."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    h, w = x.shape[1:]
    out = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy : dy + h, dx : dx + w]
    return out / np.float32(9.0)


def corrupt(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Return a corrupted copy of ``images`` (float in [0, 1], shape ``[..., 8, 8]``).

    Level 0 returns an unchanged float32 copy and draws nothing from ``rng``. Higher levels apply
    :data:`LEVELS` ``[level]`` with per-image random shifts, patch positions and noise, all drawn
    from ``rng`` in a fixed order, so the output is a pure function of the inputs, the level and
    the generator's state.
    """
    if not isinstance(level, (int, np.integer)) or not 0 <= level < N_LEVELS:
        raise ZooError(f"difficulty level must be an integer in 0..{N_LEVELS - 1}, got {level!r}")
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim < 2 or arr.shape[-2:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ZooError(f"images must have shape [..., 8, 8], got {list(arr.shape)}")
    x = arr.reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE).copy()
    spec = LEVELS[level]
    if level == 0 or len(x) == 0:
        return x.reshape(arr.shape)
    n, size = len(x), _IMAGE_SIZE

    # All random draws first, in a fixed order.
    shift = rng.integers(-spec.max_shift, spec.max_shift + 1, size=(n, 2))
    shift *= rng.random(n)[:, None] < spec.shift_prob
    corner = rng.integers(0, size - spec.occlusion + 1, size=(n, 2))
    noise = rng.standard_normal(size=x.shape, dtype=np.float32)

    # Shift: roll every image by its own (dy, dx), wrapping around.
    axis = np.arange(size)
    rows = (axis[None, :] - shift[:, :1]) % size
    cols = (axis[None, :] - shift[:, 1:]) % size
    x = x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]

    # Blur: mix in a box-blurred copy.
    if spec.blur > 0:
        x = (1.0 - spec.blur) * x + spec.blur * _box_blur(x)

    # Occlusion: blank a square patch.
    if spec.occlusion > 0:
        offset = axis[None, None, :] - corner[:, :, None]  # [n, 2 (row/col), size]
        inside = (offset >= 0) & (offset < spec.occlusion)
        x[inside[:, 0, :, None] & inside[:, 1, None, :]] = 0.0

    x = x + np.float32(spec.noise_std) * noise
    return np.clip(x, 0.0, 1.0).astype(np.float32).reshape(arr.shape)


@dataclass(frozen=True, eq=False)
class Pool:
    """A fixed set of task inputs: every base image at every difficulty level.

    Input id ``i = level * n_per_level + j`` is base image ``j`` corrupted at ``level``, so
    ``labels`` repeats with period ``n_per_level`` and ``levels`` is constant on each block.
    The simulator takes ``inputs[ids]`` as a batch and ``labels[ids]`` as its ground truth.
    Pools are cached and shared: treat the arrays as read-only (the numpy ones are).
    """

    inputs: torch.Tensor
    """float32 ``[M, 1, 8, 8]``, contiguous, on CPU."""
    labels: np.ndarray
    """int64 ``[M]``: the digit shown by each input."""
    levels: np.ndarray
    """int64 ``[M]``: the difficulty level of each input."""
    n_per_level: int
    """Number of base images; ``M = N_LEVELS * n_per_level``."""

    @property
    def n_inputs(self) -> int:
        """Total number of inputs ``M``."""
        return int(self.labels.shape[0])

    def ids_at_level(self, level: int) -> np.ndarray:
        """The input ids of difficulty ``level`` (a contiguous block)."""
        if not 0 <= level < N_LEVELS:
            raise ZooError(f"difficulty level must be in 0..{N_LEVELS - 1}, got {level!r}")
        return np.arange(level * self.n_per_level, (level + 1) * self.n_per_level, dtype=np.int64)


def make_pool(indices: np.ndarray, seed: int) -> Pool:
    """A :class:`Pool` of digit ``indices``; level ``l`` is corrupted with seed ``(seed, l)``."""
    images, labels = load_digits()
    base = images[np.asarray(indices)]
    blocks = [
        corrupt(base, level, np.random.default_rng((seed, level))) for level in range(N_LEVELS)
    ]
    n = len(base)
    inputs = torch.from_numpy(np.concatenate(blocks)[:, None, :, :]).contiguous()
    pool_labels = np.tile(labels[np.asarray(indices)], N_LEVELS)
    pool_levels = np.repeat(np.arange(N_LEVELS, dtype=np.int64), n)
    pool_labels.setflags(write=False)
    pool_levels.setflags(write=False)
    return Pool(inputs=inputs, labels=pool_labels, levels=pool_levels, n_per_level=n)


@functools.cache
def serving_pool() -> Pool:
    """The inputs tasks are drawn from (serving split, every level). Cached."""
    return make_pool(split_indices().serving, _POOL_SEEDS["serving"])


@functools.cache
def validation_pool() -> Pool:
    """Held-out inputs for tuning (validation split, every level). Cached."""
    return make_pool(split_indices().validation, _POOL_SEEDS["validation"])
