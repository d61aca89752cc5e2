"""The skill env behind rl-games' vec-env interface.

rl-games creates environments by name: ``env_configurations`` maps an env name to a
``vecenv_type`` and a creator, ``vecenv`` maps the type to a wrapper class. The wrapper
hands torch tensors on the training device straight through (no numpy round trip), and
its ``info['time_outs']`` makes rl-games bootstrap the value on time-outs only (falls
and non-finite worlds stay terminal).

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

from envs.skill import SkillEnv, SkillEnvConfig, make_skill_env
from skillmimic.assets.mjcf import SceneConfig
from skillmimic.augment.env_hook import AUTO, V2Augment, V2Config

from .config import resolve_path

ENV_NAME = "skillmimic_skill"
VECENV_TYPE = "SKILLMIMIC"


def create_skill_env(env_cfg: SkillEnvConfig, motion_path: str, sim_backend: str = "mujoco",
                     scene: SceneConfig | None = None, device: str = "cpu",
                     sim_kwargs: dict | None = None, seed: int | None = None,
                     v2: V2Config | None = None, **_: Any) -> SkillEnv:
    """rl-games' ``env_creator``: motion library + simulator + env from typed configs
    (``v2``: the SkillMimic-V2 hook's settings, None for the V1 env)."""
    if seed is not None and env_cfg.seed is None:
        env_cfg = dataclasses.replace(env_cfg, seed=int(seed))
    augment = None
    if v2 is not None:
        paths = {k: str(resolve_path(getattr(v2, k))) for k in ("graph_file", "hist_ckpt")
                 if getattr(v2, k) and getattr(v2, k) != AUTO}
        augment = V2Augment(dataclasses.replace(v2, **paths))
    return make_skill_env(env_cfg, motion_path, sim_backend=sim_backend, scene=scene, device=device,
                          augment=augment, **(sim_kwargs or {}))


class SkillVecEnv(IVecEnv):
    """All ``num_actors`` worlds of one :class:`SkillEnv` (rl-games' batched-env view)."""

    def __init__(self, config_name: str, num_actors: int, **kwargs: Any):
        self.env: SkillEnv = env_configurations.configurations[config_name]["env_creator"](**kwargs)
        if self.env.num_envs != num_actors:
            raise ValueError(f"rl-games expects {num_actors} actors but the env has {self.env.num_envs} worlds")
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.env.num_obs,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.env.num_actions,), dtype=np.float32)

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
        augment = getattr(self.env, "augment", None)     # the HLC env has none
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


def register_env() -> None:
    """Make ``env_name: skillmimic_skill`` known to rl-games (idempotent)."""
    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kw: SkillVecEnv(config_name, num_actors, **kw))
    env_configurations.register(ENV_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": create_skill_env})
