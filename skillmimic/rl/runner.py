"""From a typed :class:`~skillmimic.rl.config.Config` to a running rl-games PPO training.

Steps: validate (fail before anything is built), pick the run folder (a new
``<output_dir>/<experiment>/<timestamp>/`` or, on resume, the folder the checkpoint
lives in so that logs and checkpoints continue in place), seed, translate the typed
config into rl-games' parameter dict, create the agent *by its registered name* through
rl-games' :class:`~rl_games.torch_runner.Runner`, restore, train.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from .agent import SkillMimicAgent
from .config import (Config, ConfigError, distributed_rank, resolve_device, resolve_max_epochs, resolve_minibatch,
                     resolve_motion_path, unknown_keys, validate)
from .distributed import broadcast_object, init_distributed
from .registry import AGENT_NAME, ENV_NAME, MODEL_NAME, NETWORK_NAME, make_runner

_LR_SCHEDULES = {"constant": "identity", "linear": "linear", "adaptive": "adaptive"}


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    epoch: int
    frame: int
    seed: int
    history: list[dict] = field(default_factory=list)   # one dict per epoch trained in this call


def pick_run_dir(cfg: Config) -> Path:
    """``<output_dir>/<experiment>/<timestamp>``, or the checkpoint's run folder on resume."""
    if cfg.resume:
        ckpt = Path(cfg.resume).expanduser().resolve()
        if ckpt.parent.name == "nn":
            return ckpt.parent.parent
    base = Path(cfg.output_dir).expanduser().resolve() / cfg.experiment
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, i = base / stamp, 1
    while run_dir.exists():
        run_dir, i = base / f"{stamp}_{i}", i + 1
    return run_dir


def seed_everything(seed: int) -> int:
    if seed == -1:
        seed = random.SystemRandom().randrange(1, 2**31 - 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def _world_size(cfg: Config) -> int:
    """Processes sharing this machine's cores (torchrun ranks, or 1)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1))) if cfg.multi_gpu else 1


def rl_games_params(cfg: Config, run_dir: Path, seed: int) -> dict:
    """The rl-games parameter dict for ``cfg`` (the only place raw dicts appear: rl-games' API)."""
    t = cfg.train
    device = str(resolve_device(cfg.device))
    if cfg.multi_gpu:   # one process per GPU (or CPU rank): this rank's device, its own env randomness
        local_rank, rank, _ = distributed_rank(device)
        if torch.device(device).type == "cuda":
            device = f"cuda:{local_rank}"
        seed = seed + rank
    env_config = {
        "env_cfg": cfg.task.env_config(cfg.num_envs, seed),
        "motion_path": str(resolve_motion_path(cfg.motion)),
        "sim_backend": cfg.sim.backend,
        "scene": cfg.sim.scene,
        "device": device,
        "sim_kwargs": cfg.sim.sim_kwargs(),
        "seed": seed,
        "v2": cfg.task.v2,
    }
    return {
        "seed": seed,
        "torch_threads": cfg.torch_threads,
        "algo": {"name": AGENT_NAME},
        "model": {"name": MODEL_NAME},
        "network": {"name": NETWORK_NAME, "units": list(t.network.units), "activation": t.network.activation,
                    "log_std": t.network.log_std},
        "config": {
            "name": cfg.experiment,
            "full_experiment_name": run_dir.name,
            "train_dir": str(run_dir.parent),
            "env_name": ENV_NAME,
            "env_config": env_config,
            "num_actors": cfg.num_envs,
            "device": device,
            "ppo": True,
            "mixed_precision": False,
            "torch_compile": t.torch_compile,
            "normalize_input": t.normalize_input,
            "normalize_value": t.normalize_value,
            "normalize_advantage": t.normalize_advantage,
            "value_bootstrap": t.value_bootstrap,
            "reward_shaper": {"scale_value": 1.0},
            "gamma": t.gamma,
            "tau": t.tau,
            "learning_rate": t.learning_rate,
            "lr_schedule": _LR_SCHEDULES[t.lr_schedule],
            "kl_threshold": t.kl_threshold,
            "e_clip": t.e_clip,
            "clip_value": t.clip_value,
            "critic_coef": t.critic_coef,
            "entropy_coef": t.entropy_coef,
            "bounds_loss_coef": t.bounds_loss_coef,
            "truncate_grads": t.truncate_grads,
            "grad_norm": t.grad_norm,
            "horizon_length": t.horizon_length,
            "minibatch_size": resolve_minibatch(t, cfg.num_envs),
            "mini_epochs": t.mini_epochs,
            "max_epochs": resolve_max_epochs(cfg),
            "save_frequency": t.save_frequency,
            "keep_checkpoint_every": t.keep_checkpoint_every,
            "games_to_track": t.games_to_track,
            "print_stats": cfg.print_stats,
            "clip_actions": True,
            "multi_gpu": cfg.multi_gpu,
            "torch_update_threads": cfg.torch_update_threads or max(1, (os.cpu_count() or 1) // _world_size(cfg)),
            "run_config": OmegaConf.to_yaml(OmegaConf.structured(cfg)),
        },
    }


def _write_run_config(cfg: Config, run_dir: Path, seed: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = OmegaConf.structured(cfg)
    conf.seed = seed
    conf.max_epochs = resolve_max_epochs(cfg)      # the budget this run was given, not "null"
    name = "config.yaml" if not (run_dir / "config.yaml").exists() else \
        f"config_resume_{datetime.now().strftime('%Y%m%d-%H%M%S')}.yaml"
    (run_dir / name).write_text(OmegaConf.to_yaml(conf))


def to_config(cfg) -> Config:
    """hydra's DictConfig -> the typed :class:`Config` (rejecting keys added with ``+key=``)."""
    if isinstance(cfg, Config):
        return cfg
    extra = unknown_keys(cfg)
    if extra:
        raise ConfigError(f"unknown config key(s): {', '.join(extra)} (see python train.py --cfg job for all keys)")
    return OmegaConf.to_object(cfg)


def build_agent(cfg) -> tuple[SkillMimicAgent, Path, int]:
    """Validate, create the run folder, build env + agent by name, restore ``cfg.resume``.

    Returns ``(agent, run_dir, seed)``; ``agent.train()`` runs the training."""
    cfg = to_config(cfg)
    validate(cfg)
    if cfg.resume and not Path(cfg.resume).expanduser().exists():
        raise ConfigError(f"resume={cfg.resume!r}: checkpoint file does not exist")
    lead = True
    if cfg.multi_gpu:     # the process group first: rank 0 picks the run folder and the seed for all
        _, rank, _ = init_distributed(cfg.device)
        lead = rank == 0
        run_dir, base_seed = broadcast_object((pick_run_dir(cfg), seed_everything(cfg.seed)) if lead else None)
        seed_everything(base_seed + rank)      # own action noise per rank; weights come from rank 0
        seed = base_seed
    else:
        run_dir = pick_run_dir(cfg)
        seed = seed_everything(cfg.seed)
    params = rl_games_params(cfg, run_dir, seed)
    if cfg.task.hlc is not None:                   # high-level controller: discrete PPO (skillmimic.rl.hlc)
        from .hlc import hlc_params

        params = hlc_params(cfg, params)
    if lead:
        _write_run_config(cfg, run_dir, seed)
        print(f"[skillmimic] run folder {run_dir}  (device {params['config']['device']}, {cfg.num_envs} envs, "
              f"sim {cfg.sim.backend}, motion {params['config']['env_config']['motion_path']}, seed {seed}, "
              f"minibatch {params['config']['minibatch_size']} x "
              f"{cfg.train.horizon_length * cfg.num_envs // params['config']['minibatch_size']} per mini-epoch)",
              flush=True)

    runner = make_runner()
    if cfg.task.hlc is not None:
        from .hlc import register_hlc

        register_hlc(runner)
    runner.load({"params": params})
    torch.set_num_threads(cfg.torch_threads)
    agent = runner.algo_factory.create(params["algo"]["name"], base_name="run", params=runner.params)
    try:
        if cfg.resume:
            agent.restore(Path(cfg.resume).expanduser())
        if cfg.train.torch_compile:
            agent.model = torch.compile(agent.model)
    except BaseException:
        close_agent(agent)
        raise
    return agent, run_dir, seed


def close_agent(agent: SkillMimicAgent) -> None:
    if agent.writer is not None:                   # ranks other than 0 have none
        agent.writer.close()
    if agent.vec_env is not None:
        agent.vec_env.close()


def train(cfg) -> TrainResult:
    """Train (or resume) according to ``cfg``; returns where things went and the final counters."""
    agent, run_dir, seed = build_agent(cfg)
    try:
        t0 = time.perf_counter()
        agent.train()
        if agent.global_rank == 0:
            print(f"[skillmimic] done: epoch {agent.epoch_num}, frame {agent.frame}, "
                  f"{time.perf_counter() - t0:.1f} s; checkpoint {agent.checkpoint_path()}", flush=True)
    finally:
        close_agent(agent)
    return TrainResult(run_dir=run_dir, checkpoint=agent.checkpoint_path(), epoch=agent.epoch_num,
                       frame=agent.frame, seed=seed, history=list(agent.epoch_history))
