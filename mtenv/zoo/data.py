"""The zoo's data: the bundled 8×8 digits, a fixed split, difficulty levels and input pools.

Tasks in mtenv carry real inputs. They come from the 8×8 handwritten digits that ship with the
package (see ``data/README.md``), made harder by seeded corruptions: difficulty level 0 is the
clean image and level ``N_LEVELS - 1`` the most corrupted. Small models fail on hard inputs where
big ones still succeed, which is what makes choosing a model per task worth learning.

The images are split once, by a fixed seed, into a train pool (used only by ``mtenv.zoo.train``),
a validation pool (for tuning policies or thresholds) and a serving pool (what the simulator
sends to the models). A :class:`Pool` lays out every base image at every level, so input id
``i = level * n_per_level + j`` is base image ``j`` at ``level``.

Two task types are built from the same digits (see :mod:`mtenv.zoo.task_types`):

* ``classify``: which digit an 8×8 image shows (10 classes).
* ``localize``: each digit is pasted at a random position on a 16×16 canvas (with the blur,
  occlusion and noise of the same difficulty levels, plus background clutter at higher levels);
  the target is the cell of a 3×3 grid over the canvas that holds the centre of the digit's
  8×8 frame (9 classes, row-major: 0 = top left, 8 = bottom right). A prediction is correct
  when it names that cell. :func:`to_canvas` puts classify inputs at the canvas centre, so one
  trunk can take both task types.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from importlib.resources import files

import numpy as np
import torch

from mtenv.zoo.errors import ZooError

__all__ = [
    "CANVAS_SIZE",
    "CLUTTER",
    "GRID",
    "LEVELS",
    "N_CELLS",
    "N_CLASSES",
    "N_DIGITS",
    "N_LEVELS",
    "SPLIT_SEED",
    "Clutter",
    "Corruption",
    "Pool",
    "Splits",
    "corrupt",
    "draw_positions",
    "grid_cell",
    "load_digits",
    "localize_examples",
    "localize_serving_pool",
    "localize_validation_pool",
    "make_localize_pool",
    "make_pool",
    "place_digits",
    "serving_pool",
    "split_indices",
    "to_canvas",
    "validation_pool",
]

N_DIGITS = 10
"""Digits 0..9: the classes of the ``classify`` task."""

N_CLASSES = N_DIGITS
"""Number of digit classes, as before the zoo had several task types. The per-task-type mapping
(``{"classify": 10, "localize": 9}``) is :data:`mtenv.zoo.task_types.N_CLASSES`."""

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
    for cls in range(N_DIGITS):
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
    arr = _digit_array(images)
    x = arr.reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE).copy()
    if _check_level(level) == 0 or len(x) == 0:
        return x.reshape(arr.shape)
    return _apply_corruption(x, LEVELS[level], rng).reshape(arr.shape)


def _check_level(level: int) -> int:
    """Return ``level`` if it is a difficulty level, else raise :class:`ZooError`."""
    if not isinstance(level, (int, np.integer)) or not 0 <= level < N_LEVELS:
        raise ZooError(f"difficulty level must be an integer in 0..{N_LEVELS - 1}, got {level!r}")
    return int(level)


def _digit_array(images: np.ndarray) -> np.ndarray:
    """``images`` as float32, checked to have shape ``[..., 8, 8]``."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim < 2 or arr.shape[-2:] != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ZooError(f"images must have shape [..., 8, 8], got {list(arr.shape)}")
    return arr


def _apply_corruption(x: np.ndarray, spec: Corruption, rng: np.random.Generator) -> np.ndarray:
    """Corrupt ``x`` (float32 ``[n, 8, 8]``, n ≥ 1) by ``spec``; the work behind :func:`corrupt`.

    Draws the shifts, the shift coin flips, the patch corners and (when ``spec.noise_std > 0``)
    the noise from ``rng``, in that order, before touching any pixel.
    """
    n, size = len(x), _IMAGE_SIZE

    # All random draws first, in a fixed order.
    shift = rng.integers(-spec.max_shift, spec.max_shift + 1, size=(n, 2))
    shift *= rng.random(n)[:, None] < spec.shift_prob
    corner = rng.integers(0, size - spec.occlusion + 1, size=(n, 2))
    noise = rng.standard_normal(size=x.shape, dtype=np.float32) if spec.noise_std > 0 else None

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

    if noise is not None:
        x = x + np.float32(spec.noise_std) * noise
    return np.clip(x, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Pool:
    """A fixed set of task inputs: every base input at every difficulty level.

    Input id ``i = level * n_per_level + j`` is base input ``j`` at ``level`` (on the digits
    zoo, image ``j`` corrupted at that level, so ``labels`` repeats with period
    ``n_per_level``); ``levels`` is constant on each block.
    The simulator takes ``inputs[ids]`` as a batch and ``labels[ids]`` as its ground truth.
    Pools are cached and shared: treat the arrays as read-only (the numpy ones are).
    """

    inputs: torch.Tensor
    """float32, contiguous, on CPU: ``[M, 1, 8, 8]`` for classify, ``[M, 1, 16, 16]`` for
    localize."""
    labels: np.ndarray
    """int64 ``[M]``: the target of each input: the digit shown (classify) or the grid cell
    holding the digit's centre (localize)."""
    levels: np.ndarray
    """int64 ``[M]``: the difficulty level of each input."""
    n_per_level: int
    """Number of base inputs; ``M = n_levels * n_per_level``."""
    task_type: str = "classify"
    """The task type these inputs are for (on the digits zoo ``"classify"`` or
    ``"localize"``)."""

    @property
    def n_inputs(self) -> int:
        """Total number of inputs ``M``."""
        return int(self.labels.shape[0])

    @property
    def n_levels(self) -> int:
        """Number of difficulty levels (``M // n_per_level``)."""
        return self.n_inputs // self.n_per_level

    def ids_at_level(self, level: int) -> np.ndarray:
        """The input ids of difficulty ``level`` (a contiguous block)."""
        if not 0 <= level < self.n_levels:
            raise ZooError(f"difficulty level must be in 0..{self.n_levels - 1}, got {level!r}")
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


# --- localize: digits on a canvas ------------------------------------------------------------

CANVAS_SIZE = 16
"""Side of the localize canvas in pixels."""

GRID = 3
"""The canvas is divided into ``GRID × GRID`` cells; the localize target is one of them."""

N_CELLS = GRID * GRID
"""Classes of the ``localize`` task: grid cells, row-major (0 = top left, 8 = bottom right)."""

_LOCALIZE_POOL_SEEDS = {"validation": 3303, "serving": 4404}
"""Seed per localize pool: level ``l`` uses ``default_rng((seed, l))``, the digit positions
(shared by every level) ``default_rng((seed, _POSITIONS_STREAM))``."""

_POSITIONS_STREAM = 1000

_MAX_OFFSET = CANVAS_SIZE - _IMAGE_SIZE  # top-left corners range over 0..8 on each axis


@dataclass(frozen=True)
class Clutter:
    """Background clutter on the localize canvas at one difficulty level.

    Each fragment is a square crop of another digit of the same pool (taken from the central
    6×6 of its frame, where the ink is), scaled by ``intensity`` and pasted at a uniform position
    on the canvas; overlaps keep the brighter pixel. Fragments look like stray strokes, so a
    model must find the whole digit rather than just any ink.
    """

    fragments: int
    """Number of fragments per canvas."""
    size: int
    """Side of each fragment in pixels."""
    intensity: float
    """Factor applied to the fragment's pixels (the digit's own ink reaches 1)."""


CLUTTER: tuple[Clutter, ...] = (
    Clutter(fragments=0, size=0, intensity=0.0),
    Clutter(fragments=1, size=3, intensity=0.5),
    Clutter(fragments=2, size=4, intensity=0.6),
    Clutter(fragments=4, size=4, intensity=0.7),
    Clutter(fragments=6, size=4, intensity=0.8),
)
"""Clutter per difficulty level (level 0 has none), aligned with :data:`LEVELS`."""


def to_canvas(x8: torch.Tensor) -> torch.Tensor:
    """Place 8×8 inputs ``[B, 1, 8, 8]`` at the centre of zero 16×16 canvases ``[B, 1, 16, 16]``.

    The digit occupies rows and columns 4..11, i.e. top-left corner (4, 4), so its centre lies in
    the middle grid cell (4): a classify input looks like a centred localize input, and one
    trunk on canvases can serve both task types.
    """
    if x8.ndim < 2 or tuple(x8.shape[-2:]) != (_IMAGE_SIZE, _IMAGE_SIZE):
        raise ZooError(f"to_canvas expects inputs of shape [..., 8, 8], got {list(x8.shape)}")
    pad = _MAX_OFFSET // 2
    return torch.nn.functional.pad(x8, (pad, pad, pad, pad))


def grid_cell(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The grid cell holding the centre of 8×8 frames whose top-left corners are ``(rows, cols)``.

    The frame's centre is ``(row + 4, col + 4)`` in pixel-edge coordinates; the canvas is cut into
    ``GRID`` equal bands per axis (edges at 16/3 and 32/3, which no centre hits). Returns int64
    ``row_band * GRID + col_band``.
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    both = np.concatenate([rows.ravel(), cols.ravel()])
    if rows.shape != cols.shape or (both < 0).any() or (both > _MAX_OFFSET).any():
        raise ZooError(f"positions must be matching arrays of integers in 0..{_MAX_OFFSET}")

    def band(corner: np.ndarray) -> np.ndarray:
        # floor((corner + size/2) * GRID / CANVAS) in integers: centre doubled.
        return ((2 * corner + _IMAGE_SIZE) * GRID) // (2 * CANVAS_SIZE)

    return band(rows) * GRID + band(cols)


def _band_offsets() -> tuple[np.ndarray, np.ndarray]:
    """Per band: the first top-left offset whose centre falls in it, and how many do."""
    bands = grid_cell(np.zeros(_MAX_OFFSET + 1, dtype=np.int64), np.arange(_MAX_OFFSET + 1))
    first = np.array([np.flatnonzero(bands == b)[0] for b in range(GRID)])
    count = np.array([np.sum(bands == b) for b in range(GRID)])
    return first, count


def draw_positions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners ``(rows, cols)`` (int64 ``[n]`` each) of ``n`` digits on the canvas.

    Per axis the band (third of the canvas) is drawn uniformly, then the offset uniformly among
    those whose frame centre falls in that band (2, 5 and 2 offsets), so the nine cells are
    equally likely although the middle band admits more positions.
    """
    first, count = _band_offsets()
    band = rng.integers(0, GRID, size=(n, 2))
    offset = first[band] + np.floor(rng.random((n, 2)) * count[band]).astype(np.int64)
    return offset[:, 0].copy(), offset[:, 1].copy()


def place_digits(tiles: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Paste 8×8 ``tiles`` ``[n, 8, 8]`` onto zero canvases ``[n, 16, 16]`` at ``(rows, cols)``."""
    tiles = _digit_array(tiles).reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE)
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    grid_cell(rows, cols)  # validates the positions
    n = len(tiles)
    canvas = np.zeros((n, CANVAS_SIZE, CANVAS_SIZE), dtype=np.float32)
    axis = np.arange(_IMAGE_SIZE)
    r = rows[:, None, None] + axis[None, :, None]
    c = cols[:, None, None] + axis[None, None, :]
    canvas[np.arange(n)[:, None, None], r, c] = tiles
    return canvas


def _add_clutter(
    canvas: np.ndarray, spec: Clutter, source: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``canvas`` ``[n, 16, 16]`` with ``spec.fragments`` fragments of ``source`` digits added."""
    n, k, s = len(canvas), spec.fragments, spec.size
    if k == 0 or n == 0:
        return canvas
    which = rng.integers(0, len(source), size=(n, k))
    crop = rng.integers(1, _IMAGE_SIZE - s, size=(n, k, 2))  # inside the central 6×6
    where = rng.integers(0, CANVAS_SIZE - s + 1, size=(n, k, 2))
    out = canvas.copy()
    axis = np.arange(s)
    idx = np.arange(n)[:, None, None]
    for f in range(k):
        src_r = crop[:, f, 0, None, None] + axis[None, :, None]
        src_c = crop[:, f, 1, None, None] + axis[None, None, :]
        patch = np.float32(spec.intensity) * source[which[:, f, None, None], src_r, src_c]
        dst_r = where[:, f, 0, None, None] + axis[None, :, None]
        dst_c = where[:, f, 1, None, None] + axis[None, None, :]
        out[idx, dst_r, dst_c] = np.maximum(out[idx, dst_r, dst_c], patch)
    return out


def localize_examples(
    images: np.ndarray,
    level: int,
    rng: np.random.Generator,
    positions: tuple[np.ndarray, np.ndarray] | None = None,
    clutter_source: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Localize inputs from clean 8×8 ``images`` ``[n, 8, 8]`` at difficulty ``level``.

    Returns ``(canvases, cells)``: float32 ``[n, 16, 16]`` in [0, 1] and int64 ``[n]`` targets
    (:func:`grid_cell` of each position). Steps, with draws from ``rng`` in this order:

    1. positions by :func:`draw_positions`, unless ``positions`` gives them;
    2. the digit is blurred and occluded as :data:`LEVELS` ``[level]`` says; its shift is left
       out, because rolling the ink inside the frame would move the digit away from the
       position that defines the target (the random position already varies it), and its
       noise is applied to the canvas in step 4;
    3. it is pasted on a zero canvas, :data:`CLUTTER` ``[level]`` fragments of
       ``clutter_source`` digits (default ``images``) are added;
    4. Gaussian noise of the level's ``noise_std`` covers the whole canvas (noise only on the
       digit's frame would give its position away), and the result is clipped to [0, 1].

    Level 0 is the clean digit on a clean canvas and draws nothing besides the positions.
    """
    level = _check_level(level)
    tiles = _digit_array(images).reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE).copy()
    source = tiles if clutter_source is None else _digit_array(clutter_source)
    rows, cols = positions if positions is not None else draw_positions(len(tiles), rng)
    cells = grid_cell(rows, cols)
    if len(rows) != len(tiles):
        raise ZooError(f"got {len(rows)} positions for {len(tiles)} images")
    if level == 0 or len(tiles) == 0:
        return place_digits(tiles, rows, cols), cells
    spec = LEVELS[level]
    tile_spec = dataclasses.replace(spec, shift_prob=0.0, max_shift=0, noise_std=0.0)
    tiles = _apply_corruption(tiles, tile_spec, rng)
    canvas = _add_clutter(place_digits(tiles, rows, cols), CLUTTER[level], source, rng)
    canvas = canvas + np.float32(spec.noise_std) * rng.standard_normal(
        size=canvas.shape, dtype=np.float32
    )
    return np.clip(canvas, 0.0, 1.0).astype(np.float32), cells


def make_localize_pool(indices: np.ndarray, seed: int) -> Pool:
    """A localize :class:`Pool` of digit ``indices`` (same id layout as :func:`make_pool`).

    Each base digit keeps one position at every level (drawn from ``(seed, 1000)``), so input
    ``level * n_per_level + j`` differs from ``j`` only by corruption and clutter, and
    ``labels`` repeats with period ``n_per_level``. Level ``l`` draws from ``(seed, l)``;
    clutter fragments come from the pool's own digits.
    """
    images, _ = load_digits()
    base = images[np.asarray(indices)]
    positions = draw_positions(len(base), np.random.default_rng((seed, _POSITIONS_STREAM)))
    blocks = [
        localize_examples(base, level, np.random.default_rng((seed, level)), positions)
        for level in range(N_LEVELS)
    ]
    n = len(base)
    inputs = torch.from_numpy(np.concatenate([b[0] for b in blocks])[:, None, :, :]).contiguous()
    pool_labels = np.concatenate([b[1] for b in blocks])
    pool_levels = np.repeat(np.arange(N_LEVELS, dtype=np.int64), n)
    pool_labels.setflags(write=False)
    pool_levels.setflags(write=False)
    return Pool(
        inputs=inputs, labels=pool_labels, levels=pool_levels, n_per_level=n, task_type="localize"
    )


@functools.cache
def localize_serving_pool() -> Pool:
    """Localize inputs tasks are drawn from (serving split's digits, every level). Cached."""
    return make_localize_pool(split_indices().serving, _LOCALIZE_POOL_SEEDS["serving"])


@functools.cache
def localize_validation_pool() -> Pool:
    """Held-out localize inputs for tuning (validation split's digits, every level). Cached."""
    return make_localize_pool(split_indices().validation, _LOCALIZE_POOL_SEEDS["validation"])
