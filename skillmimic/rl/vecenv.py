"""The task envs behind rl-games' vec-env interface.

rl-games creates environments by name: ``env_configurations`` maps an env name to a
``vecenv_type`` and a creator, ``vecenv`` maps the type to a wrapper class. There is one
env name per policy kind (:data:`~.names.RL_GAMES`); the creator builds whichever registered
task (:mod:`envs.registry`) the env config names, with the parts it asks for (the V2 hook,
a low-level policy). The wrapper hands torch tensors on the training device straight
through (no numpy round trip), and its ``info['time_outs']`` makes rl-games bootstrap the
value on time-outs only (falls and non-finite worlds stay terminal).

Env state saved in checkpoints (``get_env_state``): the episode sampler's RNG and the
cumulative non-finite reset count, so a resumed run continues both; with the V2 hook also
its ATS scores and weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv

from envs.registry import task_spec
from skillmimic.assets.mjcf import SceneConfig
from skillmimic.augment.env_hook import AUTO, V2Augment, V2Config

from .config import resolve_path
from .names import RL_GAMES

ENV_NAME = RL_GAMES["continuous"].env


def create_env(env_cfg, motion_path: str, task: str = "skill", sim_backend: str = "mujoco",
               scene: SceneConfig | None = None, device: str = "cpu", sim_kwargs: dict | None = None,
               seed: int | None = None, v2: V2Config | None = None, llc_checkpoint: str | None = None,
               **_: Any):
    """rl-games' ``env_creator``: the registered ``task``'s env from typed configs, with the parts
    it needs built here -- ``v2``: the SkillMimic-V2 hook's settings (None: the V1 env);
    ``llc_checkpoint``: the frozen skill policy of a task that drives one."""
    spec = task_spec(task)
    if seed is not None and env_cfg.seed is None:
        env_cfg = dataclasses.replace(env_cfg, seed=int(seed))
    parts: dict[str, Any] = {}
    if v2 is not None:
        paths = {k: str(resolve_path(getattr(v2, k))) for k in ("graph_file", "hist_ckpt")
                 if getattr(v2, k) and getattr(v2, k) != AUTO}
        parts["augment"] = V2Augment(dataclasses.replace(v2, **paths))
    if spec.needs_llc:
        from .policy import load_llc

        parts["llc"] = load_llc(llc_checkpoint, device=device, scene=scene)
    return spec.make_env(env_cfg, motion_path, sim_backend=sim_backend, scene=scene, device=device,
                         sim_kwargs=sim_kwargs, **parts)


class TaskVecEnv(IVecEnv):
    """All ``num_actors`` worlds of one task env (rl-games' batched-env view); continuous
    actions in [-1, 1]^n, or ``Discrete(n)`` for ``discrete=True``."""

    discrete = False

    def __init__(self, config_name: str, num_actors: int, **kwargs: Any):
        self.env = env_configurations.configurations[config_name]["env_creator"](**kwargs)
        if self.env.num_envs != num_actors:
            raise ValueError(f"rl-games expects {num_actors} actors but the env has {self.env.num_envs} worlds")
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.env.num_obs,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.env.num_actions) if self.discrete else \
            spaces.Box(-1.0, 1.0, (self.env.num_actions,), dtype=np.float32)

    def step(self, actions: torch.Tensor):
        obs, reward, done, info = self.env.step(actions)
        return obs, reward, done, info

    def reset(self) -> torch.Tensor:
        return self.env.reset()

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> dict:
        return {"observation_space": self.observation_space, "action_space": self.action_space,
                "agents": 1, "value_size": 1}

    def get_env_state(self) -> dict:
        state = {"generator": self.env.generator.get_state(), "nonfinite_resets": int(self.env.nonfinite_resets)}
        augment = getattr(self.env, "augment", None)     # only the skill env has one
        if augment is not None:
            state["augment"] = augment.state_dict()      # ATS scores and weights
        return state

    def set_env_state(self, env_state: dict | None) -> None:
        if not env_state:
            return
        if "generator" in env_state:
            self.env.generator.set_state(env_state["generator"].cpu())
        self.env.nonfinite_resets = int(env_state.get("nonfinite_resets", 0))
        augment = getattr(self.env, "augment", None)
        if augment is not None and env_state.get("augment"):
            augment.load_state_dict(env_state["augment"])

    def close(self) -> None:
        self.env.close()


class DiscreteTaskVecEnv(TaskVecEnv):
    discrete = True


def register_envs() -> None:
    """Make the env names of both policy kinds known to rl-games (idempotent)."""
    for kind, cls in (("continuous", TaskVecEnv), ("discrete", DiscreteTaskVecEnv)):
        names = RL_GAMES[kind]
        vecenv.register(names.vecenv_type, lambda config_name, num_actors, cls=cls, **kw: cls(config_name, num_actors,
                                                                                             **kw))
        env_configurations.register(names.env, {"vecenv_type": names.vecenv_type, "env_creator": create_env})


__all__ = ["ENV_NAME", "DiscreteTaskVecEnv", "TaskVecEnv", "create_env", "register_envs"]
