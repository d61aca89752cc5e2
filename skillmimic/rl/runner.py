"""From a typed :class:`~skillmimic.rl.config.Config` to a running rl-games PPO training.

Steps: on resume, read the checkpoint and restore its run's own configuration (command-line
overrides on top); validate (fail before anything is built); pick the run folder (a new
``<output_dir>/<experiment>/<timestamp>/`` or, on resume, the folder the checkpoint lives
in so that logs and checkpoints continue in place); seed; translate the typed config into
rl-games' parameter dict; create the agent *by its registered name* through rl-games'
:class:`~rl_games.torch_runner.Runner`; restore; train.

A start that fails (any error, Ctrl-C included) removes everything it created: the run
folder (or, on resume, the files it added to it), the V2 cache files and any folder made
for them. ``config.yaml`` (or ``config_resume_<stamp>.yaml``) is written only once the
agent is built and restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from .agent import SkillMimicAgent
from ..checkpoint import load_checkpoint
from .config import (Config, ConfigError, distributed_rank, load_run_config, override_key, resolve_device,
                     resolve_max_epochs, resolve_minibatch, resolve_motion_path, resolve_path, unknown_keys,
                     validate)
from .discrete import discrete_params
from .distributed import broadcast_object, init_distributed
from .names import RL_GAMES
from .registry import make_runner

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
    spec = cfg.task.spec()
    names = RL_GAMES[spec.policy]
    llc = str(resolve_path(cfg.llc_checkpoint)) if cfg.llc_checkpoint else None
    env_config = {
        "env_cfg": cfg.task.env_config(cfg.num_envs, seed),
        "task": spec.name,
        "motion_path": str(resolve_motion_path(cfg.motion)),
        "sim_backend": cfg.sim.backend,
        "scene": cfg.sim.scene,
        "device": device,
        "sim_kwargs": cfg.sim.sim_kwargs(),
        "seed": seed,
        "v2": cfg.task.v2,
        "llc_checkpoint": llc,
    }
    # checkpoints carry the run config; with the LLC's absolute path eval finds it from anywhere
    run_cfg = dataclasses.replace(cfg, seed=seed, llc_checkpoint=llc)
    params = {
        "seed": seed,
        "torch_threads": cfg.torch_threads,
        "algo": {"name": names.agent},
        "model": {"name": names.model},
        "network": {"name": names.network, "units": list(t.network.units), "activation": t.network.activation,
                    "log_std": t.network.log_std},
        "config": {
            "name": cfg.experiment,
            "full_experiment_name": run_dir.name,
            "train_dir": str(run_dir.parent),
            "env_name": names.env,
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
            "run_config": OmegaConf.to_yaml(OmegaConf.structured(run_cfg)),
        },
    }
    return discrete_params(cfg, params) if spec.policy == "discrete" else params


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


# --------------------------------------------------------------------------- resume
def _leaves(node, prefix: str = "") -> dict:
    """Dotted key -> value of every leaf of a (resolved) config; a list is one value."""
    if not isinstance(node, dict) or not node:
        return {prefix.rstrip("."): node}
    out = {}
    for k, v in node.items():
        out.update(_leaves(v, f"{prefix}{k}."))
    return out


def _run_config_text(ckpt: Path, state: dict) -> tuple[str | None, str]:
    """The checkpoint's run configuration (YAML) and where it came from: the one saved in the
    checkpoint (the configuration of the start that wrote it), else the newest
    ``config*.yaml`` of its run folder."""
    if state.get("run_config"):
        return str(state["run_config"]), f"checkpoint {ckpt}"
    if ckpt.parent.name == "nn":
        files = sorted(ckpt.parent.parent.glob("config*.yaml"), key=lambda f: f.stat().st_mtime)
        if files:
            return files[-1].read_text(), str(files[-1])
    return None, ""


#: config groups and the field that names the option chosen for them
_GROUP_IDENTITY = {"task": "name", "train": "name", "motion": "name", "sim": "backend"}


def resume_config(cfg: Config, ckpt: Path, state: dict, overrides: Sequence[str] | None) -> Config:
    """The configuration to resume ``ckpt`` with: its run's own, with the explicit command-line
    ``overrides`` applied on top (``None``: ``cfg`` is taken as given, every value explicit).

    A checkpoint of another task fails here, before anything is built, naming its task."""
    text, source = _run_config_text(ckpt, state)
    if text is None:
        print(f"[skillmimic] warning: {ckpt} carries no run configuration; resuming with the command line's",
              flush=True)
        return cfg
    try:
        original = load_run_config(text)
    except Exception as e:    # noqa: BLE001 -- an old or hand-edited YAML: name it
        raise ConfigError(f"resume={ckpt}: its run configuration ({source}) does not fit this version's "
                          f"schema: {str(e).splitlines()[0]}") from None
    given = OmegaConf.structured(cfg)
    keys = None if overrides is None else \
        [k for k in (override_key(o) for o in overrides) if k and not k.startswith("hydra")]
    task_explicit = keys is None or "task" in keys          # task.<key>=... tunes the run's task, keeps it
    if task_explicit and given.task.name != original.task.name:
        raise ConfigError(
            f"resume={ckpt}: this checkpoint was trained with task={original.task.name}, not "
            f"task={given.task.name}; resume it with `python train.py resume={ckpt}` (its own task and settings "
            f"are restored) or add task={original.task.name}")
    if keys is None:
        merged = given
    else:
        merged = original.copy()
        for key in keys + ["resume"]:
            if "/" in key:              # hydra's own groups (hydra/job_logging=...) are not run settings
                continue
            ident = _GROUP_IDENTITY.get(key)
            if ident and OmegaConf.select(given, f"{key}.{ident}") == OmegaConf.select(original, f"{key}.{ident}"):
                continue                # the run's own group restated (e.g. task=skill_v2): keep its settings
            OmegaConf.update(merged, key, OmegaConf.select(given, key, default=None), merge=False)
    before, after = _leaves(OmegaConf.to_container(original, resolve=True)), \
        _leaves(OmegaConf.to_container(merged, resolve=True))
    changed = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in sorted(set(before) | set(after))
               if k != "resume" and before.get(k) != after.get(k)]
    print(f"[skillmimic] resume: the run's configuration restored from {source}; "
          + (f"changed on the command line: {', '.join(changed)}" if changed else "no changes on the command line"),
          flush=True)
    return OmegaConf.to_object(merged)


# --------------------------------------------------------------------------- start
class _UndoOnFailure:
    """Remove what a failed start created under some folders: a folder that did not exist
    (or its topmost missing ancestor) goes entirely; in an existing one, the files that
    appeared."""

    def __init__(self, *dirs: Path):
        self._trees: list[Path] = []
        self._existing: dict[Path, set[Path]] = {}
        for d in dirs:
            d = Path(d).expanduser().resolve()
            top, p = None, d
            while not p.exists():
                top, p = p, p.parent
            if top is not None:
                self._trees.append(top)
            else:
                self._existing[d] = set(d.rglob("*"))

    def undo(self) -> None:
        for top in self._trees:
            shutil.rmtree(top, ignore_errors=True)
        for d, before in self._existing.items():
            new = sorted(set(d.rglob("*")) - before, key=lambda q: len(q.parts), reverse=True)
            for q in new:
                with contextlib.suppress(OSError):
                    q.rmdir() if q.is_dir() and not q.is_symlink() else q.unlink()


#: rl-games' construction prints (seed, experiment name, sequence length, device, each
#: RunningMeanStd): debug noise that our own start line already covers
_RL_GAMES_NOISE = re.compile(r"^(self\.seed = |Exact experiment name requested|seq_length: |current training device: "
                             r"|RunningMeanStd: |Initializing SelfPlay)")


class _DropLines(io.TextIOBase):
    """A stdout that forwards whole lines except those matching ``pattern``."""

    def __init__(self, out, pattern: re.Pattern):
        self._out, self._pattern, self._buf = out, pattern, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if not self._pattern.match(line):
                self._out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._buf and not self._pattern.match(self._buf):
            self._out.write(self._buf)
        self._buf = ""
        self._out.flush()


@contextlib.contextmanager
def quiet_rl_games():
    """Silence rl-games' construction prints, keep everything else (e.g. V2's pretraining log)."""
    out = _DropLines(sys.stdout, _RL_GAMES_NOISE)
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        out.flush()


def _cache_dirs(cfg: Config) -> list[Path]:
    """Folders the env may write derived data into (V2's graph / history-encoder cache).

    Its parent is created here, so that a failed start removes the cache folder or the
    files it wrote there, never a parent (such as ``~/.cache``) that other programs share."""
    v2 = cfg.task.v2
    if v2 is None:
        return []
    from ..augment.env_hook import resolve_cache_dir

    d = resolve_cache_dir(v2.cache_dir).expanduser().resolve()
    d.parent.mkdir(parents=True, exist_ok=True)
    return [d]


def _warn_slow_setup(cfg: Config) -> None:
    if cfg.sim.backend == "mjwarp" and resolve_device(cfg.device).type == "cpu":
        print("[skillmimic] warning: sim=mjwarp on device=cpu runs MuJoCo Warp's CPU fallback, about 8x slower "
              "than sim=mujoco; use sim=mujoco on a CPU, or device=cuda", flush=True)


def build_agent(cfg, overrides: Sequence[str] | None = None) -> tuple[SkillMimicAgent, Path, int]:
    """Restore the run's configuration on resume, validate, build env + agent by name, restore
    ``cfg.resume``; a failure leaves nothing behind (module docstring).

    ``overrides``: the command line's hydra overrides; on resume only those change the
    run's configuration (``None``: ``cfg`` is used as given).
    Returns ``(agent, run_dir, seed)``; ``agent.train()`` runs the training."""
    cfg = to_config(cfg)
    state = None
    if cfg.resume:
        ckpt = Path(cfg.resume).expanduser()
        if not ckpt.exists():
            raise ConfigError(f"resume={cfg.resume!r}: checkpoint file does not exist")
        state = load_checkpoint(ckpt, map_location="cpu")
        cfg = resume_config(cfg, ckpt, state, overrides)
    validate(cfg)
    _warn_slow_setup(cfg)
    lead, seed = True, None
    if cfg.multi_gpu:     # the process group first: rank 0 picks the run folder and the seed for all
        _, rank, _ = init_distributed(cfg.device)
        lead = rank == 0
        run_dir, base_seed = broadcast_object((pick_run_dir(cfg), seed_everything(cfg.seed)) if lead else None)
        seed_everything(base_seed + rank)      # own action noise per rank; weights come from rank 0
        seed = base_seed
    else:
        run_dir = pick_run_dir(cfg)
    undo = _UndoOnFailure(run_dir, *_cache_dirs(cfg)) if lead else None
    try:
        if seed is None:
            seed = seed_everything(cfg.seed)
        params = rl_games_params(cfg, run_dir, seed)
        if lead:
            print(f"[skillmimic] run folder {run_dir}  (device {params['config']['device']}, {cfg.num_envs} envs, "
                  f"sim {cfg.sim.backend}, motion {params['config']['env_config']['motion_path']}, seed {seed}, "
                  f"minibatch {params['config']['minibatch_size']} x "
                  f"{cfg.train.horizon_length * cfg.num_envs // params['config']['minibatch_size']} per mini-epoch)",
                  flush=True)

        runner = make_runner()
        with quiet_rl_games():
            runner.load({"params": params})
            torch.set_num_threads(cfg.torch_threads)
            agent = runner.algo_factory.create(params["algo"]["name"], base_name="run", params=runner.params)
        try:
            if state is not None:
                agent.restore(Path(cfg.resume).expanduser(), state=state)
            if cfg.train.torch_compile:
                agent.model = torch.compile(agent.model)
            if lead:
                _write_run_config(cfg, run_dir, seed)
        except BaseException:
            close_agent(agent)
            raise
    except BaseException:
        if undo is not None:
            undo.undo()
        raise
    return agent, run_dir, seed


def close_agent(agent: SkillMimicAgent) -> None:
    if agent.writer is not None:                   # ranks other than 0 have none
        agent.writer.close()
    if agent.vec_env is not None:
        agent.vec_env.close()


def train(cfg, overrides: Sequence[str] | None = None) -> TrainResult:
    """Train (or resume) according to ``cfg`` (``overrides``: see :func:`build_agent`);
    returns where things went and the final counters."""
    t0 = time.perf_counter()
    agent, run_dir, seed = build_agent(cfg, overrides)
    try:
        t1 = time.perf_counter()
        agent.train()
        t2 = time.perf_counter()
        if agent.global_rank == 0:
            print(f"[skillmimic] done: epoch {agent.epoch_num}, frame {agent.frame}, {t2 - t0:.1f} s in all "
                  f"(start-up {t1 - t0:.1f} s, training {t2 - t1:.1f} s); "
                  f"checkpoint {agent.checkpoint_path()}", flush=True)
    finally:
        close_agent(agent)
    return TrainResult(run_dir=run_dir, checkpoint=agent.checkpoint_path(), epoch=agent.epoch_num,
                       frame=agent.frame, seed=seed, history=list(agent.epoch_history))
