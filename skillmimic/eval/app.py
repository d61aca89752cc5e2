"""``eval.py``'s configuration schema and the checkpoint -> report pipeline.

The schema extends the training :class:`~skillmimic.rl.config.Config` (same groups:
task, train, sim, motion) with ``checkpoint``, ``out_dir``, ``use_run_config`` and the
``eval`` node (:class:`~skillmimic.eval.runner.EvalSettings`), so one config tree serves
``train.py`` and ``eval.py`` and a typo in an eval key fails like one in a training key.

Which task/sim/motion a checkpoint is evaluated on: with ``use_run_config`` (default) the
groups come from the run config stored in the checkpoint -- the policy is tested on what it
was trained for -- except the groups named on the command line (``motion=ballplay_run``,
``sim.scene.ball.friction=0.8`` ...), which win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Optional

import torch
from omegaconf import OmegaConf

from ..rl.config import Config, ConfigError, override_key, resolve_device, resolve_motion_path
from .runner import EvalReport, EvalSettings, evaluate

_GROUPS = ("task", "sim", "motion")


@dataclass
class EvalConfig(Config):
    checkpoint: Optional[str] = None        # required: a training checkpoint (.pth)
    out_dir: Optional[str] = None           # default: <run folder>/eval/<timestamp>
    use_run_config: bool = True             # task/sim/motion from the checkpoint unless overridden
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class EvalOutputs:
    report: EvalReport
    json_path: Path
    plot_path: Path
    out_dir: Path


def register_eval_config() -> None:
    """Put the eval schema into hydra's ConfigStore (``cfg/eval.yaml`` lists it first)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="skillmimic_eval_config", node=EvalConfig)


def overridden_groups(overrides: Iterable[str]) -> set[str]:
    """Which of task/sim/motion a list of hydra command-line overrides touches."""
    out = set()
    for ov in overrides:
        key = override_key(ov)
        for g in _GROUPS:
            if key == g or key.startswith(g + "."):
                out.add(g)
    return out


def to_eval_config(cfg) -> EvalConfig:
    if isinstance(cfg, EvalConfig):
        return cfg
    try:
        from ..rl.config import unknown_keys
    except ImportError:                      # older schema module: OmegaConf still rejects typos
        unknown_keys = None
    if unknown_keys is not None:
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
    """Load ``cfg.checkpoint``, run :func:`~skillmimic.eval.runner.evaluate`, write
    ``eval.json`` and ``eval.png`` into the output folder, return the report and paths."""
    from ..rl.checkpoint import load_checkpoint
    from .hlc import evaluate_hlc_checkpoint, is_hlc_state, load_hlc_policy
    from .policy import load_policy, make_eval_env

    cfg = to_eval_config(cfg)
    if not cfg.checkpoint:
        raise ConfigError("checkpoint=<path to a training checkpoint .pth> is required")
    ckpt = Path(cfg.checkpoint).expanduser()
    device = resolve_device(cfg.device)
    if hasattr(cfg, "torch_threads") and cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    state = load_checkpoint(ckpt, map_location="cpu")     # read once, for the dispatch and the policy
    if is_hlc_state(state):             # a high-level controller: task metrics (skillmimic/eval/hlc.py)
        return evaluate_hlc_checkpoint(cfg, ckpt, cli_overrides, load_hlc_policy(ckpt, device=device, state=state))
    policy = load_policy(ckpt, device=device, state=state)
    used = []
    if cfg.use_run_config and policy.run_config is not None:
        keep = overridden_groups(cli_overrides)
        for g in _GROUPS:
            if g not in keep:
                setattr(cfg, g, dataclasses.replace(getattr(policy.run_config, g)))
                used.append(g)
    motion_path = resolve_motion_path(cfg.motion)
    env = make_eval_env(cfg, cfg.num_envs, motion_path=motion_path, device=device,
                        episode_length=cfg.eval.episode_length, seed=cfg.eval.seed)
    if env.num_obs != policy.num_obs or env.num_actions != policy.num_actions:
        env.close()
        raise ConfigError(f"checkpoint {ckpt} expects {policy.num_obs} obs / {policy.num_actions} actions but the "
                          f"env has {env.num_obs} / {env.num_actions}")
    meta = {"checkpoint": str(ckpt.resolve()), "epoch": policy.epoch, "motion": str(motion_path),
            "sim": cfg.sim.backend, "device": str(device), "from_run_config": used,
            "time": datetime.now().isoformat(timespec="seconds")}
    print(f"[skillmimic] eval {ckpt} (epoch {policy.epoch}) on {motion_path}: {env.motion.num_clips} clip(s), "
          f"up to {cfg.eval.rounds} rounds x {cfg.num_envs} envs of {cfg.eval.episode_length} steps per scenario "
          f"(start frames spread over {cfg.eval.start_spread:.0%} of each clip; identical episodes run once)"
          + (f"; task/sim/motion from the run config: {', '.join(used)}" if used else ""), flush=True)
    try:
        report = evaluate(env, policy, cfg.eval, meta)
    finally:
        env.close()
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else default_out_dir(ckpt)
    json_path = report.write_json(out_dir / "eval.json")
    plot_path = report.plot(out_dir / "eval.png")
    return EvalOutputs(report, json_path, plot_path, out_dir)


__all__ = ["EvalConfig", "EvalOutputs", "register_eval_config", "evaluate_checkpoint", "overridden_groups",
           "default_out_dir"]
