"""Generate the small synthetic arrival traces shipped in ``scenarios/traces/``.

The traces have the *shapes* that serving and serverless papers replay, so that the same loaders
(:mod:`mtenv.core.traces`) read them and the real traces can be dropped in their place:

* ``azure2021_invocations.csv``: one row per invocation, as in the Azure Functions 2021 trace
  (Zhang et al., "Faster and Cheaper Serverless Computing on Harvested Resources", SOSP 2021;
  github.com/Azure/AzurePublicDataset, ``AzureFunctionsInvocationTraceForTwoWeeksJan2021``):
  columns ``app,func,end_timestamp,duration`` in seconds, where the invocation *arrived* at
  ``end_timestamp - duration``. Read with :func:`mtenv.core.traces.load_timestamps_csv`.
* ``azure2019_minute_counts.csv``: invocations per minute of one day, one row per function, as in
  the Azure Functions 2019 trace (Shahrad et al., "Serverless in the Wild", USENIX ATC 2020;
  ``invocations_per_function_md.anon.d01.csv``): columns
  ``HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440``. Read with
  :func:`mtenv.core.traces.load_counts_csv`.

Both follow the shape Shahrad et al. report: a strong daily cycle (their Fig. 5: load roughly
doubles from the night trough to the day peak) multiplied by bursts (a two-state on/off modulation:
minutes-long bursts at several times the base rate), with per-function rates that differ by orders
of magnitude (a few functions carry most invocations) and durations that are heavy-tailed
(log-normal, median ≈ 0.5 s, their Fig. 7).

The rate of function ``f`` at time ``t`` (seconds) is::

    rate_f(t) = base_f · (1 + amplitude · sin(2π (t / 86400 − 0.25))) · burst(t)

where ``burst(t)`` is ``burst_factor`` during an "on" period and 1 otherwise; on and off period
lengths are exponential (means ``MEAN_ON_S`` and ``MEAN_OFF_S``). The sinusoid's trough is at
midnight and its peak at noon. Arrivals given the rate are an inhomogeneous Poisson process drawn
by thinning.

Everything is drawn from ``numpy.random.default_rng(SEED)``, so running the script again writes
byte-identical files. Run it from the repository root::

    python scripts/make_traces.py            # writes scenarios/traces/*.csv
    python scripts/make_traces.py --out DIR  # somewhere else

The files are kept under 200 KB each (the script checks).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

SEED = 20240601
DAY_S = 86_400
AMPLITUDE = 0.5  # the daily cycle swings between 0.5x and 1.5x the mean (3x trough to peak)
BURST_FACTOR = 4.0  # a burst multiplies the rate by this
MEAN_ON_S = 120.0  # mean burst length
MEAN_OFF_S = 900.0  # mean gap between bursts
MAX_BYTES = 200_000

# Invocation trace: a 3-hour window of the morning rise (07:00 to 10:00), at a daily mean rate
# of 0.2 invocations per second over all functions.
INVOCATION_WINDOW_S = (7 * 3600.0, 10 * 3600.0)
INVOCATION_APPS = 4
INVOCATION_FUNCS_PER_APP = 3
INVOCATION_MEAN_RATE = 0.2

# Minute-count trace: a whole day, 12 functions of very different popularity.
COUNT_FUNCTIONS = 12
COUNT_MEAN_RATE = 0.6  # invocations per second over all functions, averaged over the day
TRIGGERS = ("http", "queue", "timer", "event", "storage", "orchestration")

ROOT = Path(__file__).resolve().parents[1]


def _hash(rng: np.random.Generator, n_hex: int = 16) -> str:
    """An anonymised-looking hexadecimal name (the real traces use SHA-256 hashes)."""
    return "".join(rng.choice(list("0123456789abcdef"), size=n_hex))


def burst_periods(rng: np.random.Generator, span_s: float) -> list[tuple[float, float]]:
    """The ``(start, end)`` of each "on" period in ``[0, span_s)`` of the on/off modulation."""
    periods, t, on = [], 0.0, False
    while t < span_s:
        length = rng.exponential(MEAN_ON_S if on else MEAN_OFF_S)
        if on:
            periods.append((t, min(t + length, span_s)))
        t += length
        on = not on
    return periods


def rate_multiplier(t: np.ndarray, bursts: list[tuple[float, float]]) -> np.ndarray:
    """The daily sinusoid times the burst factor at times ``t`` (seconds since midnight)."""
    daily = 1.0 + AMPLITUDE * np.sin(2 * np.pi * (t / DAY_S - 0.25))
    burst = np.ones_like(t)
    for start, end in bursts:
        burst[(t >= start) & (t < end)] = BURST_FACTOR
    return daily * burst


def function_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Shares of the load per function: log-normal, so a few functions dominate."""
    w = rng.lognormal(mean=0.0, sigma=1.5, size=n)
    return w / w.sum()


def invocations(rng: np.random.Generator) -> str:
    """The Azure Functions 2021-shaped invocation trace, as CSV text."""
    start, end = INVOCATION_WINDOW_S
    bursts = burst_periods(rng, DAY_S)
    n_funcs = INVOCATION_APPS * INVOCATION_FUNCS_PER_APP
    apps = [_hash(rng, 8) for _ in range(INVOCATION_APPS)]
    funcs = [_hash(rng, 8) for _ in range(n_funcs)]
    weights = function_weights(rng, n_funcs)
    # Thinning: candidates at the peak rate, kept with probability rate(t) / peak.
    peak = INVOCATION_MEAN_RATE * (1 + AMPLITUDE) * BURST_FACTOR
    n_candidates = rng.poisson(peak * (end - start))
    t = np.sort(rng.uniform(start, end, size=n_candidates))
    keep = rng.random(n_candidates) < rate_multiplier(t, bursts) / ((1 + AMPLITUDE) * BURST_FACTOR)
    arrivals = t[keep]
    which = rng.choice(n_funcs, size=arrivals.size, p=weights)
    durations = np.clip(rng.lognormal(mean=np.log(0.5), sigma=1.2, size=arrivals.size), 1e-3, 60)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["app", "func", "end_timestamp", "duration"])
    for arrival, f, duration in zip(arrivals, which, durations, strict=True):
        app = apps[f // INVOCATION_FUNCS_PER_APP]
        end_ts = arrival + duration
        writer.writerow([app, funcs[f], f"{end_ts:.3f}", f"{duration:.3f}"])
    return out.getvalue()


def minute_counts(rng: np.random.Generator) -> str:
    """The Azure Functions 2019-shaped per-minute counts trace, as CSV text."""
    minutes = np.arange(1440) * 60.0 + 30.0  # the middle of each minute
    bursts = burst_periods(rng, DAY_S)
    shape = rate_multiplier(minutes, bursts)
    weights = function_weights(rng, COUNT_FUNCTIONS)
    owners = [_hash(rng) for _ in range(COUNT_FUNCTIONS // 3)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["HashOwner", "HashApp", "HashFunction", "Trigger", *map(str, range(1, 1441))])
    mean_shape = shape.mean()
    for f in range(COUNT_FUNCTIONS):
        expected = COUNT_MEAN_RATE * weights[f] * 60.0 * shape / mean_shape
        counts = rng.poisson(expected)
        owner = owners[f % len(owners)]
        trigger = TRIGGERS[int(rng.integers(len(TRIGGERS)))]
        writer.writerow([owner, _hash(rng), _hash(rng), trigger, *counts.tolist()])
    return out.getvalue()


def write(path: Path, text: str) -> None:
    """Write ``text`` atomically (a temporary file moved into place), refusing large files."""
    data = text.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{path}: {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    print(f"wrote {path} ({len(data):,} bytes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "scenarios" / "traces", help="output folder"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    # Separate child streams, so changing one trace's recipe leaves the other's bytes alone.
    inv_rng, count_rng = rng.spawn(2)
    write(args.out / "azure2021_invocations.csv", invocations(inv_rng))
    write(args.out / "azure2019_minute_counts.csv", minute_counts(count_rng))
    return 0


if __name__ == "__main__":
    sys.exit(main())
