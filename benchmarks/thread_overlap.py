"""Can a live forward pass run in a second Python thread while the step loop runs in the first?

Times the forward passes of one simulated vector step (``cnn_small``, ``cnn_wide``, ``mlp`` and
``linear`` on 16 inputs each, live, one torch thread), first alone, then in a worker thread
while the main thread spends ``--busy-ms`` in pure Python, as a step loop does. If the two
overlapped, the worker would finish in about its solo time and the pair in about
``--busy-ms``; if the worker needs the interpreter lock between its torch kernels, it finishes
only after the main thread's Python stops. Both are measured with Python's default switch
interval (5 ms) and with 0.2 ms. Medians of ``--repeats`` rounds.

    python benchmarks/thread_overlap.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import numpy as np

from mtenv.core.inference import InferenceEngine

MODELS = ("cnn_small", "cnn_wide", "mlp", "linear")


def forward_passes(engine: InferenceEngine, ids: np.ndarray) -> None:
    for model in MODELS:
        engine.probabilities(model, ids, "classify")


def busy_python(seconds: float) -> int:
    """Pure-Python work for ``seconds`` (holds the interpreter lock, as the event loop does)."""
    start, total = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for i in range(100):
            total += i
    return total


def one_round(engine: InferenceEngine, ids: np.ndarray, busy_s: float) -> tuple[float, ...]:
    """Seconds: the forward passes alone; in a worker thread beside ``busy_s`` of Python; the
    pair together."""
    start = time.perf_counter()
    forward_passes(engine, ids)
    solo = time.perf_counter() - start
    worker: dict[str, float] = {}

    def work() -> None:
        began = time.perf_counter()
        forward_passes(engine, ids)
        worker["s"] = time.perf_counter() - began

    thread = threading.Thread(target=work)
    start = time.perf_counter()
    thread.start()
    busy_python(busy_s)
    thread.join()
    return solo, worker["s"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    engine = InferenceEngine(list(MODELS), ["classify"], mode="live")
    ids = np.arange(16)
    for _ in range(20):
        forward_passes(engine, ids)  # warm up
    for interval in (sys.getswitchinterval(), 0.0002):
        sys.setswitchinterval(interval)
        rounds = [one_round(engine, ids, args.busy_ms / 1000) for _ in range(args.repeats)]
        solo, threaded, pair = (1000 * statistics.median(r[i] for r in rounds) for i in range(3))
        print(
            f"switch interval {1000 * interval:.1f} ms: forward passes alone {solo:.2f} ms; "
            f"in a thread beside {args.busy_ms:.0f} ms of Python {threaded:.2f} ms; "
            f"the pair {pair:.2f} ms (no overlap: {args.busy_ms + solo:.2f})"
        )


if __name__ == "__main__":
    main()
