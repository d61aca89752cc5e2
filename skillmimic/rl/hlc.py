"""Discrete PPO for the high-level controller (:mod:`envs.hlc`), registered with rl-games by name.

What differs from skill training, and why:

* **Env** ``skillmimic_hlc``: :class:`envs.hlc.HLCEnv` behind rl-games' vec-env interface
  with a ``Discrete(len(control_mapping))`` action space.
* **Network** ``skillmimic_hlc_mlp``: separate actor and critic MLPs ([1024, 512] ReLU by
  default), a logits head (Glorot-uniform, zero bias) and a value head, for rl-games'
  ``discrete_a2c`` model (categorical policy; the observation/value normalisers live there).
* **Agent** ``skillmimic_hlc``: rl-games' discrete PPO agent with the skill agent's run
  management -- its training loop, per-epoch console line and tensorboard reward terms,
  atomic ``nn/<experiment>.pth`` checkpoints carrying the run config (eval rebuilds the env
  from it), resume, SIGINT/SIGTERM handling. Those methods only use state that rl-games'
  common base holds, so both agents mix in :class:`~.agent.RunManagement`; the skill agent
  itself cannot be subclassed because its continuous base reads Box bounds.
  Minibatches are reshuffled every mini-epoch (the skill agent's :class:`~.agent.ShuffledPPODataset`).
* **Loss**: rl-games' discrete loss is ``actor + 0.5 * critic_coef * critic``; the original
  HLC agent's is ``actor + critic_coef * critic``, so rl-games gets twice the configured
  ``train.critic_coef``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from gymnasium import spaces
from omegaconf import OmegaConf
from rl_games.algos_torch import a2c_discrete
from rl_games.common import env_configurations, vecenv
from torch import nn

from envs.hlc import HLCEnv, HLCEnvConfig, LLCCheckpointError, load_llc, make_hlc_env
from skillmimic.assets.mjcf import SceneConfig

from .agent import RunManagement, ShuffledPPODataset
from .network import SeparateActorCritic, builder_for
from .vecenv import SkillVecEnv
from .config import Config, ConfigError, TaskConfig, resolve_path

HLC_ENV_NAME = "skillmimic_hlc"
HLC_VECENV_TYPE = "SKILLMIMIC_HLC"
HLC_NETWORK_NAME = "skillmimic_hlc_mlp"
HLC_AGENT_NAME = "skillmimic_hlc"
HLC_MODEL_NAME = "discrete_a2c"



# --------------------------------------------------------------------------- env
def hlc_env_config(task: TaskConfig, num_envs: int, seed: int | None) -> HLCEnvConfig:
    """The HLC env config of an HLC task node (``task.hlc`` set)."""
    if task.hlc is None:
        raise ConfigError(f"task {task.name!r} is not an HLC task (task.hlc is null)")
    return task.env_config(num_envs, seed, HLCEnvConfig)


def create_hlc_env(env_cfg: HLCEnvConfig, motion_path: str, llc_checkpoint: str, sim_backend: str = "mujoco",
                   scene: SceneConfig | None = None, device: str = "cpu", sim_kwargs: dict | None = None,
                   seed: int | None = None, **_: Any) -> HLCEnv:
    """rl-games' ``env_creator`` for ``skillmimic_hlc``."""
    if seed is not None and env_cfg.seed is None:
        env_cfg = dataclasses.replace(env_cfg, seed=int(seed))
    return make_hlc_env(env_cfg, motion_path, llc_checkpoint, sim_backend=sim_backend, scene=scene, device=device,
                        **(sim_kwargs or {}))


class HLCVecEnv(SkillVecEnv):
    """All worlds of one :class:`HLCEnv` (the skill vec env with a discrete action space)."""

    def __init__(self, config_name: str, num_actors: int, **kwargs: Any):
        super().__init__(config_name, num_actors, **kwargs)
        self.action_space = spaces.Discrete(self.env.num_actions)


# --------------------------------------------------------------------------- network
class HLCNetwork(SeparateActorCritic):
    """Returns ``(logits, value, rnn_states)`` as rl-games' ``discrete_a2c`` model expects."""

    name = HLC_NETWORK_NAME
    default_units = (1024, 512)

    def __init__(self, params: dict, actions_num: int, input_shape: tuple, value_size: int = 1, **_):
        super().__init__(params, input_shape, value_size)
        self.logits = nn.Linear(self.out_features, int(actions_num))
        self._zero_biases()
        nn.init.xavier_uniform_(self.logits.weight, gain=1.0)

    def forward(self, obs_dict: dict):
        obs = obs_dict["obs"]
        return self.logits(self.actor_mlp(obs)), self.value(self.critic_mlp(obs)), obs_dict.get("rnn_states")

    def eval_actor(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.actor_mlp(obs))


HLCBuilder = builder_for(HLCNetwork)


# --------------------------------------------------------------------------- agent
class HLCAgent(RunManagement, a2c_discrete.DiscreteA2CAgent):
    """rl-games' discrete PPO with the skill agent's run management (module docstring)."""

    algo_name = HLC_AGENT_NAME

    def __init__(self, base_name: str, params: dict):
        super().__init__(base_name, params)
        self.dataset = ShuffledPPODataset(self.batch_size, self.minibatch_size, self.is_discrete, self.is_rnn,
                                          self.ppo_device, self.seq_length)

    def train_epoch(self):
        """rl-games' discrete epoch, returned in the continuous agent's layout (no bound losses)."""
        out = super().train_epoch()
        return (*out[:6], [], *out[6:])


# --------------------------------------------------------------------------- wiring
def register_hlc(runner=None) -> None:
    """Make the HLC env and network known to rl-games, and the agent to ``runner`` (idempotent)."""
    from rl_games.algos_torch import model_builder

    vecenv.register(HLC_VECENV_TYPE, lambda config_name, num_actors, **kw: HLCVecEnv(config_name, num_actors, **kw))
    env_configurations.register(HLC_ENV_NAME, {"vecenv_type": HLC_VECENV_TYPE, "env_creator": create_hlc_env})
    model_builder.register_network(HLC_NETWORK_NAME, HLCBuilder)
    if runner is not None:
        runner.algo_factory.register_builder(HLC_AGENT_NAME, lambda **kw: HLCAgent(**kw))


def hlc_params(cfg: Config, params: dict) -> dict:
    """Turn the skill run's rl-games parameters (:func:`.runner.rl_games_params`) into the HLC's."""
    t = cfg.train
    c = params["config"]
    base_env = c["env_config"]
    params["algo"] = {"name": HLC_AGENT_NAME}
    params["model"] = {"name": HLC_MODEL_NAME}
    params["network"] = {"name": HLC_NETWORK_NAME, "units": list(t.network.units), "activation": t.network.activation}
    c["env_name"] = HLC_ENV_NAME
    llc = resolve_path(cfg.llc_checkpoint)
    # checkpoints carry the run config; with the LLC's absolute path eval finds it from anywhere
    c["run_config"] = OmegaConf.to_yaml(OmegaConf.structured(dataclasses.replace(cfg, llc_checkpoint=str(llc),
                                                                                  seed=params["seed"])))
    c["env_config"] = {
        "env_cfg": hlc_env_config(cfg.task, cfg.num_envs, params["seed"]),
        "motion_path": base_env["motion_path"],
        "llc_checkpoint": str(llc),
        "sim_backend": base_env["sim_backend"],
        "scene": base_env["scene"],
        "device": base_env["device"],
        "sim_kwargs": base_env["sim_kwargs"],
        "seed": base_env["seed"],
    }
    c["critic_coef"] = 2.0 * t.critic_coef      # rl-games' discrete loss halves it (module docstring)
    c["bounds_loss_coef"] = 0.0                  # no action bounds for a categorical policy
    return params


def validate_hlc(cfg: Config) -> None:
    """HLC checks before anything is built: the task node and a usable ``llc_checkpoint``."""
    try:
        cfg.task.hlc.validate()
    except ValueError as e:
        raise ConfigError(f"task.{e}") from None
    if not cfg.llc_checkpoint:
        raise ConfigError(f"task={cfg.task.name} is a high-level controller and needs "
                          f"llc_checkpoint=<a skill policy checkpoint .pth> (train one with python train.py)")
    path = resolve_path(cfg.llc_checkpoint)
    if not path.exists():
        raise LLCCheckpointError(f"llc_checkpoint {cfg.llc_checkpoint}: file does not exist (looked at {path})")
    load_llc(path, device="cpu")


__all__ = ["HLC_AGENT_NAME", "HLC_ENV_NAME", "HLC_MODEL_NAME", "HLC_NETWORK_NAME", "HLCAgent", "HLCBuilder",
           "HLCNetwork", "HLCVecEnv", "create_hlc_env", "hlc_env_config", "hlc_params", "register_hlc",
           "validate_hlc"]
