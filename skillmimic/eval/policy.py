"""The policy of a checkpoint and the env to test it in.

:func:`load_policy` (a checkpoint as an ``obs -> action`` callable) lives with the trainer,
which owns the rl-games model layout (:mod:`skillmimic.rl.policy`); it is re-exported here,
beside :func:`make_eval_env`, because evaluation, the viewer and the video renderer use the two
together.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf

from ..rl.config import Config, resolve_motion_path, resolve_path
from ..rl.policy import CheckpointPolicy, load_policy


def make_eval_env(cfg: Optional[Config], num_envs: int, motion_path: str | Path | None = None,
                  device: str | torch.device = "cpu", episode_length: int = 600, seed: int = 0):
    """The env of ``cfg``'s registered task, sim and motion, in test mode.

    Imitation tasks: early termination off, start frame 2 and episodes of ``episode_length``
    steps (callers that run past a clip's end hold the episodes, see
    :func:`skillmimic.eval.runner.evaluate`); a SkillMimic-V2 policy keeps its history encoder
    (part of its observation) but not the training-time start distributions (STG switches,
    STF perturbed starts, ATS reweighting), as in V2's test mode. Other tasks run their
    episodes as configured (``task.episode_length``). ``motion_path`` overrides ``cfg.motion``.
    """
    from ..rl.vecenv import create_env

    cfg = cfg if cfg is not None else _default_config()
    spec = cfg.task.spec()
    env_cfg = cfg.task.env_config(num_envs, seed)
    if spec.evaluation == "imitation":
        env_cfg = dataclasses.replace(env_cfg, episode_length=int(episode_length), state_init=2,
                                      enable_early_termination=False)
    path = Path(motion_path) if motion_path is not None else resolve_motion_path(cfg.motion)
    v2 = getattr(cfg.task, "v2", None)
    if v2 is not None:
        v2 = dataclasses.replace(v2, state_switch_prob=0.0, state_init_random_prob=0.0, reweight=False)
    llc = str(resolve_path(cfg.llc_checkpoint)) if spec.needs_llc and cfg.llc_checkpoint else None
    return create_env(env_cfg, str(path), task=spec.name, sim_backend=cfg.sim.backend, scene=cfg.sim.scene,
                      device=str(device), sim_kwargs=cfg.sim.sim_kwargs(), seed=seed, v2=v2, llc_checkpoint=llc)


def load_player(checkpoint: str | Path, num_envs: int = 1, motion_path: str | Path | None = None,
                device: str | torch.device = "cpu", episode_length: int = 600):
    """(policy, test-mode env) of a checkpoint for the viewer and the video renderer, which
    replay reference-tracking episodes: a task whose registry entry is not evaluated by
    imitation (the high-level controllers) is refused with a ValueError naming it."""
    policy = load_policy(checkpoint, device=device)
    cfg = policy.run_config if policy.run_config is not None else _default_config()
    spec = cfg.task.spec()
    if spec.evaluation != "imitation":
        raise ValueError(f"checkpoint {checkpoint} is a {spec.name} policy; the viewer and the renderer play "
                         f"skill-imitation policies (evaluate it with python eval.py checkpoint=...)")
    return policy, make_eval_env(cfg, num_envs, motion_path=motion_path, device=device,
                                 episode_length=episode_length)


def _default_config() -> Config:
    """The repository's default config tree (cfg/config.yaml), composed without hydra's app."""
    from hydra import compose, initialize_config_dir

    from ..rl.config import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("config"))


__all__ = ["CheckpointPolicy", "load_player", "load_policy", "make_eval_env"]
