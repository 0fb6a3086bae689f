"""Can a live forward pass run in a second Python thread while the step loop runs in the first?

Times the forward passes of one simulated vector step (``cnn_small``, ``cnn_wide``, ``mlp`` and
``linear`` on 16 inputs each, live, one torch thread), first alone, then in a worker thread
while the main thread spends ``--busy-ms`` in pure Python, as a step loop does. If the two
overlapped, the worker would finish in about its solo time and the pair in about
``--busy-ms``; if the worker needs the interpreter lock between its torch kernels, it finishes
only after the main thread's Python stops. Measured with Python's default switch interval
(5 ms) and with 0.2 ms, then (at 5 ms) with the four models traced and frozen as one
TorchScript module (``torch.jit.trace``), so that the worker enters the interpreter lock once
to start the passes and once to return. Medians of ``--repeats`` rounds.

    python benchmarks/thread_overlap.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from mtenv.core.inference import InferenceEngine

MODELS = ("cnn_small", "cnn_wide", "mlp", "linear")


def forward_passes(engine: InferenceEngine, ids: np.ndarray) -> None:
    for model in MODELS:
        engine.probabilities(model, ids, "classify")


class _AllModels(torch.nn.Module):
    """The four models' class probabilities on one batch, as one module to trace."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(models)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.softmax(m(batch), dim=1) for m in self.members)


def fused_forward_passes(engine: InferenceEngine, ids: np.ndarray) -> Callable[[], None]:
    """The same passes as one call into a frozen TorchScript module."""
    batch = engine._inputs["classify"][torch.from_numpy(ids)]
    with torch.inference_mode():
        module = _AllModels([engine.models[m] for m in MODELS]).eval()
        traced = torch.jit.freeze(torch.jit.trace(module, batch))

    def run() -> None:
        with torch.inference_mode():
            traced(batch)

    return run


def busy_python(seconds: float) -> int:
    """Pure-Python work for ``seconds`` (holds the interpreter lock, as the event loop does)."""
    start, total = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for i in range(100):
            total += i
    return total


def one_round(passes: Callable[[], None], busy_s: float) -> tuple[float, ...]:
    """Seconds: the forward passes alone; in a worker thread beside ``busy_s`` of Python; the
    pair together."""
    start = time.perf_counter()
    passes()
    solo = time.perf_counter() - start
    worker: dict[str, float] = {}

    def work() -> None:
        began = time.perf_counter()
        passes()
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
    eager = lambda: forward_passes(engine, ids)  # noqa: E731
    default = sys.getswitchinterval()
    cases = [
        ("eager", eager, default),
        ("eager", eager, 0.0002),
        ("one TorchScript call", fused_forward_passes(engine, ids), default),
    ]
    for name, passes, interval in cases:
        for _ in range(20):
            passes()  # warm up
        sys.setswitchinterval(interval)
        rounds = [one_round(passes, args.busy_ms / 1000) for _ in range(args.repeats)]
        solo, threaded, pair = (1000 * statistics.median(r[i] for r in rounds) for i in range(3))
        print(
            f"{name}, switch interval {1000 * interval:.1f} ms: forward passes alone "
            f"{solo:.2f} ms; in a thread beside {args.busy_ms:.0f} ms of Python {threaded:.2f} "
            f"ms; the pair {pair:.2f} ms (no overlap: {args.busy_ms + solo:.2f})"
        )


if __name__ == "__main__":
    main()
