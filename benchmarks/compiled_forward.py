"""What makes live inference cheaper? The zoo's models called as modules, as plain torch calls,
TorchScript-frozen and compiled.

Live inference costs what the zoo's forward passes cost (``mtenv perf`` rows 2 and 4). This
times each model, set up as the engine sets it up (``InferenceEngine``: one intra-op thread,
channels-last on the CPU, under ``torch.inference_mode()``), four ways: called as a module
(``eager``: ``nn.Module.__call__`` at every layer), as the plain torch calls the engine runs
(``plain``: :func:`~mtenv.core.inference.plain_forward`), traced, frozen and optimised for
inference by TorchScript (``torch.jit.trace`` → ``freeze`` → ``optimize_for_inference``), and
compiled by ``torch.compile`` (inductor, static shapes), on the same 200 random batches of the
serving pool per batch size. Each figure is the median of ``--repeats`` passes over those
batches, the variants' passes interleaved. A variant whose argmax differs from eager's on any
batch (the answers the simulator reads) is marked.

    python benchmarks/compiled_forward.py                      # cnn_small and cnn_wide
    python benchmarks/compiled_forward.py --models cnn_wide --batches 16 --no-compile

torch.compile needs a C++ compiler and takes seconds per model and batch size to compile;
``--no-compile`` leaves it out. TorchScript is deprecated in recent torch (it warns).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from mtenv.core.inference import InferenceEngine, plain_forward

BATCHES_PER_SIZE = 200


def per_batch_us(forward: Callable[[torch.Tensor], torch.Tensor], batches: list) -> float:
    start = time.perf_counter()
    for x in batches:
        forward(x)
    return (time.perf_counter() - start) / len(batches) * 1e6


def variants(net: torch.nn.Module, example: torch.Tensor, compile_too: bool) -> dict:
    """The eager module, its plain calls and its compiled forms, each a callable on a batch."""
    out: dict[str, Callable] = {"eager": net, "plain": plain_forward(net)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False))
        out["torchscript"] = torch.jit.optimize_for_inference(traced)
    if compile_too:
        out["compile"] = torch.compile(net, dynamic=False)
    return out


def time_variants(
    forms: dict[str, Callable], batches: list, repeats: int
) -> tuple[dict[str, float], dict[str, bool]]:
    """Each variant's median µs per batch, and whether its argmax is eager's on every batch."""
    reference = [forms["eager"](x).argmax(dim=1) for x in batches]
    for forward in forms.values():  # warm-up (and compile)
        forward(batches[0])
    times: dict[str, list[float]] = {v: [] for v in forms}
    for _ in range(repeats):
        for v, forward in forms.items():
            times[v].append(per_batch_us(forward, batches))
    same = {
        v: all(
            bool((f(x).argmax(dim=1) == r).all()) for x, r in zip(batches, reference, strict=True)
        )
        for v, f in forms.items()
    }
    return {v: statistics.median(t) for v, t in times.items()}, same


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    models = args.models.split(",")
    engine = InferenceEngine(models, ["classify"], mode="live")  # one thread, channels-last
    inputs = engine._inputs["classify"]
    generator = torch.Generator().manual_seed(args.seed)
    print(
        "| model | batch | eager µs | plain calls µs (÷ eager) | TorchScript µs (÷ eager) "
        "| torch.compile µs (÷ eager) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in models:
        net = engine.models[name].eval()
        for size in (int(b) for b in args.batches.split(",")):
            batches = [
                inputs[torch.randint(0, len(inputs), (size,), generator=generator)]
                for _ in range(BATCHES_PER_SIZE)
            ]
            with torch.inference_mode():
                forms = variants(net, batches[0], not args.no_compile)
                times, same = time_variants(forms, batches, args.repeats)
            eager = times.pop("eager")
            cells = [f"{eager:.0f}"]
            for v in ("plain", "torchscript", "compile"):
                mark = "" if same.get(v, True) else ", answers differ"
                cells.append(
                    f"{times[v]:.0f} ({times[v] / eager:.2f}{mark})" if v in times else "–"
                )
            print(f"| {name} | {size} | " + " | ".join(cells) + " |", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cnn_small,cnn_wide", help="comma-separated")
    parser.add_argument("--batches", default="1,4,16,64", help="batch sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per variant")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batches")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    return parser


if __name__ == "__main__":
    sys.exit(main())
