"""Specification of the model zoo (``mtenv.zoo``): data, models, weights, training and card."""

from __future__ import annotations

import itertools
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import mtenv.zoo.store as store
from mtenv.zoo import (
    MODEL_NAMES,
    N_LEVELS,
    RECIPES,
    ZooError,
    build_model,
    evaluate_zoo,
    load_model,
    model_stats,
    serving_pool,
    train_model,
    train_zoo,
    validation_pool,
    weights_path,
)
from mtenv.zoo.card import card_table, write_card
from mtenv.zoo.data import corrupt, load_digits, split_indices
from mtenv.zoo.models import count_flops
from mtenv.zoo.store import read_metadata, save_weights

ZOO_DIR = Path(str(files("mtenv.zoo")))


@pytest.fixture(scope="module")
def card() -> dict:
    """The card recomputed from the shipped weights (computed once for the module)."""
    return evaluate_zoo()


# --- models, weights and stats -------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_loads_and_stats_match_module(name: str) -> None:
    model = load_model(name)
    assert not model.training
    with torch.no_grad():
        out = model(torch.rand(3, 1, 8, 8))
    assert out.shape == (3, 10)
    assert out.dtype == torch.float32

    stats = model_stats(name)
    tensors = load_file(str(weights_path(name)))
    assert stats.name == name
    assert stats.params == sum(p.numel() for p in model.parameters())
    assert stats.weight_bytes == sum(t.numel() * t.element_size() for t in tensors.values())
    assert stats.layers == sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    assert stats.flops == count_flops(model) > 0
    assert "classify" in stats.task_types
    meta = read_metadata(weights_path(name))
    assert meta["architecture"] == name
    assert json.loads(meta["recipe"]) == json.loads(RECIPES[name].to_json())
    assert meta["format_version"] == store.FORMAT_VERSION


def test_capacity_grows_along_model_names() -> None:
    flops = [model_stats(n).flops for n in MODEL_NAMES]
    params = [model_stats(n).params for n in MODEL_NAMES]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert params == sorted(params)
    assert model_stats("cnn_wide").flops >= 50 * model_stats("linear").flops


def test_flop_counter_counts_linear_and_conv_macs() -> None:
    # Independent of the zoo: 2 × MACs written out by hand for one conv and one linear layer.
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 7))
    assert count_flops(conv) == 2 * (8 * 8 * 4 * 9) + 2 * (256 * 7)
    assert model_stats("linear").flops == 2 * 64 * 10


def test_model_stats_does_not_touch_global_rng() -> None:
    model_stats.cache_clear()
    state = torch.random.get_rng_state()
    model_stats("cnn_wide")
    assert torch.equal(torch.random.get_rng_state(), state)


# --- training reproduces the shipped weights ----------------------------------------------


def test_train_zoo_reproduces_shipped_linear_file_bitwise(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()
    lines: list[str] = []
    written = train_zoo(tmp_path, names=["linear"], progress=lines.append)
    assert written == {"linear": tmp_path / "linear.safetensors"}
    assert written["linear"].read_bytes() == weights_path("linear").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["linear.safetensors"]  # no temp file left
    assert len(lines) == 1 and "linear" in lines[0]
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_retraining_mlp_reproduces_shipped_tensors_bitwise() -> None:
    shipped = load_file(str(weights_path("mlp")))
    trained = train_model("mlp").state_dict()
    assert set(trained) == set(shipped)
    for key, value in trained.items():
        assert torch.equal(value, shipped[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn_small", "cnn_wide"])
def test_retraining_cnns_reproduces_shipped_tensors_bitwise(name: str, request) -> None:
    if "slow" not in request.config.getoption("markexpr"):
        pytest.skip("about a minute of training; run with -m slow")
    shipped = load_file(str(weights_path(name)))
    trained = train_model(name).state_dict()
    assert set(trained) == set(shipped)
    for key, value in trained.items():
        assert torch.equal(value, shipped[key]), key


# --- the card is generated, and shows the capacity gap ------------------------------------


def test_card_json_equals_fresh_evaluation(card: dict) -> None:
    shipped = json.loads((ZOO_DIR / "card.json").read_text(encoding="utf-8"))
    assert card == shipped
    markdown = (ZOO_DIR / "CARD.md").read_text(encoding="utf-8")
    assert "mtenv zoo card" in markdown.splitlines()[0]
    assert card_table(card) in markdown


def test_write_card_writes_both_files(tmp_path: Path, card: dict) -> None:
    json_path, md_path = write_card(tmp_path)
    assert json.loads(json_path.read_text(encoding="utf-8")) == card
    assert md_path.read_text(encoding="utf-8") == (ZOO_DIR / "CARD.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CARD.md", "card.json"]


def test_card_metrics_are_consistent(card: dict) -> None:
    pool = serving_pool()
    assert card["pool"]["n_inputs"] == pool.n_inputs
    for name, m in card["models"].items():
        assert len(m["accuracy_per_level"]) == N_LEVELS
        # Levels have equal size, so overall accuracy is the mean over levels.
        assert m["accuracy"] == pytest.approx(np.mean(m["accuracy_per_level"]), abs=1e-3), name
        assert 0.0 <= m["ece"] <= 1.0
        assert len(m["precision"]) == len(m["recall"]) == len(m["f1"]) == 10
        assert m["macro"]["recall"] == pytest.approx(np.mean(m["recall"]), abs=1e-3)


def test_small_model_degrades_with_level_and_wide_cnn_wins_hard_inputs(card: dict) -> None:
    small = card["models"]["linear"]["accuracy_per_level"]
    wide = card["models"]["cnn_wide"]["accuracy_per_level"]
    assert all(a > b for a, b in itertools.pairwise(small)), small
    assert min(small[0], wide[0]) >= 0.9
    hardest = {name: m["accuracy_per_level"][-1] for name, m in card["models"].items()}
    assert max(hardest, key=hardest.get) == "cnn_wide"
    assert wide[-1] - small[-1] >= 0.3
    assert small[0] - small[-1] > 2 * (wide[0] - wide[-1])


# --- data: corruptions, split and pools ---------------------------------------------------


def test_load_digits() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels)) == set(range(10))


def test_split_is_disjoint_complete_and_stratified() -> None:
    splits = split_indices()
    parts = [splits.train, splits.validation, splits.serving]
    joined = np.concatenate(parts)
    assert len(joined) == 1797 and len(np.unique(joined)) == 1797
    assert [round(len(p) / 1797, 1) for p in parts] == [0.6, 0.2, 0.2]
    _, labels = load_digits()
    for part in parts:
        assert set(np.unique(labels[part])) == set(range(10))


def test_corruption_is_deterministic_and_grows_with_level() -> None:
    images, _ = load_digits()
    base = images[:300]
    assert np.array_equal(corrupt(base, 0, np.random.default_rng(0)), base)
    changes = []
    for level in range(N_LEVELS):
        a = corrupt(base, level, np.random.default_rng(7))
        b = corrupt(base, level, np.random.default_rng(7))
        assert np.array_equal(a, b)
        assert a.shape == base.shape and a.dtype == np.float32
        assert a.min() >= 0.0 and a.max() <= 1.0
        if level > 0:
            assert not np.array_equal(a, corrupt(base, level, np.random.default_rng(8)))
        changes.append(float(np.abs(a - base).mean()))
    assert changes[0] == 0.0
    assert all(x < y for x, y in itertools.pairwise(changes)), changes
    assert np.array_equal(base, images[:300])  # the input is not modified


def test_corrupt_rejects_bad_level() -> None:
    with pytest.raises(ZooError, match="level"):
        corrupt(np.zeros((1, 8, 8)), N_LEVELS, np.random.default_rng(0))


@pytest.mark.parametrize("make_pool", [serving_pool, validation_pool])
def test_pool_layout(make_pool) -> None:
    pool = make_pool()
    n = pool.n_per_level
    assert make_pool() is pool  # cached
    assert pool.n_inputs == N_LEVELS * n
    assert pool.inputs.shape == (N_LEVELS * n, 1, 8, 8)
    assert pool.inputs.dtype == torch.float32 and pool.inputs.is_contiguous()
    assert pool.labels.dtype == np.int64 and pool.levels.dtype == np.int64
    ids = np.arange(pool.n_inputs)
    assert np.array_equal(pool.levels, ids // n)
    assert np.array_equal(pool.labels, pool.labels[ids % n])
    for level in range(N_LEVELS):
        at = pool.ids_at_level(level)
        assert np.array_equal(at, np.arange(level * n, (level + 1) * n))
        assert (pool.levels[at] == level).all()
    with pytest.raises(ZooError):
        pool.ids_at_level(N_LEVELS)


def test_serving_pool_level0_is_the_clean_serving_split() -> None:
    pool = serving_pool()
    images, labels = load_digits()
    serving = split_indices().serving
    clean = pool.inputs[pool.ids_at_level(0), 0].numpy()
    assert np.array_equal(clean, images[serving])
    assert np.array_equal(pool.labels[: pool.n_per_level], labels[serving])
    hard = pool.inputs[pool.ids_at_level(N_LEVELS - 1), 0].numpy()
    assert not np.array_equal(hard, clean)


# --- bad input ------------------------------------------------------------------------------


def _write(path: Path, tensors: dict[str, torch.Tensor], architecture: str = "linear") -> Path:
    save_file(tensors, str(path), metadata={"architecture": architecture, "format_version": "1"})
    return path


def test_missing_weights_file_raises_naming_it(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "linear.safetensors"
    monkeypatch.setattr(store, "weights_path", lambda name: missing)
    with pytest.raises(ZooError, match=r"linear\.safetensors.*does not exist.*mtenv zoo train"):
        load_model("linear")


def test_truncated_weights_file_raises_naming_it(tmp_path: Path) -> None:
    good = weights_path("linear").read_bytes()
    path = tmp_path / "broken.safetensors"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ZooError, match=r"broken\.safetensors"):
        load_model("linear", path=path)
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ZooError, match=r"broken\.safetensors"):
        load_model("linear", path=path)


def test_wrong_shape_missing_or_extra_tensor_raises(tmp_path: Path) -> None:
    good = load_file(str(weights_path("linear")))
    bad_shape = {**good, "1.weight": torch.zeros(10, 65)}
    path = _write(tmp_path / "shape.safetensors", bad_shape)
    with pytest.raises(ZooError, match=r"shape\.safetensors.*'1\.weight'.*\[10, 65\].*\[10, 64\]"):
        load_model("linear", path=path)

    path = _write(tmp_path / "missing.safetensors", {"1.weight": good["1.weight"]})
    with pytest.raises(ZooError, match=r"missing\.safetensors has no tensor '1\.bias'"):
        load_model("linear", path=path)

    path = _write(tmp_path / "extra.safetensors", {**good, "2.weight": torch.zeros(1)})
    with pytest.raises(ZooError, match=r"extra\.safetensors.*unexpected.*2\.weight"):
        load_model("linear", path=path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "mlp.safetensors", load_file(str(weights_path("mlp"))), "mlp")
    with pytest.raises(ZooError, match=r"mlp\.safetensors.*architecture 'mlp', expected 'linear'"):
        load_model("linear", path=path)


def test_save_weights_round_trip_and_leaves_no_temp_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = build_model("cnn_small")
    path = save_weights(
        module, tmp_path / "sub" / "cnn_small.safetensors", {"architecture": "cnn_small"}
    )
    loaded = load_model("cnn_small", path=path)
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert [p.name for p in path.parent.iterdir()] == ["cnn_small.safetensors"]


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("cnn_wid", "cnn_wide"), ("Linear", "linear"), ("mpl", "mlp")]
)
def test_unknown_model_name_suggests_closest(typo: str, suggestion: str) -> None:
    for call in (build_model, model_stats, load_model, weights_path):
        with pytest.raises(ZooError, match=f"did you mean '{suggestion}'") as info:
            call(typo)
        assert all(name in str(info.value) for name in MODEL_NAMES)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_raises() -> None:
    with pytest.raises(ZooError, match="CUDA is not available"):
        load_model("linear", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_runs_on_cuda() -> None:
    model = load_model("cnn_wide", device="cuda")
    assert next(model.parameters()).is_cuda
    out = model(serving_pool().inputs[:4].cuda())
    assert out.shape == (4, 10)
