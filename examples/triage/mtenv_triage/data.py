"""The triage zoo's data: the vendored WDBC table, its fixed split and the difficulty levels.

* :func:`load_table` reads ``data/wdbc.csv`` (569 rows: 30 real features, then ``malignant``,
  1 = malignant = the positive class, 0 = benign).
* :func:`split_indices` splits the rows once, stratified by class, with a fixed seed: 50 % train,
  25 % validation, 25 % serving.
* :func:`standardize` centres and scales every feature with the *train* rows' mean and standard
  deviation, so a standardised 0 is the train mean.
* :func:`corrupt` makes an input harder: at level ``l`` it masks (sets to 0, the train mean)
  ``LEVELS[l].masked`` features chosen at random per input, adds Gaussian noise of standard
  deviation ``noise_std`` to the rest and replaces ``glitches`` of the remaining features by a
  spurious reading of ±3 to ±6 standard deviations (a faulty measurement). Level 0 is the clean
  input.
* :func:`make_pool` builds a split's :class:`mtenv.zoo.Pool`: every base input at every level,
  input ``level * n_per_level + j`` is base row ``j`` corrupted at ``level``, drawn from the seed
  ``(split seed, level)``, so a pool is the same in every process.

Nothing here is loaded at import time; the table is read on first use and cached.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mtenv.zoo import Pool

__all__ = [
    "FEATURES",
    "LEVELS",
    "N_FEATURES",
    "N_LEVELS",
    "SPLIT_SEED",
    "TASK_TYPE",
    "Corruption",
    "Splits",
    "corrupt",
    "load_table",
    "make_pool",
    "split_indices",
    "standardize",
    "standardized_split",
]

TASK_TYPE = "diagnose"
"""The zoo's one task type: benign (0) or malignant (1)."""

_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
)
FEATURES: tuple[str, ...] = tuple(
    f"{stat}_{m}" for stat in ("mean", "se", "worst") for m in _MEASURES
)
"""The 30 feature columns of ``wdbc.csv``, in order (mean, standard error, worst of ten
cell-nucleus measures)."""
N_FEATURES = len(FEATURES)

SPLIT_SEED = 20240917
"""Seed of the train / validation / serving split."""

_POOL_SEEDS = {"train": 101, "validation": 202, "serving": 303}
"""Seed of each split's corruptions: level ``l`` of split ``s`` draws from ``(seed[s], l)``."""


@dataclass(frozen=True)
class Corruption:
    """How one difficulty level degrades a standardised input."""

    masked: int
    """Features set to 0 (the train mean), a different random subset per input."""
    noise_std: float
    """Standard deviation of the Gaussian noise added to the features left unmasked."""
    glitches: int
    """Unmasked features replaced by a spurious reading of ±3 to ±6 standard deviations."""


LEVELS: tuple[Corruption, ...] = (
    Corruption(masked=0, noise_std=0.0, glitches=0),
    Corruption(masked=6, noise_std=0.3, glitches=1),
    Corruption(masked=12, noise_std=0.5, glitches=2),
    Corruption(masked=18, noise_std=0.7, glitches=3),
)
"""Level 0 is clean; each level masks more features, adds more noise and more glitches."""
N_LEVELS = len(LEVELS)


@functools.cache
def load_table() -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)``: float64 ``[569, 30]`` in the file's units and int64 ``[569]``
    (1 = malignant). Read from the package's ``data/wdbc.csv`` once, then cached (read-only)."""
    text = files("mtenv_triage").joinpath("data").joinpath("wdbc.csv").read_text(encoding="ascii")
    lines = text.splitlines()
    header = lines[0].split(",")
    if tuple(header) != (*FEATURES, "malignant"):
        raise ValueError(f"wdbc.csv: unexpected header {header[:3]}...")
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:] if line], float)
    x = np.ascontiguousarray(table[:, :N_FEATURES])
    y = table[:, N_FEATURES].astype(np.int64)
    if x.shape != (569, N_FEATURES) or not set(np.unique(y)) <= {0, 1}:
        raise ValueError(
            f"wdbc.csv: expected 569 rows of 30 features and a 0/1 label, got {x.shape}"
        )
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@dataclass(frozen=True)
class Splits:
    """Row indices of each split (sorted)."""

    train: np.ndarray
    validation: np.ndarray
    serving: np.ndarray

    def of(self, split: str) -> np.ndarray:
        if split not in ("train", "validation", "serving"):
            raise ValueError(f"unknown split {split!r}: expected train, validation or serving")
        return getattr(self, split)


@functools.cache
def split_indices() -> Splits:
    """The fixed, class-stratified 50 / 25 / 25 % split of the 569 rows."""
    _, y = load_table()
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "serving": []}
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        n_train = round(0.5 * len(rows))
        n_val = round(0.25 * len(rows))
        parts["train"].append(rows[:n_train])
        parts["validation"].append(rows[n_train : n_train + n_val])
        parts["serving"].append(rows[n_train + n_val :])
    return Splits(**{k: np.sort(np.concatenate(v)) for k, v in parts.items()})


@functools.cache
def _train_stats() -> tuple[np.ndarray, np.ndarray]:
    x, _ = load_table()
    train = x[split_indices().train]
    return train.mean(axis=0), train.std(axis=0)


def standardize(x: np.ndarray) -> np.ndarray:
    """``x`` (raw units, ``[n, 30]``) centred and scaled by the train rows' statistics
    (float32)."""
    mean, std = _train_stats()
    return ((np.asarray(x, float) - mean) / std).astype(np.float32)


def standardized_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The clean standardised features (float32 ``[n, 30]``) and labels of ``split``."""
    x, y = load_table()
    rows = split_indices().of(split)
    return standardize(x[rows]), y[rows].copy()


def corrupt(x: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Standardised inputs ``x`` (``[n, 30]``) degraded as :data:`LEVELS` ``[level]`` says.

    Draws from ``rng`` in a fixed order (feature order, noise, glitch sizes and signs); level 0
    returns a copy and draws nothing.
    """
    if not 0 <= level < N_LEVELS:
        raise ValueError(f"difficulty level must be in 0..{N_LEVELS - 1}, got {level!r}")
    x = np.array(x, dtype=np.float32, copy=True)
    spec = LEVELS[level]
    if level == 0 or len(x) == 0:
        return x
    n, d = x.shape
    order = np.argsort(rng.random((n, d)), axis=1)  # a random permutation of features per input
    noise = rng.standard_normal((n, d)).astype(np.float32)
    size = rng.uniform(3.0, 6.0, (n, spec.glitches)).astype(np.float32)
    sign = np.where(rng.random((n, spec.glitches)) < 0.5, -1.0, 1.0).astype(np.float32)
    x = x + np.float32(spec.noise_std) * noise
    rows = np.arange(n)[:, None]
    x[rows, order[:, : spec.masked]] = 0.0
    glitched = order[:, spec.masked : spec.masked + spec.glitches]
    x[rows, glitched] = sign * size
    return x


def corrupted_split(split: str, level: int) -> np.ndarray:
    """The standardised inputs of ``split`` at ``level``, drawn from ``(split seed, level)``."""
    x, _ = standardized_split(split)
    return corrupt(x, level, np.random.default_rng((_POOL_SEEDS[split], level)))


def make_pool(split: str, task_type: str = TASK_TYPE) -> Pool:
    """The :class:`mtenv.zoo.Pool` of ``split``: every base row at every level (level-major)."""
    import torch

    from mtenv.zoo import Pool

    if task_type != TASK_TYPE:
        raise ValueError(f"the triage zoo has one task type, {TASK_TYPE!r}; got {task_type!r}")
    _, y = standardized_split(split)
    blocks = [corrupted_split(split, level) for level in range(N_LEVELS)]
    n = len(y)
    labels = np.tile(y, N_LEVELS).astype(np.int64)
    levels = np.repeat(np.arange(N_LEVELS, dtype=np.int64), n)
    labels.setflags(write=False)
    levels.setflags(write=False)
    inputs = torch.from_numpy(np.concatenate(blocks).astype(np.float32)).contiguous()
    return Pool(inputs=inputs, labels=labels, levels=levels, n_per_level=n, task_type=task_type)
