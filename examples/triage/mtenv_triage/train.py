"""Retrain the triage zoo deterministically and write its safetensors weights.

    python -m mtenv_triage.train [--out DIR]

Writes ``<DIR>/<name>.safetensors`` for ``screen``, ``linear``, ``mlp`` and ``deep`` (default
DIR: the package's ``weights`` folder, what the zoo loads) with mtenv's ``save_weights``, then
prints each model's accuracy per difficulty level on the serving pool and its recall on the
positive (malignant) class. One CPU thread, fixed seeds: the files come out byte-identical.

* ``screen`` is not trained: its rule is written below in the data's own units (worst concave
  points above 0.13, worst radius above 16.5, worst texture above 25.5, each scaled by a typical
  spread), converted to standardised units; only its temperature is fitted, on the validation
  pool, by a grid search of the log-loss.
* ``linear``, ``mlp`` and ``deep`` are trained with Adam on the train split, re-corrupted every
  epoch: each epoch holds ``copies`` corrupted copies of every train row, each at a level drawn
  uniformly from 0..3 (the same corruptions as the pools, fresh draws). Cross-entropy, weight
  decay; ``deep`` also uses dropout.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("MTENV_TORCH_THREADS", "1")

import numpy as np
import torch
from torch import nn

from mtenv_triage.data import (
    FEATURES,
    N_FEATURES,
    N_LEVELS,
    corrupt,
    load_table,
    make_pool,
    split_indices,
    standardized_split,
)
from mtenv_triage.models import ARCHITECTURES, SCREEN_FEATURES, Screen, build

__all__ = ["RECIPES", "Recipe", "evaluate", "main", "train_all"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

SCREEN_RULE = {
    # feature: (threshold, spread) in the file's units; score = sum((x - threshold) / spread)
    "worst_concave_points": (0.13, 0.03),
    "worst_radius": (16.5, 2.0),
    "worst_texture": (25.5, 4.0),
}


@dataclass(frozen=True)
class Recipe:
    """How one model is trained."""

    seed: int
    epochs: int
    copies: int
    """Corrupted copies of each train row per epoch."""
    batch: int
    lr: float
    weight_decay: float
    dropout: float = 0.0


RECIPES = {
    "linear": Recipe(seed=1, epochs=100, copies=8, batch=64, lr=0.01, weight_decay=1e-3),
    "mlp": Recipe(seed=2, epochs=100, copies=8, batch=64, lr=0.005, weight_decay=1e-3),
    "deep": Recipe(
        seed=3, epochs=100, copies=8, batch=64, lr=0.001, weight_decay=1e-4, dropout=0.1
    ),
}


def _fit_screen() -> nn.Module:
    """The screening rule in standardised units, with its temperature fitted on validation."""
    x_raw, _ = load_table()
    train = x_raw[split_indices().train]
    mean, std = train.mean(axis=0), train.std(axis=0)
    module = Screen()
    idx = [FEATURES.index(f) for f in SCREEN_FEATURES]
    # (raw - t) / s with raw = z * std + mean  =>  z * std / s + (mean - t) / s
    w = [std[i] / SCREEN_RULE[f][1] for f, i in zip(SCREEN_FEATURES, idx, strict=True)]
    b = sum(
        (mean[i] - SCREEN_RULE[f][0]) / SCREEN_RULE[f][1]
        for f, i in zip(SCREEN_FEATURES, idx, strict=True)
    )
    with torch.no_grad():
        module.features.copy_(torch.tensor(idx, dtype=torch.int64))
        module.rule.weight.copy_(torch.tensor([w], dtype=torch.float32))
        module.rule.bias.fill_(float(b))
    pool = make_pool("validation")
    labels = torch.from_numpy(np.array(pool.labels))
    best = None
    for temperature in np.round(np.arange(0.2, 4.01, 0.05), 2):
        module.temperature.fill_(float(temperature))
        with torch.no_grad():
            loss = nn.functional.cross_entropy(module(pool.inputs), labels).item()
        if best is None or loss < best[0] - 1e-9:
            best = (loss, float(temperature))
    module.temperature.fill_(best[1])
    return module.eval()


def _with_dropout(module: nn.Sequential, p: float) -> nn.Sequential:
    """``module`` with a dropout after every ReLU (same parameters, same state-dict keys)."""
    if p <= 0:
        return module
    layers: list[nn.Module] = []
    for layer in module:
        layers.append(layer)
        if isinstance(layer, nn.ReLU):
            layers.append(nn.Dropout(p))
    return nn.Sequential(*layers)


def _train(name: str, recipe: Recipe) -> nn.Module:
    torch.manual_seed(recipe.seed)
    module = build(name)
    net = _with_dropout(module, recipe.dropout) if isinstance(module, nn.Sequential) else module
    x, y = standardized_split("train")
    rng = np.random.default_rng((recipe.seed, 7))
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    targets = torch.from_numpy(np.tile(y, recipe.copies))
    for _ in range(recipe.epochs):
        level = rng.integers(0, N_LEVELS, size=recipe.copies)
        batch = np.concatenate([corrupt(x, int(lv), rng) for lv in level])
        inputs = torch.from_numpy(batch)
        order = torch.from_numpy(rng.permutation(len(batch)))
        net.train()
        for start in range(0, len(order), recipe.batch):
            ids = order[start : start + recipe.batch]
            loss = nn.functional.cross_entropy(net(inputs[ids]), targets[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return module.eval()


def train_all(out: Path) -> dict[str, Path]:
    """Train every model and write ``out/<name>.safetensors``; returns the paths."""
    from mtenv.zoo.store import save_weights

    torch.set_num_threads(1)
    paths = {}
    for name in ARCHITECTURES:
        if name == "screen":
            module = _fit_screen()
            recipe = {"rule": SCREEN_RULE, "temperature": round(float(module.temperature), 4)}
        else:
            module = _train(name, RECIPES[name])
            recipe = asdict(RECIPES[name])
        meta = {"architecture": name, "zoo": "triage", "recipe": json.dumps(recipe, sort_keys=True)}
        paths[name] = save_weights(module, out / f"{name}.safetensors", meta)
    return paths


def evaluate(modules: dict[str, nn.Module], split: str = "serving") -> dict[str, dict[str, float]]:
    """Per model: accuracy at each level, overall, and recall on malignant inputs (all levels)."""
    pool = make_pool(split)
    labels = np.asarray(pool.labels)
    levels = np.asarray(pool.levels)
    results = {}
    for name, module in modules.items():
        with torch.no_grad():
            pred = module(pool.inputs).argmax(dim=1).numpy()
        right = pred == labels
        row = {f"L{lv}": float(right[levels == lv].mean()) for lv in range(N_LEVELS)}
        row["all"] = float(right.mean())
        row["recall"] = float(right[labels == 1].mean())
        row["recall_L3"] = float(right[(labels == 1) & (levels == N_LEVELS - 1)].mean())
        results[name] = row
    return results


def _table(results: dict[str, dict[str, float]], flops: dict[str, int]) -> str:
    cols = [f"L{lv}" for lv in range(N_LEVELS)]
    head = ["model", "FLOPs", *[f"acc {c}" for c in cols], "acc all", "recall (M)", "recall L3"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, row in results.items():
        cells = [f"`{name}`", f"{flops[name]:,}", *[f"{row[c]:.3f}" for c in cols]]
        cells += [f"{row['all']:.3f}", f"{row['recall']:.3f}", f"{row['recall_L3']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mtenv_triage.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for the weights")
    args = parser.parse_args(argv)
    from mtenv.zoo.models import count_flops
    from mtenv.zoo.store import load_weights

    paths = train_all(args.out)
    modules = {}
    for name, path in paths.items():
        modules[name] = load_weights(build(name), path, name, "cpu", "rerun this script")
        print(f"wrote {path}")
    pool = make_pool("serving")
    positives = int(np.sum(pool.labels[: pool.n_per_level]))
    print(
        f"\nServing pool: {pool.n_per_level} inputs per level ({positives} malignant), "
        f"{N_LEVELS} levels, {pool.n_inputs} in all. Recall = accuracy on malignant inputs.\n"
    )
    flops = {name: count_flops(m, (N_FEATURES,)) for name, m in modules.items()}
    print(_table(evaluate(modules), flops))


if __name__ == "__main__":
    main()
