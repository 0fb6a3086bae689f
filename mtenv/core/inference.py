"""Running the zoo's real models on the tasks' real inputs.

``live`` mode runs one batched forward pass per model per simulated batch, in
``torch.inference_mode()``, as direct torch calls (:func:`plain_forward`). ``memoized`` mode
runs each model once over the whole (finite) serving pool of each task type in fixed chunks the
first time the model is asked for, keeps its class probabilities, and answers later batches by
lookup; both modes give the same answers for the same inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from mtenv.zoo import Zoo, get_zoo
from mtenv.zoo.models import MultiTaskNet, no_such_head

INFERENCE_MODES = ("live", "memoized")
ForwardFn = Callable[[torch.Tensor], torch.Tensor]
_Laid = TypeVar("_Laid", torch.Tensor, torch.nn.Module)
_MEMO_CHUNK = 64

# Whole-pool outputs, shared by every engine in the process:
# (zoo, model, task type, split, device) -> [pool size, classes]. The weights and the pools are
# fixed data of their zoo (keyed by the object: a zoo registered again under its name is another
# zoo), so a table computed once stays right.
_MEMO: dict[tuple[Zoo, str, str, str, str], np.ndarray] = {}


def _one_torch_thread_after_fork() -> None:
    """Forked workers (Gymnasium's async vector envs, SB3's SubprocVecEnv with fork) inherit an
    OpenMP thread pool that is not fork-safe: the first parallel torch kernel in the child hangs.
    A worker running one env gains nothing from intra-op threads anyway, so it runs with one."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread_after_fork)

TORCH_THREADS_ENV = "MTENV_TORCH_THREADS"


def configure_torch_threads() -> int:
    """Set torch's intra-op threads for the step loop (each :class:`InferenceEngine` calls this
    when it is built) and return the number in force.

    The zoo's models are small and the simulated batches short: extra intra-op threads cost
    more to wake than they save, and several env processes (SB3's ``SubprocVecEnv``, Gymnasium's
    async vector envs), each with a pool as large as the machine, oversubscribe the cores. So by
    default the process runs torch on one intra-op thread. The environment variable
    ``MTENV_TORCH_THREADS`` overrides it: ``N`` (N >= 1) sets N threads, ``0`` leaves torch's
    setting alone (whatever ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` made it). The
    setting is process-wide: it also applies to anything else in the process that runs torch.
    """
    raw = os.environ.get(TORCH_THREADS_ENV, "").strip()
    try:
        wanted = 1 if raw == "" else int(raw)
    except ValueError:
        wanted = -1
    if wanted < 0:
        raise ValueError(f"{TORCH_THREADS_ENV}: expected an integer >= 0, got {raw!r}")
    if wanted > 0 and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


@dataclass
class ForwardStats:
    """Wall-clock accounting of forward passes (for benchmarks; never part of an episode's info).

    ``trunk_calls`` counts the trunk passes of multi-task models: one per batch, whatever the
    mix of task types in it.
    """

    calls: int = 0
    samples: int = 0
    seconds: float = 0.0
    trunk_calls: int = 0


def _has_hooks(module: nn.Module) -> bool:
    """Whether hooks were registered on ``module`` itself (not its children)."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def plain_forward(module: nn.Module) -> ForwardFn:
    """``module``'s forward pass as direct torch calls, with the same result bit for bit.

    Calling a module goes through ``nn.Module.__call__`` (hook checks, then ``forward``) once per
    layer. On the zoo's small models at batch 1 that dispatch costs about as much as the
    arithmetic: one thread, AVX2, a pass of ``cnn_small`` took 134 µs through its modules and
    71 µs as plain calls, ``mlp`` 35 and 14 µs (``benchmarks/compiled_forward.py``, which
    compares them at other batch sizes too). So a ``Sequential`` becomes the list of its
    layers' calls, and ``Conv2d`` (zero padding), ``Linear``, ``ReLU``, ``MaxPool2d`` and
    ``Flatten`` the torch function their ``forward`` calls, on the same weights. Any other
    module, a subclass of those included, runs its own ``forward``. A module with hooks of its
    own is called as usual, so its hooks (and its children's) run; hooks registered globally,
    for every module, are not run.
    """
    if _has_hooks(module):
        return module
    kind = type(module)
    if kind is nn.Sequential:
        layers = tuple(plain_forward(layer) for layer in module)

        def run(x: torch.Tensor) -> torch.Tensor:
            for layer in layers:
                x = layer(x)
            return x

        return run
    if kind is nn.Conv2d and module.padding_mode == "zeros":
        conv = (module.weight, module.bias, module.stride, module.padding)
        dilation, groups = module.dilation, module.groups
        return lambda x: torch.conv2d(x, *conv, dilation, groups)
    if kind is nn.Linear:
        weight, bias = module.weight, module.bias
        return lambda x: nn.functional.linear(x, weight, bias)
    if kind is nn.ReLU:
        return torch.relu
    if kind is nn.MaxPool2d and not module.return_indices:
        pool = (module.kernel_size, module.stride, module.padding, module.dilation)
        ceil_mode = module.ceil_mode
        return lambda x: torch.max_pool2d(x, *pool, ceil_mode)
    if kind is nn.Flatten:
        start, end = module.start_dim, module.end_dim
        return lambda x: x.flatten(start, end)
    return module.forward


def _head_of(net: MultiTaskNet, task_type: str, features: torch.Tensor) -> torch.Tensor:
    return net.forward_heads(features, task_type)


@dataclass(frozen=True)
class _ModelForward:
    """How the engine runs one model: ``trunk`` on the inputs, then for a multi-task model the
    head of the task type. A multi-task model's inputs of any type go through ``prepare`` first
    (to the trunk's input shape), so that a batch mixing types can be stacked before the trunk
    runs once; ``heads`` and ``prepare`` are ``None`` for single-task models."""

    trunk: ForwardFn
    heads: Mapping[str, ForwardFn] | None = None
    prepare: ForwardFn | None = None

    @classmethod
    def of(cls, net: nn.Module) -> _ModelForward:
        """``net`` as plain calls (:func:`plain_forward`); a :class:`MultiTaskNet` as its
        ``prepare``, backbone and heads (hooks on the ``MultiTaskNet`` object itself are not run,
        on its parts they are), a subclass of it as its own ``trunk`` and ``forward_heads``."""
        if not isinstance(net, MultiTaskNet):
            return cls(plain_forward(net))
        if type(net) is not MultiTaskNet:  # its own trunk, which prepares again
            heads = {t: partial(_head_of, net, t) for t in net.task_types}
            return cls(net.trunk, heads, net.prepare)
        heads = {task_type: plain_forward(head) for task_type, head in net.heads.items()}
        return cls(plain_forward(net.backbone), heads, net.prepare)

    def head(self, task_type: str) -> ForwardFn:
        """The head of ``task_type`` (a multi-task model only)."""
        assert self.heads is not None
        if task_type not in self.heads:
            raise no_such_head(task_type, self.heads)
        return self.heads[task_type]

    def logits(self, x: torch.Tensor, task_type: str) -> torch.Tensor:
        if self.prepare is None:  # a single-task model
            return self.trunk(x)
        return self.head(task_type)(self.trunk(self.prepare(x)))


class InferenceEngine:
    """Class probabilities of a zoo's models on its pools' real inputs.

    Args:
        model_names: the models a scenario may run; loaded from the zoo's safetensors.
        task_types: the task types whose serving pools tasks refer to by input id.
        mode: ``"live"`` or ``"memoized"``.
        device: ``"cpu"`` or ``"cuda"`` (where the models really run).
        zoo: the zoo (default: the built-in ``digits``).

    Building one sets the process's torch intra-op threads (one unless ``MTENV_TORCH_THREADS``
    says otherwise, see :func:`configure_torch_threads`).
    """

    def __init__(
        self,
        model_names: list[str],
        task_types: list[str],
        mode: str = "live",
        device: str = "cpu",
        zoo: Zoo | None = None,
    ):
        if mode not in INFERENCE_MODES:
            raise ValueError(f"inference mode: expected one of {INFERENCE_MODES}, got {mode!r}")
        self.mode = mode
        self.device = device
        self.zoo = zoo if zoo is not None else get_zoo()
        configure_torch_threads()
        self.models = {
            name: self._laid_out(self.zoo.load(name, device=device)) for name in model_names
        }
        self._runs = self._plain_runs()
        self.pools = {t: self.zoo.pool_for(t, "serving") for t in task_types}
        self._inputs = {t: self._laid_out(pool.inputs.to(device)) for t, pool in self.pools.items()}
        self.stats = ForwardStats()

    def __getstate__(self) -> dict[str, object]:
        # The plain forward passes are closures over the models' weights: rebuilt, not pickled.
        return {k: v for k, v in self.__dict__.items() if k != "_runs"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._runs = self._plain_runs()

    def _plain_runs(self) -> dict[str, _ModelForward]:
        return {name: _ModelForward.of(net) for name, net in self.models.items()}

    def probabilities(self, model: str, input_ids: np.ndarray, task_type: str) -> np.ndarray:
        """Class probabilities ``[len(input_ids), n_classes]`` (float32) of ``model`` on inputs
        of ``task_type``'s serving pool."""
        if self.mode == "memoized":
            return self.pool_outputs(model, task_type)[input_ids]
        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))
        return self._forward(model, self._inputs[task_type], ids, task_type)

    def multitask_probabilities(
        self, model: str, ids_by_type: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """A shared-trunk model on a batch mixing task types: the trunk runs once on every input
        of the batch, then each type's head on its own rows."""
        if self.mode == "memoized":
            return {t: self.pool_outputs(model, t)[ids] for t, ids in ids_by_type.items()}
        run = self._runs[model]
        assert run.prepare is not None, f"{model} is not a multi-task model"
        start = time.perf_counter()
        with torch.inference_mode():
            parts = [
                run.prepare(self._inputs[t][torch.from_numpy(ids).to(self.device)])
                for t, ids in ids_by_type.items()
            ]
            features = run.trunk(torch.cat(parts))
            out, row = {}, 0
            for t, ids in ids_by_type.items():
                logits = run.head(t)(features[row : row + len(ids)])
                out[t] = torch.softmax(logits, dim=1).cpu().numpy()
                row += len(ids)
        self.stats.calls += 1
        self.stats.trunk_calls += 1
        self.stats.samples += row
        self.stats.seconds += time.perf_counter() - start
        return out

    def pool_outputs(self, model: str, task_type: str, split: str = "serving") -> np.ndarray:
        """The model's probabilities on a whole pool (computed once per process, then shared)."""
        key = (self.zoo, model, task_type, split, self.device)
        table = _MEMO.get(key)
        if table is None:
            pool = self.zoo.pool_for(task_type, split)
            inputs = self._laid_out(pool.inputs.to(self.device))
            ids = torch.arange(pool.n_inputs)
            table = np.concatenate(
                [self._forward(model, inputs, c, task_type) for c in ids.split(_MEMO_CHUNK)]
            )
            table.flags.writeable = False
            _MEMO[key] = table
        return table

    def warm_up(self) -> None:
        """Fill the memo tables now (memoized mode), so that later steps only look up."""
        if self.mode != "memoized":
            return
        for name in self.models:
            for task_type in self.zoo.model(name).task_types:
                if task_type in self.pools:
                    self.pool_outputs(name, task_type)

    def validation_pool(self, task_type: str):
        """The labelled validation pool of a task type (for fitting, never for serving)."""
        return self.zoo.pool_for(task_type, "validation")

    def _laid_out(self, thing: _Laid) -> _Laid:
        """``thing`` (a model or a pool's inputs) in the memory order its forward passes run
        fastest in: on the CPU, image batches and convolution weights channels-last. oneDNN's
        convolutions run the zoo's ``cnn_small`` and ``cnn_wide`` 1.3–1.7× faster per input
        that way at batches of 4 inputs and more (one thread, AVX2); answers are unchanged up to
        float rounding. Models without 4-d weights and inputs of other ranks are left as they
        are."""
        if self.device != "cpu":
            return thing
        if isinstance(thing, torch.Tensor):
            return (
                thing.contiguous(memory_format=torch.channels_last) if thing.dim() == 4 else thing
            )
        return thing.to(memory_format=torch.channels_last)

    def _forward(
        self, model: str, inputs: torch.Tensor, ids: torch.Tensor, task_type: str
    ) -> np.ndarray:
        start = time.perf_counter()
        with torch.inference_mode():
            batch = inputs[ids.to(inputs.device)]
            logits = self._runs[model].logits(batch, task_type)
            probs = torch.softmax(logits, dim=1).cpu().numpy()
        self.stats.calls += 1
        self.stats.samples += len(ids)
        self.stats.seconds += time.perf_counter() - start
        return probs
