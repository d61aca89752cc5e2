"""A trained checkpoint as a plain ``obs -> action`` callable (the rl-games model rebuilt).

Why not rl-games' player: the player builds its own environment and loop; evaluation,
the viewer, the video renderer and the HLC env's low-level controller each drive an env
themselves and only need the deterministic action. :class:`CheckpointPolicy` rebuilds the
rl-games model of the checkpoint's policy kind (:data:`~.names.RL_GAMES`), with its
observation running mean/std, and returns the deterministic action: the Gaussian mean
clamped to [-1, 1] (what the original's test mode plays) or the most likely discrete action.

Which kind a checkpoint holds is read from the run config it carries (its task's
registered policy kind, :mod:`envs.registry`), not guessed from its weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Optional

import torch

from envs.hlc.llc import check_llc_checkpoint, check_llc_sizes
from envs.registry import task_spec

from ..checkpoint import POLICY_HEADS, CheckpointError, checkpoint_weights, load_checkpoint, policy_shapes
from .config import Config, ConfigError, run_config_of
from .names import RL_GAMES
from .network import register_networks

log = logging.getLogger(__name__)


class CheckpointPolicy:
    """Deterministic policy of a training checkpoint: ``policy(obs) -> actions``.

    ``kind`` "continuous": the Gaussian mean clamped to [-1, 1]; "discrete": the argmax
    action (long). ``action_scale``: the PD target per action unit its run trained with
    (None if the checkpoint carries no run config)."""

    def __init__(self, model: torch.nn.Module, run_config: Optional[Config], path: Path, epoch: int,
                 num_obs: int, num_actions: int, kind: str = "continuous"):
        self.model = model
        self.run_config = run_config
        self.path = path
        self.epoch = epoch
        self.num_obs = num_obs
        self.num_actions = num_actions
        self.kind = kind
        self.action_scale = float(run_config.task.action_scale) if run_config is not None else None
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1] != self.num_obs:
            raise ValueError(f"policy {self.path.name} takes {self.num_obs}-d observations, got {obs.shape[-1]}")
        res = self.model({"is_train": False, "obs": obs.to(self.device, torch.float32), "prev_actions": None})
        if self.kind == "discrete":
            return res["logits"].argmax(dim=-1)
        return res["mus"].clamp(-1.0, 1.0)


def policy_kind(run_cfg: Optional[Config], path: Path, default: str = "continuous") -> str:
    """The policy kind of the task a checkpoint's run trained (``default`` without a run config)."""
    if run_cfg is None:
        return default
    try:
        return task_spec(run_cfg.task.env).policy
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: its run config names {e}") from None


def _rebuild_model(path: Path, weights: dict, params: dict, num_obs: int, num_actions: int,
                   device: str | torch.device, kind: str) -> torch.nn.Module:
    """The rl-games model of ``params`` (model + network names), with ``weights`` loaded,
    in eval mode on ``device``; the normalisers are built where the weights have them."""
    from rl_games.algos_torch import model_builder

    register_networks()
    with contextlib.redirect_stdout(io.StringIO()):      # rl-games prints each RunningMeanStd it builds
        model = model_builder.ModelBuilder().load(params).build({
            "actions_num": num_actions, "input_shape": (num_obs,), "num_seqs": 1, "value_size": 1,
            "normalize_input": any(k.startswith("running_mean_std.") for k in weights),
            "normalize_value": any(k.startswith("value_mean_std.") for k in weights),
        })
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit the rebuilt {kind} policy model: {e}") from e
    return model.to(device).eval()


def load_policy(path: str | Path, device: str | torch.device = "cpu", state: Optional[dict] = None,
                kind: Optional[str] = None) -> CheckpointPolicy:
    """Rebuild the rl-games model of checkpoint ``path`` (eval mode, on ``device``).

    ``state``: the checkpoint already loaded from ``path``; ``kind``: the policy kind to
    expect (default: the one of the task in its run config, else continuous)."""
    path = Path(path).expanduser()
    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    weights = checkpoint_weights(state)
    try:
        run_cfg = run_config_of(state)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    kind = kind or policy_kind(run_cfg, path)
    names = RL_GAMES[kind]
    try:
        num_obs, num_actions, units = policy_shapes(weights, POLICY_HEADS[kind])
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path}: not a {names.network} policy ({e})") from None
    net = run_cfg.train.network if run_cfg is not None else None
    if net is not None and list(net.units) != units:
        raise CheckpointError(f"checkpoint {path}: weights have hidden units {units} but its run config says "
                              f"{list(net.units)}")
    network = {"name": names.network, "units": units, "activation": net.activation if net is not None else "relu"}
    if kind == "continuous":
        network["log_std"] = net.log_std if net is not None else \
            float(weights.get("a2c_network.sigma", torch.tensor([-2.9]))[0])
    model = _rebuild_model(path, weights, {"model": {"name": names.model}, "network": network}, num_obs,
                           num_actions, device, kind)
    return CheckpointPolicy(model, run_cfg, path, int(state.get("epoch", -1)), num_obs, num_actions, kind)


def load_llc(path: str | Path, device: str | torch.device = "cpu", scene=None) -> CheckpointPolicy:
    """The frozen skill policy of checkpoint ``path`` as the HLC env's low-level controller
    (:class:`envs.hlc.llc.LowLevelPolicy`): the file is checked first (sizes the HLC env
    feeds it, :func:`envs.hlc.llc.check_llc_checkpoint`), then its model is rebuilt.
    ``scene``: the HLC run's scene, compared with the one the LLC trained in."""
    path = Path(path).expanduser()
    state = check_llc_checkpoint(path)
    policy = load_policy(path, device=device, state=state, kind="continuous")
    check_llc_sizes(path, policy.num_obs, policy.num_actions)
    if scene is not None:
        check_llc_scene(policy.run_config, scene, path)
    return policy


def check_llc_scene(run_cfg: Optional[Config], scene, path) -> None:
    """The LLC only knows the physics it was trained in: warn when the HLC's differs, and
    refuse another hinge order (its actions would drive other hinges)."""
    if run_cfg is None:
        return
    trained = run_cfg.sim.scene
    if trained.hinge_order != scene.hinge_order:
        raise ValueError(f"llc_checkpoint {path} was trained with sim.scene.hinge_order={trained.hinge_order!r}, "
                         f"this run has {scene.hinge_order!r}: its actions drive other hinges; "
                         f"set sim.scene.hinge_order={trained.hinge_order}")
    diff = [k for k in ("physics", "object", "floor_friction", "self_collision")
            if getattr(trained, k) != getattr(scene, k)]
    if diff:
        log.warning("llc_checkpoint %s was trained with different sim.scene %s; the skills may not transfer",
                    path, ", ".join(diff))


__all__ = ["CheckpointPolicy", "check_llc_scene", "load_llc", "load_policy", "policy_kind"]
