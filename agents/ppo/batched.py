"""stable-baselines3's VecEnv over mtenv's batched vector env: K envs in the training process,
sharing their models, stepped together (:class:`BatchedVecEnv`).

:class:`~mtenv.envs.vector.BatchedTaskAllocationEnv` speaks Gymnasium's vector API;
:class:`BatchedVecEnv` gives it SB3's: ``reset()`` returns observations only (seeded by
``seed()``, once, as ``DummyVecEnv``), ``step_wait`` resets a finished env at once, returning its
reset observation and the final one in ``infos[k]["terminal_observation"]``, and infos are a list
of per-env dicts (``action_mask``, ``invalid_action``, ``feedback``, ``metrics`` where an episode
ended, ``TimeLimit.truncated``, and ``episode`` where one ended: its return, length and the
seconds since the env was built, as SB3's ``Monitor`` reports them, float64 returns rounded to
six decimals, so a learning curve reads the same whichever vec env trained it). sb3-contrib's
MaskablePPO reads the masks through ``env_method("action_masks")``.

Torch threads: the envs run in the training process, so their forward passes (live inference)
share torch's intra-op thread pool with the policy's updates. Building the envs' engine sets it
to one thread, as in every ``SubprocVecEnv`` worker (the zoo's models are small and the
simulated batches short; ``MTENV_TORCH_THREADS=N`` overrides it, see
:func:`mtenv.core.inference.configure_torch_threads`). ``torch_threads=N`` sets N explicitly
once the envs are built (``make_vec_env(..., torch_threads=N)``); ``None``, the default, keeps
what the engine set. The setting is process-wide.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from mtenv.envs.vector import BatchedTaskAllocationEnv


class BatchedVecEnv(VecEnv):
    """SB3's VecEnv API over a :class:`BatchedTaskAllocationEnv`.

    Args:
        venv: the batched env, built with ``autoreset_mode="SameStep"`` (SB3 resets a finished
            env in the step that ends its episode); or ``None`` to build one from ``num_envs``
            and ``env_kwargs``.
        num_envs: sub-envs to build when ``venv`` is ``None``.
        torch_threads: ``torch.set_num_threads`` for this process, applied once the envs are
            built (``None``: as the engine set it, one thread unless ``MTENV_TORCH_THREADS``
            says otherwise).
        **env_kwargs: the batched env's other arguments (``scenario``, ``inference``,
            ``episode_tasks``, ``load_scales``, ...), when ``venv`` is ``None``.
    """

    def __init__(
        self,
        venv: BatchedTaskAllocationEnv | None = None,
        num_envs: int | None = None,
        torch_threads: int | None = None,
        **env_kwargs: Any,
    ):
        if venv is None:
            venv = BatchedTaskAllocationEnv(
                num_envs=1 if num_envs is None else num_envs,
                autoreset_mode=AutoresetMode.SAME_STEP,
                **env_kwargs,
            )
        elif env_kwargs or num_envs not in (None, venv.num_envs):
            raise ValueError("BatchedVecEnv: give a built env or the arguments to build one")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "BatchedVecEnv: the batched env must autoreset in the same step "
                f"(autoreset_mode='SameStep'), got {venv.autoreset_mode.value!r}"
            )
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        if torch_threads is not None:  # after the engine is built: it may set threads too
            torch.set_num_threads(torch_threads)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._started = time.time()

    # --- stepping ----------------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        options = [opts or None for opts in self._options]
        obs, infos = self.venv.reset_each(seed=list(self._seeds), options=options)
        self.reset_infos = [dict(info or {}) for info in infos]
        # Seeds and options are used once, as in SB3's own VecEnvs.
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        obs, rewards, terminations, truncations, raw = self.venv.step_each(self._actions)
        self._actions = None
        dones = terminations | truncations
        self._returns += rewards
        self._lengths += 1
        infos: list[dict[str, Any]] = []
        for k, info in enumerate(raw):
            if dones[k]:
                final = dict(info["final_info"])
                final["terminal_observation"] = info["final_obs"]
                final["episode"] = {
                    "r": round(float(self._returns[k]), 6),
                    "l": int(self._lengths[k]),
                    "t": round(time.time() - self._started, 6),
                }
                self._returns[k], self._lengths[k] = 0.0, 0
                self.reset_infos[k] = {
                    key: value for key, value in info.items() if key not in _FINAL_KEYS
                }
                info = final
            else:
                info = dict(info)
            info["TimeLimit.truncated"] = bool(truncations[k] and not terminations[k])
            infos.append(info)
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # --- the sub-envs ----------------------------------------------------------------------------

    def action_masks(self) -> np.ndarray:
        """``[n_envs, n]`` bool masks of the current states (after any reset)."""
        return self.venv.action_masks()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":  # in "human" mode only the first sub-env draws
            return [self.venv.render_mode for _ in self._get_indices(indices)]
        return [getattr(env, attr_name) for env in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for env in self._targets(indices):
            setattr(env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        if method_name == "action_masks" and indices is None and not method_args:
            return list(self.venv.action_masks())  # MaskablePPO asks at every step
        return [
            getattr(env, method_name)(*method_args, **method_kwargs)
            for env in self._targets(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [is_wrapped(env, wrapper_class) for env in self._targets(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        frames = self.venv.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def _targets(self, indices: VecEnvIndices) -> list[gym.Env]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]


_FINAL_KEYS = ("final_obs", "final_info")
