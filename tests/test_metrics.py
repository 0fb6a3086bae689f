"""Episode metrics: streaming latency quantiles with bounded error and bounded memory,
per-class scores from a confusion matrix, and the across-episode summary statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtenv.core.metrics import LatencyHistogram, per_class_scores
from mtenv.tools.evaluation import flatten_metrics, summarize, summarize_runs

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999)


def filled(values: np.ndarray, **kwargs: float) -> LatencyHistogram:
    hist = LatencyHistogram(**kwargs)
    for v in values:
        hist.add(float(v))
    return hist


# --- LatencyHistogram --------------------------------------------------------------------------


@pytest.mark.parametrize(("median_s", "sigma"), [(5e-3, 0.5), (2e-2, 1.0), (1e-3, 2.0)])
def test_quantiles_are_within_one_percent_of_exact(median_s: float, sigma: float) -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=math.log(median_s), sigma=sigma, size=20_000)
    hist = filled(samples)
    assert hist.count == len(samples)
    for q in QUANTILES:
        exact = float(np.quantile(samples, q))
        assert hist.quantile(q) == pytest.approx(exact, rel=0.01), q


def test_quantiles_of_few_samples_are_the_samples_themselves() -> None:
    values = [0.004, 0.010, 0.025]
    hist = filled(np.array(values))
    assert hist.quantile(0.0) == pytest.approx(0.004, rel=0.01)
    assert hist.quantile(0.5) == pytest.approx(0.010, rel=0.01)
    assert hist.quantile(1.0) == pytest.approx(0.025, rel=0.01)


def test_quantiles_are_monotone_in_q() -> None:
    rng = np.random.default_rng(3)
    hist = filled(rng.lognormal(-4, 1.5, size=2_000))
    qs = np.linspace(0, 1, 101)
    reported = [hist.quantile(q) for q in qs]
    assert reported == sorted(reported)


def test_empty_histogram_gives_nan() -> None:
    hist = LatencyHistogram()
    assert hist.count == 0
    for q in (0.0, 0.5, 0.99, 1.0):
        assert math.isnan(hist.quantile(q))


def test_out_of_range_values_are_clamped_to_the_end_buckets() -> None:
    hist = LatencyHistogram(min_value=1e-6, max_value=1e3)
    for v in (0.0, 1e-9, 1e9):
        hist.add(v)
    assert hist.count == 3
    assert hist.quantile(0.0) == pytest.approx(1e-6, rel=0.01)
    assert 1e3 <= hist.quantile(1.0) <= 1e3 * 1.03


def _footprint(obj: object) -> dict[str, int]:
    """The size of each attribute: bytes of arrays, length of containers, 0 for scalars."""
    sizes = {}
    for key, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            sizes[key] = value.nbytes
        elif isinstance(value, list | dict | set | tuple | bytes | bytearray):
            sizes[key] = len(value)
        else:
            sizes[key] = 0
    return sizes


def test_memory_does_not_grow_with_samples() -> None:
    hist = LatencyHistogram()
    hist.add(0.01)
    before = _footprint(hist)
    rng = np.random.default_rng(0)
    for v in rng.lognormal(-5, 2, size=100_000):
        hist.add(float(v))
    assert hist.count == 100_001
    assert sum(hist.counts) == 100_001
    assert _footprint(hist) == before, "no attribute grows with the number of samples"


# --- per-class scores --------------------------------------------------------------------------


def test_per_class_scores_match_hand_computation() -> None:
    # rows: true class, columns: answer. Class 3 never occurs and is never predicted.
    confusion = np.array(
        [
            [5, 1, 0, 0],
            [2, 3, 1, 0],
            [0, 0, 4, 0],
            [0, 0, 0, 0],
        ]
    )
    scores = per_class_scores(confusion)
    assert list(scores) == ["0", "1", "2", "3"]
    expected = {
        # precision = tp / column sum, recall = tp / row sum, f1 = harmonic mean
        "0": {"precision": 5 / 7, "recall": 5 / 6, "f1": 10 / 13, "support": 6},
        "1": {"precision": 3 / 4, "recall": 3 / 6, "f1": 3 / 5, "support": 6},
        "2": {"precision": 4 / 5, "recall": 4 / 4, "f1": 8 / 9, "support": 4},
        "3": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    }
    for cls, want in expected.items():
        assert scores[cls] == pytest.approx(want), cls


def test_per_class_scores_of_a_perfect_classifier_are_one() -> None:
    scores = per_class_scores(np.diag([3, 1, 7]))
    for s in scores.values():
        assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)


def test_class_predicted_but_never_true_has_zero_recall_and_f1() -> None:
    scores = per_class_scores(np.array([[2, 2], [0, 0]]))
    assert scores["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0.0}
    assert scores["0"]["precision"] == 1.0
    assert scores["0"]["recall"] == 0.5


# --- summaries across episodes -----------------------------------------------------------------


def test_summarize_hand_checked_sample() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5
    assert s.mean == pytest.approx(3.0)
    assert s.std == pytest.approx(math.sqrt(2.5))  # sample standard deviation (ddof = 1)
    # Student t with 4 degrees of freedom: 2.776; half-width t · s / √n.
    assert s.ci95 == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert s.ci95 == pytest.approx(1.9629, abs=1e-4)


def test_summarize_two_samples_uses_t_with_one_degree_of_freedom() -> None:
    s = summarize([0.0, 2.0])
    assert (s.mean, s.std) == pytest.approx((1.0, math.sqrt(2.0)))
    assert s.ci95 == pytest.approx(12.706)


def test_summarize_many_samples_uses_the_normal_quantile() -> None:
    x = np.arange(100, dtype=float)
    s = summarize(x)
    assert s.ci95 == pytest.approx(1.96 * x.std(ddof=1) / 10)


def test_summarize_one_and_no_samples() -> None:
    one = summarize([4.2])
    assert (one.mean, one.std, one.n) == (4.2, 0.0, 1)
    assert math.isnan(one.ci95)
    none = summarize([])
    assert none.n == 0
    assert all(math.isnan(v) for v in (none.mean, none.std, none.ci95))


def test_summarize_runs_flattens_nested_metrics() -> None:
    runs = [
        {"accuracy": 0.5, "utilization": {"t4-0": 0.2, "a100-1": 0.4}},
        {"accuracy": 0.7, "utilization": {"t4-0": 0.4, "a100-1": 0.6}},
    ]
    assert flatten_metrics(runs[0]) == {
        "accuracy": 0.5,
        "utilization.t4-0": 0.2,
        "utilization.a100-1": 0.4,
    }
    summary = summarize_runs(runs)
    assert set(summary) == {"accuracy", "utilization.t4-0", "utilization.a100-1"}
    assert summary["accuracy"].mean == pytest.approx(0.6)
    assert summary["utilization.a100-1"].mean == pytest.approx(0.5)
    assert summary["utilization.t4-0"].n == 2
