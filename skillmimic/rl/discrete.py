"""Discrete PPO for tasks with a categorical policy (the high-level controllers, :mod:`envs.hlc`).

What differs from skill training, and why:

* **Env**: the task env behind rl-games' vec-env interface with a ``Discrete(num_actions)``
  action space (:class:`~.vecenv.DiscreteTaskVecEnv`).
* **Network** ``skillmimic_hlc_mlp`` (:class:`~.network.HLCNetwork`): separate actor and critic
  MLPs ([1024, 512] ReLU by default), a logits head and a value head, for rl-games'
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

from rl_games.algos_torch import a2c_discrete

from .agent import RunManagement, ShuffledPPODataset
from .config import Config
from .names import RL_GAMES

HLC_AGENT_NAME = RL_GAMES["discrete"].agent


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


def discrete_params(cfg: Config, params: dict) -> dict:
    """Turn the rl-games parameters of :func:`.runner.rl_games_params` into the discrete PPO's."""
    t = cfg.train
    c = params["config"]
    params["network"].pop("log_std", None)       # no Gaussian: a logits head
    c["critic_coef"] = 2.0 * t.critic_coef      # rl-games' discrete loss halves it (module docstring)
    c["bounds_loss_coef"] = 0.0                  # no action bounds for a categorical policy
    return params


__all__ = ["HLCAgent", "HLC_AGENT_NAME", "discrete_params"]
