"""Running the zoo's real models on the tasks' real inputs.

``live`` mode runs one batched forward pass per model per simulated batch, in
``torch.inference_mode()``. ``memoized`` mode runs each model once over the whole (finite) serving
pool in fixed chunks the first time the model is asked for, keeps its class probabilities, and
answers later batches by lookup; both modes give the same answers for the same inputs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from mtenv.zoo import Pool, load_model

INFERENCE_MODES = ("live", "memoized")
_MEMO_CHUNK = 64

# Memoized outputs, shared by every engine in the process: (model, device) -> [pool size, classes].
# The weights and the pool are fixed package data, so a table computed once stays right.
_MEMO: dict[tuple[str, str], np.ndarray] = {}


def _one_torch_thread_after_fork() -> None:
    """Forked workers (Gymnasium's async vector envs, SB3's SubprocVecEnv with fork) inherit an
    OpenMP thread pool that is not fork-safe: the first parallel torch kernel in the child hangs.
    A worker running one env gains nothing from intra-op threads anyway, so it runs with one."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread_after_fork)


@dataclass
class ForwardStats:
    """Wall-clock accounting of forward passes (for benchmarks; never part of an episode's info)."""

    calls: int = 0
    samples: int = 0
    seconds: float = 0.0


class InferenceEngine:
    """Class probabilities of zoo models on serving-pool inputs.

    Args:
        model_names: the models a scenario may run; loaded from the zoo's safetensors.
        pool: the inputs tasks refer to by id.
        mode: ``"live"`` or ``"memoized"``.
        device: ``"cpu"`` or ``"cuda"`` (where the models really run).
    """

    def __init__(self, model_names: list[str], pool: Pool, mode: str = "live", device: str = "cpu"):
        if mode not in INFERENCE_MODES:
            raise ValueError(f"inference mode: expected one of {INFERENCE_MODES}, got {mode!r}")
        self.mode = mode
        self.device = device
        self.pool = pool
        self.models = {name: load_model(name, device=device) for name in model_names}
        self._inputs = pool.inputs.to(device)
        self.stats = ForwardStats()

    def probabilities(self, model: str, input_ids: np.ndarray) -> np.ndarray:
        """Class probabilities ``[len(input_ids), n_classes]`` (float32) of ``model``."""
        if self.mode == "memoized":
            table = _MEMO.get((model, self.device))
            if table is None:
                table = _MEMO[model, self.device] = self._whole_pool(model)
                table.flags.writeable = False
            return table[input_ids]
        return self._forward(model, torch.from_numpy(np.asarray(input_ids, dtype=np.int64)))

    def _forward(self, model: str, ids: torch.Tensor) -> np.ndarray:
        start = time.perf_counter()
        with torch.inference_mode():
            batch = self._inputs[ids.to(self._inputs.device)]
            probs = torch.softmax(self.models[model](batch), dim=1).cpu().numpy()
        self.stats.calls += 1
        self.stats.samples += len(ids)
        self.stats.seconds += time.perf_counter() - start
        return probs

    def _whole_pool(self, model: str) -> np.ndarray:
        ids = torch.arange(self.pool.n_inputs)
        return np.concatenate([self._forward(model, chunk) for chunk in ids.split(_MEMO_CHUNK)])
