"""``eval.py``'s configuration schema and the checkpoint -> report pipeline.

The schema extends the training :class:`~skillmimic.rl.config.Config` (same groups:
task, train, sim, motion) with ``checkpoint``, ``out_dir``, ``use_run_config`` and the
``eval`` node (:class:`~skillmimic.eval.runner.EvalSettings`), so one config tree serves
``train.py`` and ``eval.py`` and a typo in an eval key fails like one in a training key.

Which task/sim/motion a checkpoint is evaluated on: with ``use_run_config`` (default) each
group comes from the run config stored in the checkpoint -- the policy is tested on what it
was trained for -- except a group selected on the command line as a whole
(``motion=ballplay_run``, ``task=hlc_layup``), which replaces it; dotted overrides
(``task.episode_length=300``, ``sim.scene.object.friction=0.8``) apply on top of the run's group.

How the checkpoint is evaluated follows its task's registry entry (:mod:`envs.registry`):
``imitation`` tasks get the per-skill tracking and success report (:mod:`.runner`),
``episodes`` tasks (the high-level controllers) their task metrics (:mod:`.hlc`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Optional

import torch
from omegaconf import OmegaConf

from ..checkpoint import CheckpointError, load_checkpoint
from ..rl.config import (Config, ConfigError, override_key, resolve_device, resolve_motion_path, resolve_path,
                         run_config_of, unknown_keys)
from ..rl.policy import CheckpointPolicy, load_policy, policy_kind
from .policy import make_eval_env
from .runner import EvalSettings

_GROUPS = ("task", "sim", "motion")


@dataclass
class EvalConfig(Config):
    checkpoint: Optional[str] = None        # required: a training checkpoint (.pth)
    out_dir: Optional[str] = None           # default: <run folder>/eval/<timestamp>
    use_run_config: bool = True             # task/sim/motion from the checkpoint unless overridden
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class EvalOutputs:
    report: object                          # EvalReport (imitation) or HLCEvalReport (episodes)
    json_path: Path
    plot_path: Path
    out_dir: Path


def register_eval_config() -> None:
    """Put the eval schema into hydra's ConfigStore (``cfg/eval.yaml`` lists it first)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="skillmimic_eval_config", node=EvalConfig)


def selected_groups(overrides: Iterable[str]) -> set[str]:
    """Which of task/sim/motion the command line selects as a whole (``motion=ballplay_run``)."""
    return {override_key(ov) for ov in overrides} & set(_GROUPS)


def _copy_leaf(src, dst, path: list[str]) -> None:
    """``dst.<path> = src.<path>`` for nested dataclasses (a command-line value onto a run's group)."""
    for name in path[:-1]:
        src, dst = getattr(src, name), getattr(dst, name)
    setattr(dst, path[-1], copy.deepcopy(getattr(src, path[-1])))


def apply_run_config(cfg: Config, run: Optional[Config], cli_overrides: Iterable[str]) -> list[str]:
    """Put the run's task/sim/motion into ``cfg`` (module docstring); returns the groups taken."""
    if run is None:
        return []
    cli_overrides = list(cli_overrides)
    selected = selected_groups(cli_overrides)
    used = []
    for g in _GROUPS:
        if g in selected:                 # task=hlc_layup etc.: the composed group as given
            continue
        group = copy.deepcopy(getattr(run, g))
        for ov in cli_overrides:          # task.episode_length=300 etc. apply on top of the run's group
            path = override_key(ov).split(".")
            if path[0] == g and len(path) > 1:
                _copy_leaf(getattr(cfg, g), group, path[1:])
        setattr(cfg, g, group)
        used.append(g)
    return used


def to_eval_config(cfg) -> EvalConfig:
    if isinstance(cfg, EvalConfig):
        return cfg
    extra = unknown_keys(cfg, EvalConfig)
    if extra:
        raise ConfigError(f"unknown config key(s): {', '.join(extra)} (see python eval.py --cfg job)")
    return OmegaConf.to_object(cfg)


def default_out_dir(checkpoint: Path) -> Path:
    """``<run>/eval/<timestamp>`` for ``<run>/nn/<name>.pth``, else beside the checkpoint."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "nn" else checkpoint.parent
    out, i = run_dir / "eval" / f"{checkpoint.stem}_{stamp}", 1
    while out.exists():
        out, i = run_dir / "eval" / f"{checkpoint.stem}_{stamp}_{i}", i + 1
    return out


def evaluate_checkpoint(cfg, cli_overrides: Iterable[str] = ()) -> EvalOutputs:
    """Load ``cfg.checkpoint``, evaluate it the way its task's registry entry says, write
    ``eval.json`` and ``eval.png`` into the output folder, return the report and paths."""
    cfg = to_eval_config(cfg)
    if not cfg.checkpoint:
        raise ConfigError("checkpoint=<path to a training checkpoint .pth> is required")
    ckpt = Path(cfg.checkpoint).expanduser()
    device = resolve_device(cfg.device)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    state = load_checkpoint(ckpt, map_location="cpu")     # read once, for the task and the policy
    try:
        run = run_config_of(state)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {ckpt}: {e}") from None
    kind = policy_kind(run, ckpt, default=cfg.task.spec().policy)
    used = apply_run_config(cfg, run, cli_overrides) if cfg.use_run_config else []
    if not cfg.llc_checkpoint and run is not None:
        cfg.llc_checkpoint = run.llc_checkpoint        # the run's frozen skill policy, unless given
    spec = cfg.task.spec()
    if spec.policy != kind:
        raise ConfigError(f"checkpoint {ckpt} holds a {kind} policy (task={run.task.name if run else '?'}) but "
                          f"task={cfg.task.name} trains a {spec.policy} one; use its run config, or a task of its kind")
    policy = load_policy(ckpt, device=device, state=state, kind=kind)
    if spec.needs_llc and not cfg.llc_checkpoint:
        raise ConfigError(f"checkpoint {ckpt}: no llc_checkpoint in its run config; pass llc_checkpoint=<path>")
    motion_path = resolve_motion_path(cfg.motion)
    meta = {"checkpoint": str(ckpt.resolve()), "epoch": policy.epoch, "motion": str(motion_path),
            "sim": cfg.sim.backend, "device": str(device), "from_run_config": used,
            "time": datetime.now().isoformat(timespec="seconds")}
    report = _EVALUATIONS[spec.evaluation](cfg, ckpt, policy, motion_path, device, meta)
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else default_out_dir(ckpt)
    return EvalOutputs(report, report.write_json(out_dir / "eval.json"), report.plot(out_dir / "eval.png"), out_dir)


def _evaluate_imitation(cfg: EvalConfig, ckpt: Path, policy: CheckpointPolicy, motion_path: Path, device,
                        meta: dict):
    """Per-skill success, tracking errors and scenarios (:func:`.runner.evaluate`)."""
    from .runner import evaluate

    env = make_eval_env(cfg, cfg.num_envs, motion_path=motion_path, device=device,
                        episode_length=cfg.eval.episode_length, seed=cfg.eval.seed)
    try:
        _check_sizes(ckpt, policy, env)
        used = meta["from_run_config"]
        print(f"[skillmimic] eval {ckpt} (epoch {policy.epoch}) on {motion_path}: {env.motion.num_clips} clip(s), "
              f"up to {cfg.eval.rounds} rounds x {cfg.num_envs} envs of {cfg.eval.episode_length} steps per "
              f"scenario (start frames spread over {cfg.eval.start_spread:.0%} of each clip; identical episodes run "
              f"once)" + (f"; task/sim/motion from the run config: {', '.join(used)}" if used else ""), flush=True)
        return evaluate(env, policy, cfg.eval, meta)
    finally:
        env.close()


def _evaluate_episodes(cfg: EvalConfig, ckpt: Path, policy: CheckpointPolicy, motion_path: Path, device,
                       meta: dict):
    """Task metrics over whole episodes (:func:`.hlc.evaluate_hlc`)."""
    from .hlc import evaluate_hlc

    env = make_eval_env(cfg, cfg.num_envs, motion_path=motion_path, device=device, seed=cfg.eval.seed)
    try:
        _check_sizes(ckpt, policy, env)
        meta.update({"llc_checkpoint": str(resolve_path(cfg.llc_checkpoint)) if cfg.llc_checkpoint else None,
                     "num_envs": cfg.num_envs, "episode_length": cfg.task.episode_length})
        print(f"[skillmimic] HLC eval {ckpt} (epoch {policy.epoch}, task {env.task.name}): {cfg.num_envs} envs x "
              f"{cfg.eval.rounds} rounds, episodes up to {cfg.task.episode_length} steps", flush=True)
        return evaluate_hlc(env, policy, cfg.eval.rounds, progress=cfg.eval.progress, meta=meta)
    finally:
        env.close()


#: how each registry evaluation kind (envs.registry.EVALUATIONS) is run
_EVALUATIONS = {"imitation": _evaluate_imitation, "episodes": _evaluate_episodes}


def _check_sizes(ckpt: Path, policy: CheckpointPolicy, env) -> None:
    if env.num_obs != policy.num_obs or env.num_actions != policy.num_actions:
        raise ConfigError(f"checkpoint {ckpt} expects {policy.num_obs} obs / {policy.num_actions} actions but the "
                          f"{type(env).__name__} has {env.num_obs} / {env.num_actions}")


__all__ = ["EvalConfig", "EvalOutputs", "apply_run_config", "default_out_dir", "evaluate_checkpoint",
           "register_eval_config", "selected_groups"]
