"""A candidate-scoring actor-critic: one shared network scores every (plan, device) action.

A flat MLP over mtenv's observation must learn "prefer the shorter wait" once per device and
cannot run on a cluster of another size. This policy reads the observation as what it is, a set
of candidate actions (Decima's scoring network, Mao et al. 2019, in spirit):

* each candidate ``(p, d)`` gets a feature vector: its expected completion time, weight loading
  and cost (``est``, ``load``, ``cost``), the plan's card accuracy for the task, its device's
  queue, wait, free memory and utilisation, and a context shared by all candidates (the task's
  priority and difficulty, the load, recent misses, progress, and the devices' mean state);
* one MLP embeds every candidate, a linear head scores each embedding, and a context MLP scores
  rejecting: the logits of the flat ``Discrete`` action space, masked as usual;
* the critic reads the context and the mean and max of the candidate embeddings.

The same weights score any number of plans and devices, and permuting the devices (their
features and their actions alike) permutes the logits: the network is equivariant by
construction. :class:`CandidateNetwork` is that torch module, built from an
:class:`~mtenv.envs.observation.ObservationLayout`; :class:`MaskableCandidatePolicy` and
:class:`CandidatePolicy` plug it into sb3-contrib's MaskablePPO and SB3's PPO.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from mtenv.envs.observation import ObservationLayout

DEVICE_COLUMNS = (0, 1, 2, -1)  # queue, wait, free memory, utilisation of a device's block
N_CANDIDATE = 4 + len(DEVICE_COLUMNS)  # est, load, cost, accuracy + the device's state
N_CONTEXT = 5 + len(DEVICE_COLUMNS)  # priority, difficulty, 3 load features + mean device


def layout_indices(layout: ObservationLayout) -> dict[str, list]:
    """The index arrays :class:`CandidateNetwork` gathers, as JSON-safe lists (they travel in
    ``policy_kwargs`` and in saved agents)."""
    device = layout.device_at[:, list(DEVICE_COLUMNS)]
    context = [layout.priority_at, layout.difficulty_at, *range(layout.load_at, layout.load_at + 3)]
    return {
        "est": layout.est_at.tolist(),
        "load": layout.load_cost_at.tolist(),
        "cost": layout.cost_at.tolist(),
        "accuracy": layout.accuracy_at.tolist(),
        "device": device.tolist(),
        "context": [int(i) for i in context],
    }


class CandidateNetwork(nn.Module):
    """Scores the candidate actions of one observation layout; its parameters do not depend on
    the layout, so a state dict moves between scenarios of any size.

    Args:
        indices: :func:`layout_indices` of the env's observation.
        hidden: width of the candidate and context MLPs.
    """

    def __init__(self, indices: dict[str, list], hidden: int = 64):
        super().__init__()
        # where to read each feature: part of the layout, not of the weights (not in state dicts)
        for name in ("est", "load", "cost", "device", "accuracy", "context"):
            index = torch.as_tensor(indices[name], dtype=torch.long)
            self.register_buffer(f"_{name}", index, persistent=False)
        self.hidden = hidden
        self.embed = nn.Sequential(
            nn.Linear(N_CANDIDATE + N_CONTEXT, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
        )
        self.score = nn.Linear(hidden, 1)
        self.reject = nn.Sequential(nn.Linear(N_CONTEXT, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.value = nn.Sequential(nn.Linear(N_CONTEXT + 2 * hidden, hidden), nn.Tanh())

    # the two sizes SB3's heads read
    @property
    def latent_dim_pi(self) -> int:
        return self._est.numel() + 1

    @property
    def latent_dim_vf(self) -> int:
        return self.hidden

    def _embedded(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, P, D, hidden]`` candidate embeddings and the ``[B, N_CONTEXT]`` context."""
        n_plans, n_devices = self._est.shape
        devices = obs[:, self._device]  # [B, D, 4]
        context = torch.cat([obs[:, self._context], devices.mean(dim=1)], dim=1)
        candidate = torch.stack(
            [
                obs[:, self._est],
                obs[:, self._load],
                obs[:, self._cost],
                obs[:, self._accuracy].unsqueeze(2).expand(-1, n_plans, n_devices),
            ],
            dim=3,
        )  # [B, P, D, 4]
        batch = obs.shape[0]
        x = torch.cat(
            [
                candidate,
                devices.unsqueeze(1).expand(batch, n_plans, n_devices, -1),
                context[:, None, None, :].expand(batch, n_plans, n_devices, -1),
            ],
            dim=3,
        )
        return self.embed(x), context

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, P·D + 1]`` logits: every serving action in action order, then reject."""
        return self._actor(*self._embedded(obs))

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, hidden]``: what SB3's value head reads."""
        return self._critic(*self._embedded(obs))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded, context = self._embedded(obs)
        return self._actor(embedded, context), self._critic(embedded, context)

    def _actor(self, embedded: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.score(embedded).flatten(1), self.reject(context)], dim=1)

    def _critic(self, embedded: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        pooled = embedded.flatten(1, 2)
        return self.value(torch.cat([context, pooled.mean(dim=1), pooled.amax(dim=1)], dim=1))


class _CandidateHeads:
    """What both SB3 policy classes share: the candidate network as the ``mlp_extractor``, its
    scores as the logits (no extra linear layer), and SB3's value head on its critic output."""

    def __init__(self, *args: Any, indices: dict[str, list], hidden: int = 64, **kwargs: Any):
        self._indices, self._hidden = indices, hidden
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = CandidateNetwork(self._indices, self._hidden)

    def _build(self, lr_schedule: Any) -> None:
        self._build_mlp_extractor()
        self.action_net = nn.Identity()
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            gains = {self.mlp_extractor.embed: np.sqrt(2), self.mlp_extractor.reject: np.sqrt(2)}
            gains |= {self.mlp_extractor.value: np.sqrt(2), self.mlp_extractor.score: 0.01}
            gains[self.value_net] = 1.0
            for module, gain in gains.items():
                module.apply(lambda m, gain=gain: self.init_weights(m, gain=gain))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        return {**data, "indices": self._indices, "hidden": self._hidden}


class MaskableCandidatePolicy(_CandidateHeads, MaskableActorCriticPolicy):
    """The candidate-scoring actor-critic for sb3-contrib's MaskablePPO."""


class CandidatePolicy(_CandidateHeads, ActorCriticPolicy):
    """The candidate-scoring actor-critic for SB3's PPO."""
