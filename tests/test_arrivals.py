"""Specifications of the arrival processes (mtenv.core.arrivals) and trace files
(mtenv.core.traces).

Statistical checks use fixed seeds and tolerances of 5 standard errors taken from the theory of
each process (stated next to each check), so a failure means a real deviation, not bad luck.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtenv.core.arrivals import (
    ARRIVAL_PROCESSES,
    ArrivalProcess,
    DiurnalArrivals,
    GammaArrivals,
    OnOffArrivals,
    PoissonArrivals,
    SpikeArrivals,
    TraceArrivals,
)
from mtenv.core.traces import (
    TraceError,
    load_counts_csv,
    load_timestamps_csv,
    write_timestamps_csv,
)

HORIZON = 2000.0  # seconds simulated by the rate checks (about 10⁵ arrivals at 50/s)


def take(proc: ArrivalProcess, n: int) -> np.ndarray:
    """The next ``n`` arrival times."""
    nxt = proc.next_arrival
    return np.array([nxt() for _ in range(n)])


def until(proc: ArrivalProcess, horizon: float) -> np.ndarray:
    """All arrival times up to ``horizon`` (the first one after it is dropped)."""
    nxt = proc.next_arrival
    out = []
    t = nxt()
    while t <= horizon:
        out.append(t)
        t = nxt()
    return np.array(out)


def started(proc: ArrivalProcess, seed: int = 12345) -> ArrivalProcess:
    proc.reset(np.random.default_rng(seed))
    return proc


def onoff_idc(rate_on: float, rate_off: float, mean_on: float, mean_off: float, w: float) -> float:
    """Index of dispersion of counts in a window ``w`` of a stationary two-state MMPP."""
    r = 1 / mean_on + 1 / mean_off
    p_on = mean_on / (mean_on + mean_off)
    mean = rate_on * p_on + rate_off * (1 - p_on)
    big = 2 * (rate_on - rate_off) ** 2 * p_on * (1 - p_on) / (r * mean)
    return 1 + big * (1 - (1 - math.exp(-r * w)) / (r * w))


TRACE_TS = np.sort(np.random.default_rng(7).uniform(0.0, 40.0, 2000)) + 3.0


@dataclass(frozen=True)
class Case:
    """A process, its long-run rate from theory, and mean/variance of the count in [0, T]."""

    make: Callable[[], ArrivalProcess]
    rate: float
    mean: Callable[[float], float]
    var: Callable[[float], float]
    slack: float = 1.0  # O(1) terms the asymptotic formulas leave out


CASES: dict[str, Case] = {
    "poisson": Case(lambda: PoissonArrivals(50.0), 50.0, lambda t: 50 * t, lambda t: 50 * t),
    # Renewal: E N(T) = T/m + (cv² − 1)/2 + o(1), Var N(T) ≈ cv²·T/m.
    "gamma-bursty": Case(
        lambda: GammaArrivals(50.0, 2.0), 50.0, lambda t: 50 * t + 1.5, lambda t: 4 * 50 * t, 3
    ),
    "gamma-smooth": Case(
        lambda: GammaArrivals(50.0, 0.5), 50.0, lambda t: 50 * t - 0.375, lambda t: 0.25 * 50 * t, 3
    ),
    # Stationary MMPP: E N(T) = mean_rate·T; Var N(T) <= IDC(∞)·mean_rate·T.
    "onoff-silent-off": Case(
        lambda: OnOffArrivals(200.0, 0.0, 0.1, 0.3),
        50.0,
        lambda t: 50 * t,
        lambda t: onoff_idc(200, 0, 0.1, 0.3, 1e9) * 50 * t,
    ),
    "onoff": Case(
        lambda: OnOffArrivals(120.0, 20.0, 0.2, 0.2),
        70.0,
        lambda t: 70 * t,
        lambda t: onoff_idc(120, 20, 0.2, 0.2, 1e9) * 70 * t,
    ),
    # NHPP over whole periods: Poisson with mean mean_rate·T.
    "diurnal": Case(
        lambda: DiurnalArrivals(50.0, 0.8, period_s=100.0, phase=0.1),
        50.0,
        lambda t: 50 * t,
        lambda t: 50 * t,
    ),
    # Piecewise-constant NHPP: Poisson with mean Λ(T).
    "spike": Case(
        lambda: SpikeArrivals(50.0, 400.0, start_s=100.0, duration_s=20.0),
        50.0,
        lambda t: 50 * t + 350 * 20,
        lambda t: 50 * t + 350 * 20,
    ),
    "step": Case(
        lambda: SpikeArrivals(50.0, 80.0, start_s=100.0, duration_s=math.inf),
        50.0,  # documented: mean_rate is the base rate even for a step
        lambda t: 50 * 100 + 80 * (t - 100),
        lambda t: 50 * 100 + 80 * (t - 100),
    ),
    # Deterministic: within one copy of the trace of the long-run count.
    "trace": Case(
        lambda: TraceArrivals(TRACE_TS),
        (TRACE_TS.size - 1) / (TRACE_TS[-1] - TRACE_TS[0]),
        lambda t: (TRACE_TS.size - 1) / (TRACE_TS[-1] - TRACE_TS[0]) * t,
        lambda t: 0.0,
        TRACE_TS.size,
    ),
}
NAMES = list(CASES)


# --------------------------------------------------------------------------------------------
# properties every process has


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_times(name: str) -> None:
    case = CASES[name]
    a = take(started(case.make(), 99), 1000)
    b = take(started(case.make(), 99), 1000)
    np.testing.assert_array_equal(a, b)
    # reset restarts the same object at time 0
    proc = started(case.make(), 99)
    take(proc, 3000)
    np.testing.assert_array_equal(take(started(proc, 99), 1000), a)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "trace"])
def test_other_seed_other_times(name: str) -> None:
    make = CASES[name].make
    assert not np.array_equal(take(started(make(), 1), 100), take(started(make(), 2), 100))


@pytest.mark.parametrize("name", NAMES)
def test_caller_rng_advances_independently_of_arrivals_used(name: str) -> None:
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    p, q = CASES[name].make(), CASES[name].make()
    p.reset(rng_a)
    q.reset(rng_b)
    take(p, 10)
    take(q, 5000)
    assert rng_a.random() == rng_b.random()


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_continues_identically(name: str) -> None:
    proc = started(CASES[name].make())
    take(proc, 1500)
    twin = copy.deepcopy(proc)
    np.testing.assert_array_equal(take(proc, 2000), take(twin, 2000))


@pytest.mark.parametrize(
    "make",
    [CASES[n].make for n in NAMES]
    + [
        lambda: GammaArrivals(1000.0, 10.0),  # shape 0.01: many gaps round to 0
        lambda: OnOffArrivals(5.0, 0.0, 0.01, 0.01),  # many switches per arrival
        lambda: SpikeArrivals(10.0, 1e5, start_s=0.0, duration_s=1e-3),
        lambda: DiurnalArrivals(20.0, 1.0, period_s=0.5),
    ],
)
def test_times_strictly_increasing_and_positive(make: Callable[[], ArrivalProcess]) -> None:
    t = take(started(make()), 20_000)
    assert t[0] >= 0
    assert np.all(np.isfinite(t))
    assert np.all(np.diff(t) > 0)


@pytest.mark.parametrize("name", NAMES)
def test_mean_rate_is_the_theoretical_rate(name: str) -> None:
    assert CASES[name].make().mean_rate == pytest.approx(CASES[name].rate, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_count_over_horizon_matches_theory(name: str, seed: int) -> None:
    """|N(T) − E N(T)| <= 5 sd(N(T)) (+ O(1) slack), T = 2000 s."""
    case = CASES[name]
    n = until(started(case.make(), seed), HORIZON).size
    tol = 5 * math.sqrt(case.var(HORIZON)) + case.slack
    assert abs(n - case.mean(HORIZON)) <= tol, (n, case.mean(HORIZON), tol)


def test_next_arrival_before_reset_raises() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        PoissonArrivals(1.0).next_arrival()


def test_reset_needs_a_generator() -> None:
    with pytest.raises(TypeError, match="Generator"):
        PoissonArrivals(1.0).reset(42)  # type: ignore[arg-type]


def test_registry_names_every_process() -> None:
    assert set(ARRIVAL_PROCESSES) == {"poisson", "gamma", "onoff", "diurnal", "spike", "trace"}
    assert "rate=2.0" in repr(PoissonArrivals(2))


# --------------------------------------------------------------------------------------------
# per-process behaviour


@pytest.mark.parametrize("cv", [2.0, 0.5])
def test_gamma_gap_cv(cv: float) -> None:
    """Sample CV within 5 sd: Var(log s) ≈ (2 + 6/k)/(4n) (Gamma excess kurtosis 6/k),
    Var(log mean) = cv²/n."""
    n = 200_000
    gaps = np.diff(take(started(GammaArrivals(50.0, cv), 3), n + 1))
    k = 1 / cv**2
    rel_sd = math.sqrt((2 + 6 / k) / (4 * n) + cv**2 / n)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=5 * rel_sd)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=5 * cv / math.sqrt(n))


def test_gamma_cv_one_looks_poisson() -> None:
    gaps = np.diff(take(started(GammaArrivals(10.0, 1.0)), 100_001))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.02)


def window_idc(times: np.ndarray, horizon: float, w: float) -> float:
    counts = np.histogram(times, bins=np.arange(0.0, horizon + w / 2, w))[0]
    return float(counts.var(ddof=1) / counts.mean())


def test_onoff_counts_overdispersed() -> None:
    """Index of dispersion in 1 s windows ≈ the MMPP formula (≈ 74 here), Poisson ≈ 1."""
    horizon = 4000.0
    theory = onoff_idc(200, 0, 0.5, 1.5, 1.0)
    idc = window_idc(until(started(OnOffArrivals(200.0, 0.0, 0.5, 1.5), 4), horizon), horizon, 1.0)
    assert idc > 1
    assert 0.8 * theory < idc < 1.2 * theory, (idc, theory)
    # Control: Poisson counts have IDC 1 ± 5·sqrt(2/(m − 1)).
    poisson = window_idc(until(started(PoissonArrivals(50.0), 4), horizon), horizon, 1.0)
    assert abs(poisson - 1) < 5 * math.sqrt(2 / (horizon - 1))


def test_onoff_starts_stationary() -> None:
    """Mean count in [0, 0.2 s] over 2000 resets ≈ mean_rate·0.2 = 10 (≈ 33 if it always
    started ON); sd of the mean = sqrt(10·IDC(0.2)/2000) ≈ 0.36."""
    proc = OnOffArrivals(200.0, 0.0, 0.5, 1.5)
    w, reps = 0.2, 2000
    counts = [until(started(proc, seed), w).size for seed in range(reps)]
    sd = math.sqrt(50 * w * onoff_idc(200, 0, 0.5, 1.5, w) / reps)
    assert abs(np.mean(counts) - 50 * w) < 5 * sd


def test_diurnal_peak_quarter_beats_trough_quarter() -> None:
    """Quarter-period windows centred on the peak and the trough of λ(t); over k periods their
    counts are Poisson with means k·m·P·(1/4 ± a·√2/(2π))."""
    m, a, period, phase, k = 50.0, 0.8, 100.0, 0.1, 20
    t = until(started(DiurnalArrivals(m, a, period_s=period, phase=phase), 8), k * period)
    x = np.mod(t / period + phase, 1.0)  # position in the cycle; the peak is at x = 1/4
    peak = int(np.count_nonzero((x >= 0.125) & (x < 0.375)))
    trough = int(np.count_nonzero((x >= 0.625) & (x < 0.875)))
    assert peak > trough
    for got, sign in ((peak, 1), (trough, -1)):
        mean = k * m * period * (0.25 + sign * a * math.sqrt(2) / (2 * math.pi))
        assert abs(got - mean) < 5 * math.sqrt(mean), (got, mean)


def test_diurnal_intensity_formula() -> None:
    proc = DiurnalArrivals(10.0, 0.5, period_s=40.0, phase=0.25)
    assert proc.intensity(0.0) == pytest.approx(15.0)  # phase 1/4: starts at the peak
    assert proc.intensity(20.0) == pytest.approx(5.0)


def test_spike_window_rate() -> None:
    """Counts before, inside and after the window are Poisson(rate × length)."""
    t = until(started(SpikeArrivals(50.0, 400.0, start_s=100.0, duration_s=20.0), 6), 220.0)
    for lo, hi, rate in ((0, 100, 50), (100, 120, 400), (120, 220, 50)):
        got = np.count_nonzero((t >= lo) & (t < hi))
        mean = rate * (hi - lo)
        assert abs(got - mean) < 5 * math.sqrt(mean), (lo, hi, got, mean)


def test_spike_to_zero_is_an_outage() -> None:
    t = until(started(SpikeArrivals(50.0, 0.0, start_s=10.0, duration_s=5.0)), 100.0)
    assert not np.any((t >= 10.0) & (t < 15.0))
    assert np.count_nonzero(t >= 15.0) > 0


def test_step_to_zero_ends_the_stream() -> None:
    proc = started(SpikeArrivals(50.0, 0.0, start_s=10.0, duration_s=math.inf))
    t = take(proc, 3000)
    finite = t[np.isfinite(t)]
    assert 0 < finite.size < 3000 and finite[-1] < 10.0
    assert np.all(np.isinf(t[finite.size :]))
    assert proc.next_arrival() == math.inf
    assert proc.intensity(5.0) == 50.0 and proc.intensity(1e9) == 0.0


def test_step_from_time_zero() -> None:
    """start_s = 0 with an infinite window: Poisson at spike_rate from the start."""
    n = until(started(SpikeArrivals(5.0, 200.0, start_s=0.0, duration_s=math.inf)), 100.0).size
    assert abs(n - 20_000) < 5 * math.sqrt(20_000)


def test_trace_replays_shifted_timestamps() -> None:
    proc = started(TraceArrivals([2.0, 3.0, 3.5, 6.0], loop=False))
    assert take(proc, 4).tolist() == [0.0, 1.0, 1.5, 4.0]


def test_trace_rate_scale_two_halves_gaps() -> None:
    one = take(started(TraceArrivals(TRACE_TS, rate_scale=1.0)), 5000)
    two = take(started(TraceArrivals(TRACE_TS, rate_scale=2.0)), 5000)
    np.testing.assert_allclose(np.diff(two), np.diff(one) / 2, rtol=1e-12, atol=1e-12)
    assert TraceArrivals(TRACE_TS, 2.0).mean_rate == pytest.approx(2 * CASES["trace"].rate)


def test_trace_loops_one_mean_gap_after_the_end() -> None:
    ts = [0.0, 1.0, 3.0]  # span 3, mean gap 1.5: copies start every 4.5 s
    proc = started(TraceArrivals(ts, rate_scale=1.5))
    t = take(proc, 3 * 1000)  # crosses several internal blocks
    expected = (np.add.outer(4.5 * np.arange(1000), ts).ravel()) / 1.5
    np.testing.assert_allclose(t, expected, rtol=1e-12)
    # long-run rate: 3 arrivals per 4.5 s, times 1.5
    assert proc.mean_rate == pytest.approx(1.0)


def test_trace_without_loop_ends_with_inf() -> None:
    proc = started(TraceArrivals(TRACE_TS, loop=False))
    t = take(proc, TRACE_TS.size)
    assert t[-1] == pytest.approx(TRACE_TS[-1] - TRACE_TS[0])
    rest = take(proc, 3000)
    assert np.all(rest == math.inf)


def test_trace_equal_stamps_are_simultaneous() -> None:
    t = take(started(TraceArrivals([0.0, 1.0, 1.0, 2.0])), 8)
    assert np.all(np.diff(t) >= 0)
    assert t.tolist()[:4] == [0.0, 1.0, 1.0, 2.0]


# --------------------------------------------------------------------------------------------
# parameter validation


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: PoissonArrivals(-1.0), "rate"),
        (lambda: PoissonArrivals(0.0), "rate"),
        (lambda: PoissonArrivals(math.nan), "rate"),
        (lambda: PoissonArrivals(math.inf), "rate"),
        (lambda: PoissonArrivals(True), "rate"),
        (lambda: PoissonArrivals("5"), "rate"),
        (lambda: GammaArrivals(-2.0, 1.0), "rate"),
        (lambda: GammaArrivals(2.0, 0.0), "cv"),
        (lambda: GammaArrivals(2.0, -1.0), "cv"),
        (lambda: OnOffArrivals(-1.0, 0.0, 1.0, 1.0), "rate_on"),
        (lambda: OnOffArrivals(1.0, -1.0, 1.0, 1.0), "rate_off"),
        (lambda: OnOffArrivals(0.0, 0.0, 1.0, 1.0), "rate_on and rate_off"),
        (lambda: OnOffArrivals(1.0, 0.0, 0.0, 1.0), "mean_on_s"),
        (lambda: OnOffArrivals(1.0, 0.0, 1.0, math.inf), "mean_off_s"),
        (lambda: DiurnalArrivals(10.0, 1.5, 60.0), "amplitude"),
        (lambda: DiurnalArrivals(10.0, -0.1, 60.0), "amplitude"),
        (lambda: DiurnalArrivals(-10.0, 0.5, 60.0), "mean_rate"),
        (lambda: DiurnalArrivals(10.0, 0.5, 0.0), "period_s"),
        (lambda: DiurnalArrivals(10.0, 0.5, 60.0, math.nan), "phase"),
        (lambda: SpikeArrivals(0.0, 1.0, 0.0, 1.0), "base_rate"),
        (lambda: SpikeArrivals(1.0, -1.0, 0.0, 1.0), "spike_rate"),
        (lambda: SpikeArrivals(1.0, 1.0, -1.0, 1.0), "start_s"),
        (lambda: SpikeArrivals(1.0, 1.0, 0.0, 0.0), "duration_s"),
        (lambda: TraceArrivals([0.0, 1.0], rate_scale=0.0), "rate_scale"),
        (lambda: TraceArrivals([1.0]), "at least 2"),
        (lambda: TraceArrivals([0.0, 2.0, 1.0]), "sorted"),
        (lambda: TraceArrivals([0.0, math.nan]), "finite"),
        (lambda: TraceArrivals([1.0, 1.0]), "positive time"),
        (lambda: TraceArrivals([[0.0, 1.0]]), "1-D"),
        (lambda: TraceArrivals(["a", "b"]), "timestamps"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(
    make: Callable[[], ArrivalProcess], param: str
) -> None:
    with pytest.raises(ValueError, match=param):
        make()


# --------------------------------------------------------------------------------------------
# trace files


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("timestamp\n3.5\n1.0\n2.0\n", [0.0, 1.0, 2.5]),  # unsorted rows are sorted
        ("id, Timestamp_S ,x\r\n1,10,a\r\n\r\n2, 12.5 ,b\r\n", [0.0, 2.5]),  # CRLF, blank, case
        ("\ufefftimestamp_s\n0\n1e-3\n", [0.0, 1e-3]),  # byte-order mark
        ('"timestamp","note"\n"1.5","a,b"\n"2.5","c"\n', [0.0, 1.0]),  # quoted fields
        # Azure Functions 2021: arrival = end_timestamp - duration
        ("app,func,end_timestamp,duration\na,f,10.5,0.5\na,g,12.0,3.0\nb,f,11,0\n", [0, 1, 2]),
        ("end_timestamp\n4\n6\n", [0.0, 2.0]),
    ],
)
def test_timestamps_csv_loads(tmp_path: Path, content: str, expected: list[float]) -> None:
    got = load_timestamps_csv(write(tmp_path / "trace.csv", content))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected)


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    ts = np.sort(np.random.default_rng(0).exponential(3.0, 500).cumsum())
    ts -= ts[0]
    path = write_timestamps_csv(tmp_path / "out.csv", ts)
    np.testing.assert_array_equal(load_timestamps_csv(path), ts)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left
    proc = started(TraceArrivals(load_timestamps_csv(path)))
    np.testing.assert_array_equal(take(proc, 500), ts)
    with pytest.raises(ValueError, match="non-negative"):
        write_timestamps_csv(tmp_path / "bad.csv", [-1.0, 2.0])


BAD_TIMESTAMPS = [
    ("", 1, "empty file"),
    ("\n\n", 1, "empty file"),
    ("time\n1\n2\n", 1, "'timestamp'"),
    ("timestamp\n1\nabc\n", 3, "non-negative number"),
    ("timestamp\n1\n-2\n", 3, "negative"),
    ("timestamp\n1\nnan\n", 3, "not finite"),
    ("timestamp\n1\ninf\n", 3, "not finite"),
    ("x,timestamp\n1,2\n3\n", 3, "missing the 'timestamp' column"),
    ("x,timestamp\n1,2\n3,\n", 3, "empty 'timestamp'"),
    ("timestamp\n1\n\n\n x\n", 5, "non-negative number"),  # blank lines still count
    ("timestamp\n1\n", 2, "at least 2"),
    ("timestamp\n", 1, "at least 2"),
    ("timestamp\n5\n5\n", 3, "same time"),
    ("timestamp,timestamp_s\n1,2\n", 1, "both"),
    ("timestamp,timestamp\n1,2\n", 1, "more than once"),
    ("end_timestamp,duration\n5,1\n6,x\n", 3, "'duration'"),
    (b"timestamp\n1\n\xff\xfe2\n", 3, "UTF-8"),
    ("timestamp\n1\n2\x00\n", 3, ""),
    ("timestamp\n1\n2\r3\n", 3, "malformed CSV"),  # a bare carriage return inside a line
    ("timestamp\n1\n" + "9" * 200_000 + "\n", 3, "line longer than"),  # bounded line length
    ('timestamp\n1\n"2\n3\n', 4, ""),  # an unterminated quote swallows the rest of the file
]


@pytest.mark.parametrize(("content", "line", "fragment"), BAD_TIMESTAMPS)
def test_bad_timestamps_csv_names_file_and_line(
    tmp_path: Path, content: str | bytes, line: int, fragment: str
) -> None:
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(TraceError) as info:
        load_timestamps_csv(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert fragment in str(info.value)
    assert info.value.line == line and info.value.path == str(path)


def test_unreadable_trace_file_is_a_trace_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.csv", tmp_path):
        with pytest.raises(TraceError) as info:
            load_timestamps_csv(path)
        assert str(info.value).startswith(f"{path}: ")
        with pytest.raises(TraceError):
            load_counts_csv(path)


def test_trace_error_pickles() -> None:
    err = TraceError("a.csv", 3, "bad")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "a.csv:3: bad" and back.line == 3 and isinstance(back, ValueError)


def test_counts_csv_long_format(tmp_path: Path) -> None:
    path = write(tmp_path / "counts.csv", "minute,count\n0,3\n1,0\n2,2.0\n")
    t = load_counts_csv(path)
    assert t.size == 5 and np.all(np.diff(t) >= 0)
    assert np.histogram(t, bins=[0, 60, 120, 180])[0].tolist() == [3, 0, 2]
    np.testing.assert_array_equal(load_counts_csv(path), t)  # default rng is seeded
    other = load_counts_csv(path, rng=np.random.default_rng(1))
    assert not np.array_equal(other, t)
    short = load_counts_csv(path, bin_s=1.0, rng=np.random.default_rng(1))
    assert np.histogram(short, bins=[0, 1, 2, 3])[0].tolist() == [3, 0, 2]


def test_counts_csv_azure_2019_wide_rows_are_summed(tmp_path: Path) -> None:
    content = "HashOwner,HashApp,HashFunction,Trigger,1,2,3\no,a,f,http,1,0,2\no,a,g,timer,0,4,0\n"
    t = load_counts_csv(write(tmp_path / "azure.csv", content))
    assert np.histogram(t, bins=[0, 60, 120, 180])[0].tolist() == [1, 4, 2]


BAD_COUNTS = [
    ("", 1, "empty file"),
    ("count\n1\n-1\n", 3, "non-negative integer"),
    ("count\n1\n1.5\n", 3, "non-negative integer"),
    ("count\n1\nabc\n", 3, "non-negative integer"),
    ("count\n1\n", 2, "at least 2"),
    ("count\n0\n0\n", 3, "found 0"),
    ("a,1,3\nx,1,1\n", 1, "numbered 1 to 2"),
    ("a,b\nx,y\n", 1, "'count' column"),
    ("f,1,2\nx,1\n", 2, "missing the '2' column"),
    ("f,1,2\n", 1, "at least one row"),
    ("count\n99999999999999999999999\n", 2, "at most"),
    ("count\n30000000\n30000000\n", 3, "more than"),
    ("count,count\n1\n", 1, "more than once"),
]


@pytest.mark.parametrize(("content", "line", "fragment"), BAD_COUNTS)
def test_bad_counts_csv_names_file_and_line(
    tmp_path: Path, content: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(TraceError) as info:
        load_counts_csv(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("bin_s", [0.0, -1.0, math.nan, math.inf, True, "60"])
def test_counts_bin_width_validated(tmp_path: Path, bin_s: object) -> None:
    path = write(tmp_path / "c.csv", "count\n1\n1\n")
    with pytest.raises(ValueError, match="bin_s"):
        load_counts_csv(path, bin_s=bin_s)  # type: ignore[arg-type]


# Random files: every outcome is an array fit for TraceArrivals, or a TraceError.

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_field = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-5, 10**6).map(str),
    _text,
    st.sampled_from(["", " ", '"', '""', "1e999", "-0", "+3", "1_0", "nan", "\x00", "\r"]),
)
# Mostly valid rows, so that random files get past their first lines.
_row = st.one_of(
    st.floats(0, 1e6).map(repr),
    st.integers(0, 100).map(str),
    st.lists(_field, max_size=4).map(",".join),
)
_header = st.one_of(
    st.sampled_from(
        [
            "timestamp",
            "timestamp_s",
            "app,func,end_timestamp,duration",
            "end_timestamp",
            "count",
            "minute,count",
            "f,1,2,3",
            "a,1,3",
            "",
        ]
    ),
    _text,
)


def _check_loaded(load: Callable[[Path], np.ndarray], path: Path) -> None:
    try:
        t = load(path)
    except TraceError as err:
        assert str(err).startswith(f"{path}:")
        return
    assert t.dtype == np.float64 and t.ndim == 1 and t.size >= 2
    assert np.all(np.isfinite(t)) and np.all(np.diff(t) >= 0) and t[-1] > t[0]
    TraceArrivals(t)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_header, rows=st.lists(_row, max_size=12), crlf=st.booleans())
def test_random_text_loads_or_raises_trace_error(
    tmp_path_factory: pytest.TempPathFactory, header: str, rows: list[str], crlf: bool
) -> None:
    path = tmp_path_factory.getbasetemp() / "random.csv"
    path.write_bytes(("\r\n" if crlf else "\n").join([header, *rows]).encode("utf-8"))
    _check_loaded(load_timestamps_csv, path)
    _check_loaded(load_counts_csv, path)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_load_or_raise_trace_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "random.bin"
    path.write_bytes(data)
    _check_loaded(load_timestamps_csv, path)
    _check_loaded(load_counts_csv, path)
