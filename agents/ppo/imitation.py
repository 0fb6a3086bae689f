"""Start at the bar, then climb: behaviour cloning from the best heuristic before PPO.

PPO from scratch spends most of a small budget rediscovering what a one-line heuristic already
does (join the shortest queue, pick the most accurate plan that is on time). With a ``teacher``
the learner starts from that heuristic instead:

1. **The teachers**: a named catalog heuristic, or with ``teacher: auto`` the best one at each
   training load: the heuristic with the best mean return over a few episodes, picked at the
   scenario's load and at the lightest and heaviest load of the training envs
   (:func:`pick_teachers`). The best rule at one load is often not the best at twice it (on
   edge_burst, INFaaS at the scenario's load, the fastest plan at twice it), so each training env
   is taught by the pick at the load nearest its own (:class:`Teachers`).
2. **Demonstrations** (DAgger, Ross et al. 2011): in round 0 the teacher drives; in each later
   round the learner drives and the teacher labels the states the learner visits, so the clone
   also learns to recover from its own mistakes (:func:`collect`). They are collected at the
   scenario's load, and also at each other picked load whose teacher is another.
3. **Cloning**: masked cross-entropy to the teacher's action, and the critic regressed on the
   decision-credited discounted return of the demonstrations, so that PPO's first advantages
   are not noise (:func:`clone`).
4. **A pull that decays**: during PPO, before each update, a few steps of the same
   cross-entropy on the rollout's states, each labelled by its env's teacher, weighted by a
   coefficient falling linearly to 0 (:class:`TeacherPull`). PPO is then free to move away
   wherever that earns more.

Teachers are the stateless catalog heuristics
(:func:`~mtenv.agents.ppo.settings.teacher_names`): their action is a function of the
observation and the mask alone, so any state can be labelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from mtenv.agents.interfaces import BasePolicy, EnvConfig, decided_rewards
from mtenv.agents.policies import make_policy
from mtenv.agents.ppo.settings import teacher_names

Actor = Callable[[np.ndarray, np.ndarray], int]


@dataclass
class Demonstrations:
    """Labelled states: ``observations [N, F]``, ``masks [N, A]`` (bool), the teacher's
    ``actions [N]`` and the discounted ``returns [N]`` of the episodes that visited them."""

    observations: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    returns: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def concatenate(cls, parts: list[Demonstrations]) -> Demonstrations:
        names = [f.name for f in fields(cls)]
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in names))


@dataclass(frozen=True)
class Teachers:
    """Which heuristic teaches at which load: ``names[i]`` at ``loads[i]`` (a ``load_scale``;
    the first is always ``None``, the scenario's own load, which is ``own_load``)."""

    loads: tuple[float | None, ...]
    names: tuple[str, ...]
    own_load: float

    @classmethod
    def one(cls, name: str, loads: Sequence[float | None], own_load: float) -> Teachers:
        """``name`` at every load."""
        return cls(tuple(loads), (name,) * len(loads), own_load)

    @property
    def own(self) -> str:
        """The teacher at the scenario's load."""
        return self.names[0]

    def demonstrating(self) -> list[tuple[float | None, str]]:
        """Where demonstrations are collected, and by whom: the scenario's load, then each other
        load whose teacher is not the scenario's."""
        pairs = list(zip(self.loads, self.names, strict=True))
        return pairs[:1] + [(load, name) for load, name in pairs[1:] if name != self.own]

    def for_envs(self, env_loads: Sequence[float | None]) -> list[str]:
        """Each training env's teacher: the one picked at the load nearest the env's (by ratio;
        ties to the earlier pick)."""
        own = self.own_load
        points = [own if load is None else load for load in self.loads]

        def nearest(load: float | None) -> str:
            x = own if load is None else load
            gaps = [abs(math.log(x / p)) for p in points]
            return self.names[gaps.index(min(gaps))]

        return [nearest(load) for load in env_loads]


def teacher_loads(env_loads: Sequence[float | None]) -> tuple[float | None, ...]:
    """Where ``teacher: auto`` picks: the scenario's load (``None``) and the lightest and
    heaviest of the training envs' loads."""
    numeric = [load for load in env_loads if load is not None]
    return (None, *sorted({min(numeric), max(numeric)})) if numeric else (None,)


def own_load(env_config: EnvConfig) -> float:
    """The ``load_scale`` an env of ``env_config`` runs at."""
    env = env_config.make()
    try:
        return float(env.unwrapped.scenario.workload.load_scale)
    finally:
        env.close()


def pick_teachers(
    env_config: EnvConfig, env_loads: Sequence[float | None], episodes: int, seed: int
) -> Teachers:
    """The best heuristic (:func:`pick_teacher`) at each of :func:`teacher_loads`."""
    loads = teacher_loads(env_loads)
    names = tuple(pick_teacher(env_config.at_load(load), episodes, seed) for load in loads)
    return Teachers(loads, names, own_load(env_config))


def pick_teacher(env_config: EnvConfig, episodes: int, seed: int) -> str:
    """The catalog heuristic with the best mean return over ``episodes`` episodes (seeded
    ``seed``, ``seed + 1``, …; ties: the first of :func:`teacher_names`)."""
    env = env_config.make()
    teachers = teacher_names()
    try:
        means = {}
        for name in teachers:
            teacher = make_policy(name, env, seed)
            returns = [play(env, teacher.act, seed + i)[0] for i in range(episodes)]
            means[name] = float(np.mean(returns))
    finally:
        env.close()
    return max(teachers, key=lambda name: means[name])


def play(env: gym.Env, act: Actor, seed: int) -> tuple[float, int]:
    """The return and the number of steps of one episode seeded ``seed``, acted by ``act``."""
    obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(act(obs, info["action_mask"]))
        total, steps = total + float(reward), steps + 1
        if terminated or truncated:
            return total, steps


def collect(
    env_config: EnvConfig,
    teacher_name: str,
    steps: int,
    seed: int,
    gamma: float,
    driver: Actor | None = None,
) -> Demonstrations:
    """At least ``steps`` states in whole episodes, visited by ``driver`` (the teacher when
    ``None``) and labelled with the teacher's action; episodes seeded ``seed``, ``seed + 1``, …"""
    env = env_config.make()
    try:
        teacher = make_policy(teacher_name, env, seed)
        parts, seen, episode = [], 0, 0
        while seen < steps:
            part, _ = _episode(env, teacher.act, driver or teacher.act, seed + episode, gamma)
            parts.append(part)
            seen += len(part)
            episode += 1
    finally:
        env.close()
    return Demonstrations.concatenate(parts)


def _episode(
    env: gym.Env, label: Actor, drive: Actor, seed: int, gamma: float
) -> tuple[Demonstrations, float]:
    """One episode driven by ``drive``, every state labelled by ``label``; with its return."""
    observations, masks, actions, credited = [], [], [], []
    obs, info = env.reset(seed=seed)
    total = 0.0
    while True:
        mask = info["action_mask"]
        observations.append(obs)
        masks.append(mask.astype(bool))
        actions.append(label(obs, mask))
        credited.append(0.0)
        obs, reward, terminated, truncated, info = env.step(drive(obs, mask))
        total += float(reward)
        for step, r in decided_rewards(info["feedback"]):
            credited[step] += r
        if terminated or truncated:
            break
    returns = np.zeros(len(credited), dtype=np.float32)
    running = 0.0
    for t in range(len(credited) - 1, -1, -1):
        running = credited[t] + gamma * running
        returns[t] = running
    part = Demonstrations(
        np.asarray(observations, dtype=np.float32),
        np.asarray(masks, dtype=bool),
        np.asarray(actions, dtype=np.int64),
        returns,
    )
    return part, total


def masked_log_probs(
    policy: ActorCriticPolicy, obs: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """``[B, A]`` log π(· | obs) over the valid actions (invalid logits pushed to −∞)."""
    features = policy.extract_features(obs, policy.pi_features_extractor)
    latent_pi = policy.mlp_extractor.forward_actor(features)
    logits = policy.action_net(latent_pi).masked_fill(~masks, -1e8)
    return torch.log_softmax(logits, dim=1)


def masked_log_prob(
    policy: ActorCriticPolicy, obs: torch.Tensor, masks: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log π(action | obs) over the valid actions."""
    return masked_log_probs(policy, obs, masks).gather(1, actions[:, None]).squeeze(1)


def clone(
    policy: ActorCriticPolicy,
    demos: Demonstrations,
    epochs: int,
    seed: int,
    batch_size: int = 256,
    learning_rate: float = 3e-3,
    value_coef: float = 0.5,
    smoothing: float = 0.1,
) -> float:
    """Fit ``policy`` to the demonstrations; returns the share of their states on which its
    most probable valid action is the teacher's."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.as_tensor(demos.observations)
    masks = torch.as_tensor(demos.masks)
    actions = torch.as_tensor(demos.actions)
    returns = torch.as_tensor(demos.returns)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    policy.set_training_mode(True)
    for _ in range(epochs):
        for rows in torch.randperm(len(demos), generator=generator).split(batch_size):
            log_probs = masked_log_probs(policy, obs[rows], masks[rows])
            # label smoothing over the valid actions: the clone keeps some mass on the others,
            # so that PPO still explores from it
            valid = masks[rows].float()
            target = smoothing * valid / valid.sum(dim=1, keepdim=True)
            target[torch.arange(len(rows)), actions[rows]] += 1.0 - smoothing
            cross_entropy = -(target * log_probs.masked_fill(~masks[rows], 0.0)).sum(dim=1)
            value = policy.predict_values(obs[rows]).squeeze(1)
            loss = cross_entropy.mean() + value_coef * torch.mean((value - returns[rows]) ** 2)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
    policy.set_training_mode(False)
    return agreement(policy, demos)


def agreement(policy: ActorCriticPolicy, demos: Demonstrations) -> float:
    """The share of ``demos`` on which ``policy``'s most probable valid action is the label."""
    with torch.no_grad():
        obs, masks = torch.as_tensor(demos.observations), torch.as_tensor(demos.masks)
        chosen = masked_log_probs(policy, obs, masks).argmax(dim=1).numpy()
    return float((chosen == demos.actions).mean())


class TeacherPull(BaseCallback):
    """Before each PPO update, ``steps`` gradient steps of the teachers' cross-entropy on the
    rollout's states, weighted by ``coef`` falling linearly to 0 over the first ``decay`` share
    of ``total_steps``. ``teachers[k]`` labels the states of training env ``k``. Needs the
    rollout's action masks (MaskablePPO's buffer keeps them)."""

    def __init__(
        self,
        teachers: Sequence[BasePolicy],
        coef: float,
        decay: float,
        total_steps: int,
        steps: int = 4,
        batch_size: int = 256,
    ):
        super().__init__()
        self.teachers, self.coef, self.decay = list(teachers), coef, decay
        self.total_steps, self.steps, self.batch_size = total_steps, steps, batch_size

    def weight(self) -> float:
        """The coefficient now: ``coef`` at step 0, 0 from ``decay · total_steps`` on."""
        done = self.model.num_timesteps / max(self.decay * self.total_steps, 1.0)
        return self.coef * max(1.0 - done, 0.0)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        weight = self.weight()
        buffer = self.model.rollout_buffer
        if weight <= 0 or not hasattr(buffer, "action_masks"):
            return
        n_envs = buffer.observations.shape[1]  # the buffer is [steps, envs, features]
        if n_envs != len(self.teachers):
            raise ValueError(f"{len(self.teachers)} teachers for {n_envs} training envs")
        obs = buffer.observations.reshape(-1, buffer.observations.shape[-1])
        masks = buffer.action_masks.reshape(len(obs), -1).astype(bool)
        pairs = enumerate(zip(obs, masks, strict=True))
        labels = np.array([self.teachers[i % n_envs].act(o, m) for i, (o, m) in pairs])
        policy = self.model.policy
        obs_t, masks_t = torch.as_tensor(obs), torch.as_tensor(masks)
        labels_t = torch.as_tensor(labels, dtype=torch.long)
        generator = torch.Generator().manual_seed(int(self.model.num_timesteps))
        for _ in range(self.steps):
            rows = torch.randperm(len(obs), generator=generator)[: self.batch_size]
            loss = (
                -weight * masked_log_prob(policy, obs_t[rows], masks_t[rows], labels_t[rows]).mean()
            )
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            policy.optimizer.step()
