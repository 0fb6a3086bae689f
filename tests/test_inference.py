"""The inference engine: the zoo's real models, run the way the step loop runs them.

The engine runs each model's forward pass as direct torch calls (``plain_forward``) on inputs
and weights laid out channels-last. Both are speed-ups only: every answer must be the stored
model's, bit for bit where the arithmetic is the same.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from mtenv.core.inference import InferenceEngine, _ModelForward, plain_forward
from mtenv.zoo import MODEL_NAMES, get_zoo, pool_for
from mtenv.zoo.models import MultiTaskNet


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_live_probabilities_are_the_modules_own_bit_for_bit(name: str) -> None:
    """For every zoo model and task type it serves, at batch 1 and a larger batch: the engine's
    probabilities equal a softmax over the laid-out module's own call (hooks dispatch and all)."""
    task_types = list(get_zoo().model(name).task_types)
    engine = InferenceEngine([name], task_types, mode="live")
    net = engine.models[name]
    for task_type in task_types:
        inputs = _channels_last(engine.pools[task_type].inputs)
        for ids in (np.array([3]), np.arange(17)):
            with torch.inference_mode():
                batch = inputs[torch.from_numpy(ids)]
                logits = net(batch, task_type) if isinstance(net, MultiTaskNet) else net(batch)
            expected = torch.softmax(logits, dim=1).numpy()
            np.testing.assert_array_equal(engine.probabilities(name, ids, task_type), expected)


def test_a_multitask_models_mixed_batch_matches_its_per_type_batches() -> None:
    """The trunk runs once over a batch mixing task types; each type's rows get that type's head,
    exactly as when each type runs alone."""
    engine = InferenceEngine(["multitask"], ["classify", "localize"], mode="live")
    ids = {"classify": np.arange(5), "localize": np.arange(4)}
    mixed = engine.multitask_probabilities("multitask", ids)
    for task_type, type_ids in ids.items():
        alone = engine.probabilities("multitask", type_ids, task_type)
        np.testing.assert_allclose(mixed[task_type], alone, rtol=1e-5, atol=1e-7)
    assert engine.stats.trunk_calls == 1


def test_plain_forward_runs_hooks_where_they_are_registered() -> None:
    """A module with hooks is called as a module, so its hooks (and its children's) run; a hook
    on one layer of a stack changes that layer's output only."""
    torch.manual_seed(0)
    stack = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    np.testing.assert_array_equal(plain_forward(stack)(x).detach(), stack(x).detach())

    stack[1].register_forward_hook(lambda module, inputs, out: out + 1.0)
    hooked = stack(x).detach()
    assert not torch.equal(hooked, stack[2](torch.relu(stack[0](x))).detach())
    np.testing.assert_array_equal(plain_forward(stack)(x).detach(), hooked)

    stack.register_forward_hook(lambda module, inputs, out: out * 0.0)
    assert torch.count_nonzero(plain_forward(stack)(x)) == 0


def test_a_subclass_of_a_layer_it_knows_runs_its_own_forward() -> None:
    class Doubled(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2.0 * super().forward(x)

    torch.manual_seed(0)
    stack, x = Doubled(nn.Linear(4, 3), nn.ReLU()), torch.randn(5, 4)
    np.testing.assert_array_equal(plain_forward(stack)(x).detach(), stack(x).detach())

    class DoubledHeads(MultiTaskNet):
        def forward_heads(self, features: torch.Tensor, task_type: str) -> torch.Tensor:
            return 2.0 * super().forward_heads(features, task_type)

    multitask = get_zoo().load("multitask")
    doubled = DoubledHeads(multitask.backbone, dict(multitask.heads), multitask.prepare)
    with torch.inference_mode():
        canvases = pool_for("localize").inputs[:4]
        np.testing.assert_array_equal(
            _ModelForward.of(doubled).logits(canvases, "localize"), doubled(canvases, "localize")
        )


def test_layers_it_does_not_know_run_their_own_forward() -> None:
    """Circular padding, a custom pooling module and the like are not rewritten: ``cnn_deep``
    (both) gives its module's logits exactly."""
    net = get_zoo().load("cnn_deep")
    x = pool_for("classify").inputs[:9]
    with torch.inference_mode():
        np.testing.assert_array_equal(plain_forward(net)(x), net(x))


def test_a_pickled_engine_runs_the_same_passes() -> None:
    engine = InferenceEngine(["cnn_small", "multitask"], ["classify"], mode="live")
    copy = pickle.loads(pickle.dumps(engine))
    for name in ("cnn_small", "multitask"):
        np.testing.assert_array_equal(
            copy.probabilities(name, np.arange(6), "classify"),
            engine.probabilities(name, np.arange(6), "classify"),
        )


def test_the_engine_runs_convolutions_channels_last_with_the_same_answers() -> None:
    """On the CPU the engine lays image inputs and convolution weights out channels-last (its
    faster order for oneDNN); the answers stay those of the zoo's model as stored."""
    engine = InferenceEngine(["linear", "cnn_wide"], ["classify"], mode="live")
    assert engine._inputs["classify"].is_contiguous(memory_format=torch.channels_last)
    convolutions = [
        m for m in engine.models["cnn_wide"].modules() if isinstance(m, torch.nn.Conv2d)
    ]
    assert convolutions
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convolutions)
    ids = np.arange(64)
    for name in ("linear", "cnn_wide"):
        laid_out = engine.probabilities(name, ids, "classify")
        with torch.inference_mode():
            logits = get_zoo().load(name)(pool_for("classify").inputs[:64])
        stored = torch.softmax(logits, dim=1).numpy()
        np.testing.assert_allclose(laid_out, stored, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(laid_out.argmax(axis=1), stored.argmax(axis=1))
