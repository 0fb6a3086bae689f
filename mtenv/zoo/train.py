"""Training recipes for the zoo, and the bitwise-deterministic trainer that follows them.

The shipped weights are exactly what :func:`train_zoo` produces from :data:`RECIPES` on CPU
(one thread, deterministic algorithms, explicitly seeded generators), and a test retrains the
small models to check it. Every epoch shows the model each training image at every difficulty
level in the recipe, freshly corrupted, so how robust a model gets depends on its capacity.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtenv.zoo.data import N_LEVELS, corrupt, load_digits, split_indices
from mtenv.zoo.models import MODEL_NAMES, build_model, check_name
from mtenv.zoo.store import save_weights, weights_dir

__all__ = ["RECIPES", "TrainRecipe", "deterministic_cpu", "train_model", "train_zoo"]


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that determines a zoo model's weights besides its architecture."""

    seed: int = 0
    """Seeds torch (initialisation) and numpy (corruptions, shuffling) for this run."""
    epochs: int = 20
    """Passes over the augmented training set."""
    batch_size: int = 64
    """Mini-batch size."""
    lr: float = 1e-2
    """Peak AdamW learning rate; it follows a cosine decay to 0 over all steps."""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay."""
    levels: tuple[int, ...] = tuple(range(N_LEVELS))
    """Difficulty levels used for augmentation: each epoch sees every train image at each."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing."""

    def to_json(self) -> str:
        """The recipe as compact, key-sorted JSON (stored in the weights' metadata)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


RECIPES: dict[str, TrainRecipe] = {
    "linear": TrainRecipe(seed=1, epochs=20, lr=1e-2),
    "mlp": TrainRecipe(seed=2, epochs=30, lr=5e-3),
    "cnn_small": TrainRecipe(seed=3, epochs=30, lr=5e-3),
    "cnn_wide": TrainRecipe(seed=4, epochs=40, lr=2e-3),
}
"""The recipe each shipped model was trained with."""


@contextmanager
def deterministic_cpu() -> Iterator[None]:
    """Run the block on one torch thread with deterministic algorithms; restore both after."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.set_num_threads(threads)


def train_model(name: str, recipe: TrainRecipe | None = None) -> nn.Module:
    """Train zoo model ``name`` on the train split by ``recipe`` (default ``RECIPES[name]``).

    Bitwise deterministic on a given CPU: one thread, deterministic algorithms, and every random
    draw from generators seeded by ``recipe.seed``; torch's global RNG state and thread count are
    restored afterwards. Returns the module in eval mode, on CPU.
    """
    check_name(name)
    recipe = recipe if recipe is not None else RECIPES[name]
    images, labels = load_digits()
    train_ids = split_indices().train
    x_train, y_train = images[train_ids], labels[train_ids]
    rng = np.random.default_rng(recipe.seed)
    n = len(x_train) * len(recipe.levels)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch

    with deterministic_cpu(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_model(name)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        )
        loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        y_epoch = torch.from_numpy(np.tile(y_train, len(recipe.levels)))
        model.train()
        for _ in range(recipe.epochs):
            x_np = np.concatenate([corrupt(x_train, lvl, rng) for lvl in recipe.levels])
            x_epoch = torch.from_numpy(x_np[:, None, :, :])
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, recipe.batch_size):
                batch = order[start : start + recipe.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_epoch[batch]), y_epoch[batch])
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


def train_zoo(
    out_dir: str | Path | None = None,
    names: Iterable[str] | None = None,
    progress: Callable[[str], object] | None = print,
) -> dict[str, Path]:
    """Train zoo models by their recipes and write ``<out_dir>/<name>.safetensors``.

    ``out_dir`` defaults to the package's ``weights/`` folder, ``names`` to every model. Each file
    is written atomically (temp file + ``os.replace``). ``progress`` receives one line per model
    (pass ``None`` for silence). Returns the written path per model.
    """
    out = Path(out_dir) if out_dir is not None else weights_dir()
    chosen = [check_name(n) for n in (names if names is not None else MODEL_NAMES)]
    written: dict[str, Path] = {}
    for name in chosen:
        recipe = RECIPES[name]
        start = time.perf_counter()
        model = train_model(name, recipe)
        meta = {"architecture": name, "recipe": recipe.to_json()}
        written[name] = save_weights(model, out / f"{name}.safetensors", meta)
        if progress is not None:
            progress(f"trained {name} in {time.perf_counter() - start:.1f}s -> {written[name]}")
    return written
