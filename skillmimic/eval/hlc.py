"""Evaluation of high-level controller (HLC) checkpoints: task metrics over whole episodes.

``eval.py checkpoint=<hlc run>/nn/hlc_layup.pth`` lands here (:func:`evaluate_hlc_checkpoint`,
dispatched from :func:`skillmimic.eval.app.evaluate_checkpoint` when the checkpoint's policy
has a logits head). Task, sim and motion come from the checkpoint's run config; a group
selected on the command line (``task=hlc_layup``) replaces it, and dotted overrides
(``task.episode_length=300``, ``sim.scene.ball.friction=0.8``) apply on top of the run's
group. Test mode: the high-level action is the argmax of the logits (training
samples them), the LLC is the one of the run config unless ``llc_checkpoint=`` is given,
episodes run to their end (a fall, or ``task.episode_length`` env steps), and each of
``eval.rounds`` rounds collects the first episode of every env -- new goals and start clips
per round from the env's seeded generator (``eval.seed``).

Metrics (see :meth:`envs.hlc.HLCTask.summarize`): goal reach rate (heading, circling -- plus
laps and time on the circle), max ball height statistics (throwing), success rate and
scores per minute of simulated time (layup); for every task the fall rate, mean episode
length and mean episode return.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch

from ..rl.checkpoint import CheckpointError, load_checkpoint
from ..rl.config import ConfigError, resolve_device, resolve_motion_path, resolve_path
from .policy import CheckpointPolicy, _model_shapes, _rebuild_model, checkpoint_weights, run_config_of
from .runner import save_figure

_LOGITS = "a2c_network.logits.weight"


def is_hlc_state(state: dict) -> bool:
    """Whether a loaded training checkpoint holds a categorical (HLC) policy."""
    return _LOGITS in checkpoint_weights(state)


def is_hlc_checkpoint(path: str | Path) -> bool:
    """Whether the training checkpoint at ``path`` holds a categorical (HLC) policy."""
    return is_hlc_state(load_checkpoint(Path(path).expanduser(), map_location="cpu"))


class HLCPolicy(CheckpointPolicy):
    """Deterministic HLC policy of a checkpoint: ``policy(obs) -> argmax action`` (long)."""

    @staticmethod
    def _act(res: dict) -> torch.Tensor:
        return res["logits"].argmax(dim=-1)


def load_hlc_policy(path: str | Path, device: str | torch.device = "cpu", state: Optional[dict] = None) -> HLCPolicy:
    """Rebuild the ``discrete_a2c`` model of an HLC checkpoint (eval mode, normaliser inside);
    ``state``: the checkpoint already loaded from ``path``."""
    from ..rl.hlc import HLC_MODEL_NAME, HLC_NETWORK_NAME, register_hlc

    path = Path(path).expanduser()
    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    weights = checkpoint_weights(state)
    if _LOGITS not in weights:
        raise CheckpointError(f"checkpoint {path}: not an HLC policy (no {_LOGITS})")
    try:
        num_obs, num_actions, units = _model_shapes(weights, _LOGITS)
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path}: not an HLC policy ({e})") from None
    run_cfg = run_config_of(state)
    register_hlc()
    params = {"model": {"name": HLC_MODEL_NAME},
              "network": {"name": HLC_NETWORK_NAME, "units": units,
                          "activation": run_cfg.train.network.activation if run_cfg is not None else "relu"}}
    model = _rebuild_model(path, weights, params, num_obs, num_actions, device, kind="HLC ")
    return HLCPolicy(model, run_cfg, path, int(state.get("epoch", -1)), num_obs, num_actions)


# --------------------------------------------------------------------------- rollouts
@dataclass
class HLCEvalReport:
    task: str
    rounds: int
    episodes: int
    metrics: dict[str, float]
    per_episode: dict[str, list] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v
        d = self.to_dict()
        d["metrics"] = {k: clean(v) for k, v in d["metrics"].items()}
        path.write_text(json.dumps(d, indent=2) + "\n")
        return path

    def table(self) -> str:
        rows = [(k, f"{v:.4g}") for k, v in self.metrics.items()]
        w = max(len(k) for k, _ in rows)
        head = f"HLC task {self.task}: {self.episodes} episodes ({self.rounds} round(s))"
        return "\n".join([head] + [f"  {k.ljust(w)}  {v}" for k, v in rows])

    def plot(self, path: str | Path) -> Path:
        """Histogram of the task's main per-episode quantity."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        key, label = {"heading": ("min_distance", "closest ball-goal distance (m)"),
                      "circling": ("swept_angle", "angle swept on the circle (rad)"),
                      "throwing": ("max_ball_height", "max ball height (m)"),
                      "layup": ("scores", "scores per episode")}[self.task]
        values = [v for v in self.per_episode.get(key, []) if v is not None and math.isfinite(v)]
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.hist(values, bins=max(5, min(30, len(values))), color="tab:blue")
        ax.set_xlabel(label)
        ax.set_ylabel("episodes")
        ax.set_title(f"{self.task}: " + ", ".join(f"{k} {v:.3g}" for k, v in list(self.metrics.items())[:2]),
                     fontsize=9)
        return save_figure(fig, path)


def evaluate_hlc(env, policy: Callable[[torch.Tensor], torch.Tensor], rounds: int = 1, progress: bool = False,
                 meta: Optional[dict] = None) -> HLCEvalReport:
    """Run ``rounds`` rounds of one full episode per env and summarise the task metrics.

    ``env`` is an :class:`envs.hlc.HLCEnv`, ``policy`` any ``obs -> action index`` callable."""
    max_steps = math.ceil(env.cfg.episode_length / env.cfg.hlc.llc_steps) + 2
    rows: dict[str, list[torch.Tensor]] = {}
    for r in range(rounds):
        obs = env.reset()
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        ret = torch.zeros(env.num_envs, device=env.device)
        for _ in range(max_steps):
            obs, reward, done, info = env.step(policy(obs))
            ret += torch.where(finished, torch.zeros_like(reward), reward)
            ep = info.get("episodes")
            if ep is not None:
                new = ~finished[ep["env_ids"]]
                for k, v in ep.items():
                    if k != "env_ids":
                        rows.setdefault(k, []).append(v[new].cpu())
                rows.setdefault("return", []).append(ret[ep["env_ids"]][new].cpu())
                finished[ep["env_ids"]] = True
            if finished.all():
                break
        if not finished.all():
            raise RuntimeError(f"{int((~finished).sum())} episode(s) did not end within {max_steps} HLC steps")
        if progress:
            print(f"[skillmimic] HLC eval round {r + 1}/{rounds} done", flush=True)
    episodes = {k: torch.cat(v) for k, v in rows.items()}
    metrics = env.summarize(episodes)
    metrics["return_mean"] = episodes["return"].float().mean().item()
    per_episode = {k: v.float().tolist() for k, v in episodes.items()}
    return HLCEvalReport(task=env.task.name, rounds=rounds, episodes=len(episodes["length"]), metrics=metrics,
                         per_episode=per_episode, meta=dict(meta or {}))


def _copy_leaf(src, dst, path: list[str]) -> None:
    """``dst.<path> = src.<path>`` for nested dataclasses (a command-line value onto a run's group)."""
    for name in path[:-1]:
        src, dst = getattr(src, name), getattr(dst, name)
    setattr(dst, path[-1], copy.deepcopy(getattr(src, path[-1])))


def evaluate_hlc_checkpoint(cfg, ckpt: Path, cli_overrides: Iterable[str] = (), policy: Optional[HLCPolicy] = None):
    """``eval.py`` for an HLC checkpoint: env from the run config (CLI groups win), report files.
    ``policy``: the checkpoint's policy already loaded on ``cfg.device``."""
    from envs.hlc import make_hlc_env

    from ..rl.hlc import hlc_env_config
    from .app import _GROUPS, EvalOutputs, default_out_dir, override_key

    device = resolve_device(cfg.device)
    if policy is None:
        policy = load_hlc_policy(ckpt, device=device)
    used = []
    run = policy.run_config
    if cfg.use_run_config and run is not None:
        cli_overrides = list(cli_overrides)
        selected = {override_key(ov) for ov in cli_overrides} & set(_GROUPS)
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
    if cfg.task.hlc is None:
        raise ConfigError(f"checkpoint {ckpt} is a high-level controller but task={cfg.task.name} is not an HLC task "
                          f"(use its run config, or task=hlc_<name>)")
    llc = cfg.llc_checkpoint or (run.llc_checkpoint if run is not None else None)
    if not llc:
        raise ConfigError(f"checkpoint {ckpt}: no llc_checkpoint in its run config; pass llc_checkpoint=<path>")
    motion_path = resolve_motion_path(cfg.motion)
    env = make_hlc_env(hlc_env_config(cfg.task, cfg.num_envs, cfg.eval.seed), motion_path, resolve_path(llc),
                       sim_backend=cfg.sim.backend, scene=cfg.sim.scene, device=str(device), **cfg.sim.sim_kwargs())
    try:
        if env.num_obs != policy.num_obs or env.num_actions != policy.num_actions:
            raise ConfigError(f"checkpoint {ckpt} expects {policy.num_obs} obs / {policy.num_actions} actions but the "
                              f"{env.task.name} env has {env.num_obs} / {env.num_actions}")
        meta = {"checkpoint": str(ckpt.resolve()), "epoch": policy.epoch, "llc_checkpoint": str(resolve_path(llc)),
                "motion": str(motion_path), "sim": cfg.sim.backend, "device": str(device), "num_envs": cfg.num_envs,
                "episode_length": cfg.task.episode_length, "from_run_config": used,
                "time": datetime.now().isoformat(timespec="seconds")}
        print(f"[skillmimic] HLC eval {ckpt} (epoch {policy.epoch}, task {env.task.name}): {cfg.num_envs} envs x "
              f"{cfg.eval.rounds} rounds, episodes up to {cfg.task.episode_length} steps", flush=True)
        report = evaluate_hlc(env, policy, cfg.eval.rounds, progress=cfg.eval.progress, meta=meta)
    finally:
        env.close()
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else default_out_dir(ckpt)
    return EvalOutputs(report, report.write_json(out_dir / "eval.json"), report.plot(out_dir / "eval.png"), out_dir)


__all__ = ["HLCEvalReport", "HLCPolicy", "evaluate_hlc", "evaluate_hlc_checkpoint", "is_hlc_checkpoint",
           "is_hlc_state", "load_hlc_policy"]
