"""A trained checkpoint as a plain ``obs -> action`` callable, and the env to test it in.

Why not rl-games' player: the player builds its own environment and loop; evaluation,
the viewer and the video renderer each drive the env themselves and only need the
deterministic action. :class:`CheckpointPolicy` rebuilds the same rl-games model
(``continuous_a2c_logstd`` around ``skillmimic_mlp``, with its observation running
mean/std) from the checkpoint, and returns the Gaussian mean clamped to [-1, 1] -- what
the original's test mode plays.

The checkpoint carries the resolved YAML of its run (``run_config``); the network shape,
the task (reward, action scale) and the motion/sim the policy was trained with are read
from there, so ``load_policy(path)`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf

from ..rl.checkpoint import CheckpointError, load_checkpoint
from ..rl.config import Config, load_run_config, resolve_motion_path

_COMPILED_PREFIX = "_orig_mod."


def run_config_of(state: dict) -> Optional[Config]:
    """The typed :class:`~skillmimic.rl.config.Config` saved in a checkpoint (None if absent)."""
    text = state.get("run_config")
    if not text:
        return None
    return OmegaConf.to_object(load_run_config(text))


def checkpoint_weights(state: dict) -> dict:
    """The model weights of a loaded checkpoint, with ``torch.compile``'s key prefix removed."""
    return {k.removeprefix(_COMPILED_PREFIX): v for k, v in state["model"].items()}


def _model_shapes(weights: dict, head: str = "a2c_network.mu.weight") -> tuple[int, int, list[int]]:
    """(obs size, action size, hidden units) read off the actor's and the ``head``'s weight matrices."""
    layers = sorted((int(k.split(".")[2]), v) for k, v in weights.items()
                    if k.startswith("a2c_network.actor_mlp.") and k.endswith(".weight"))
    out = weights.get(head)
    if not layers or out is None:
        raise KeyError(f"no a2c_network.actor_mlp.*.weight / {head}")
    return int(layers[0][1].shape[1]), int(out.shape[0]), [int(w.shape[0]) for _, w in layers]


def _rebuild_model(path: Path, weights: dict, params: dict, num_obs: int, num_actions: int,
                   device: str | torch.device, kind: str = "") -> torch.nn.Module:
    """The rl-games model of ``params`` (model + network names), with ``weights`` loaded,
    in eval mode on ``device``; the normalisers are built where the weights have them."""
    from rl_games.algos_torch import model_builder

    with contextlib.redirect_stdout(io.StringIO()):      # rl-games prints each RunningMeanStd it builds
        model = model_builder.ModelBuilder().load(params).build({
            "actions_num": num_actions, "input_shape": (num_obs,), "num_seqs": 1, "value_size": 1,
            "normalize_input": any(k.startswith("running_mean_std.") for k in weights),
            "normalize_value": any(k.startswith("value_mean_std.") for k in weights),
        })
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the rebuilt {kind}model: {e}") from e
    return model.to(device).eval()


class CheckpointPolicy:
    """Deterministic policy of a training checkpoint: ``policy(obs) -> actions`` in [-1, 1]."""

    def __init__(self, model: torch.nn.Module, run_config: Optional[Config], path: Path, epoch: int,
                 num_obs: int, num_actions: int):
        self.model = model
        self.run_config = run_config
        self.path = path
        self.epoch = epoch
        self.num_obs = num_obs
        self.num_actions = num_actions
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1] != self.num_obs:
            raise ValueError(f"policy {self.path.name} takes {self.num_obs}-d observations, got {obs.shape[-1]}")
        res = self.model({"is_train": False, "obs": obs.to(self.device, torch.float32), "prev_actions": None})
        return self._act(res)

    @staticmethod
    def _act(res: dict) -> torch.Tensor:
        """The deterministic action from rl-games' model output: the clamped Gaussian mean."""
        return res["mus"].clamp(-1.0, 1.0)


def load_policy(path: str | Path, device: str | torch.device = "cpu", state: Optional[dict] = None) -> CheckpointPolicy:
    """Rebuild the rl-games model of checkpoint ``path`` (eval mode, on ``device``);
    ``state``: the checkpoint already loaded from ``path``."""
    from ..rl.registry import MODEL_NAME, NETWORK_NAME, register

    path = Path(path).expanduser()
    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    weights = checkpoint_weights(state)
    run_cfg = run_config_of(state)
    try:
        num_obs, num_actions, units = _model_shapes(weights)
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path}: not a skillmimic_mlp policy ({e})") from None
    net = run_cfg.train.network if run_cfg is not None else None
    activation = net.activation if net is not None else "relu"
    log_std = net.log_std if net is not None else float(weights.get("a2c_network.sigma", torch.tensor([-2.9]))[0])
    if net is not None and list(net.units) != units:
        raise CheckpointError(f"checkpoint {path}: weights have hidden units {units} but its run config says "
                              f"{list(net.units)}")
    register()
    params = {"model": {"name": MODEL_NAME},
              "network": {"name": NETWORK_NAME, "units": units, "activation": activation, "log_std": log_std}}
    model = _rebuild_model(path, weights, params, num_obs, num_actions, device)
    return CheckpointPolicy(model, run_cfg, path, int(state.get("epoch", -1)), num_obs, num_actions)


def make_eval_env(cfg: Optional[Config], num_envs: int, motion_path: str | Path | None = None,
                  device: str | torch.device = "cpu", episode_length: int = 600, seed: int = 0):
    """A :class:`~envs.skill.SkillEnv` in test mode for ``cfg``'s task, sim and motion.

    Test mode: early termination off and episodes of ``episode_length`` steps (callers that
    run past a clip's end keep ``segment_length`` above their step count; see
    :func:`skillmimic.eval.runner.evaluate`). ``motion_path`` overrides ``cfg.motion``.
    """
    from envs.skill import make_skill_env

    cfg = cfg if cfg is not None else _default_config()
    env_cfg = dataclasses.replace(cfg.task.env_config(num_envs, seed), episode_length=int(episode_length),
                                  state_init=2, enable_early_termination=False)
    path = Path(motion_path) if motion_path is not None else resolve_motion_path(cfg.motion)
    v2 = getattr(cfg.task, "v2", None)
    if v2 is not None:
        # SkillMimic-V2 policy: its history encoder is part of the observation and stays; the
        # training-time start distributions (STG switches, STF perturbed starts, ATS
        # reweighting) are off, as in V2's test mode.
        from ..rl.vecenv import create_skill_env

        v2 = dataclasses.replace(v2, state_switch_prob=0.0, state_init_random_prob=0.0, reweight=False)
        return create_skill_env(env_cfg, str(path), sim_backend=cfg.sim.backend, scene=cfg.sim.scene,
                                device=str(device), sim_kwargs=cfg.sim.sim_kwargs(), seed=seed, v2=v2)
    return make_skill_env(env_cfg, path, sim_backend=cfg.sim.backend, scene=cfg.sim.scene, device=str(device),
                          **cfg.sim.sim_kwargs())


def _default_config() -> Config:
    """The repository's default config tree (cfg/config.yaml), composed without hydra's app."""
    from hydra import compose, initialize_config_dir

    from ..rl.config import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose("config"))


__all__ = ["CheckpointPolicy", "checkpoint_weights", "load_policy", "make_eval_env", "run_config_of"]
